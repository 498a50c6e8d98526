package synth

import (
	"strconv"
	"testing"
)

// BenchmarkGenerate measures rendering one hospital of 100 images at the
// smallest and largest native sizes Hospitals uses.
func BenchmarkGenerate(b *testing.B) {
	for _, size := range []int{48, 96} {
		h := Hospitals(1, 1)[0]
		h.N, h.Size = 100, size
		b.Run("size"+strconv.Itoa(size), func(b *testing.B) {
			for b.Loop() {
				if _, err := Generate(h, 1); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*h.N), "µs/image")
		})
	}
}

// BenchmarkWriteDICOM measures generating and writing 100 DICOM files of
// 64x64 pixels.
func BenchmarkWriteDICOM(b *testing.B) {
	h := Hospitals(1, 1)[0]
	h.N, h.Size = 100, 64
	dir := b.TempDir()
	for b.Loop() {
		if _, err := WriteDICOM(dir, h, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*h.N), "µs/file")
}

// BenchmarkPartition splits 4708 labels (PneumoniaMNIST's training set
// size and mix) among 8 sites.
func BenchmarkPartition(b *testing.B) {
	labels := make([]int, 4708)
	for i := range 3494 {
		labels[i] = 1
	}
	for _, scheme := range []string{"iid", "dirichlet:0.5", "dirichlet:0.1"} {
		b.Run(scheme, func(b *testing.B) {
			for b.Loop() {
				if _, err := Partition(labels, 8, scheme, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
