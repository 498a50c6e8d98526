package imaging

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// BenchmarkDecodeJ2K decodes every frame of the corpus's JPEG 2000 files (read
// once, parsed every time) to float32 with the modality LUT: the work
// concord-bench dicom times against pydicom for its jpeg2000 set.
func BenchmarkDecodeJ2K(b *testing.B) {
	dir := testenv.Shared(b, "data/dicom/pydicom")
	all, _ := filepath.Glob(filepath.Join(dir, "*.dcm"))
	type file struct {
		name string
		data []byte
	}
	var files []file
	for _, f := range all {
		im, err := ReadFile(f)
		if err != nil || (im.TransferSyntaxUID != TSJ2KLossless && im.TransferSyntaxUID != TSJ2K) {
			continue
		}
		if _, err := im.Frame(0); err != nil {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		files = append(files, file{filepath.Base(f), data})
	}
	if len(files) == 0 {
		b.Fatal("no JPEG 2000 files in the corpus")
	}
	for _, f := range files {
		b.Run(f.name, func(b *testing.B) {
			b.SetBytes(int64(len(f.data)))
			c0 := cpuTime()
			for i := 0; i < b.N; i++ {
				im, err := Read(f.data, DefaultLimits)
				if err != nil {
					b.Fatal(err)
				}
				for k := 0; k < im.Frames; k++ {
					if _, err := im.Frame(k); err != nil {
						b.Fatal(err)
					}
				}
			}
			// On a shared machine CPU time says more than wall time.
			b.ReportMetric((cpuTime()-c0)*1e3/float64(b.N), "cpu-ms/op")
		})
	}
}
