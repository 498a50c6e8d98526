package imaging

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// corpusFiles returns the uncompressed, decodable files of the shared pydicom corpus
// and the dicom module's testdata.
func corpusFiles(b *testing.B) []string {
	var out []string
	dirs := []string{testenv.Shared(b, "data/dicom/pydicom"), moduleTestdata(b)}
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join(d, "*.dcm"))
		for _, f := range files {
			im, err := ReadFile(f)
			if err != nil || IsEncapsulated(im.TransferSyntaxUID) {
				continue
			}
			if _, err := im.Frame(0); err == nil {
				out = append(out, f)
			}
		}
	}
	return out
}

// BenchmarkDecodeUncompressed reads every uncompressed corpus file and converts all
// frames to float32 with the modality LUT; bytes/op is the files' total size.
func BenchmarkDecodeUncompressed(b *testing.B) {
	files := corpusFiles(b)
	var total int64
	for _, f := range files {
		st, _ := os.Stat(f)
		total += st.Size()
	}
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, f := range files {
			im, err := ReadFile(f)
			if err != nil {
				b.Fatal(err)
			}
			for k := 0; k < im.Frames; k++ {
				if _, err := im.Frame(k); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

// BenchmarkStandardise runs the default 224x224 pipeline on the 2140x1760 chest X-ray.
func BenchmarkStandardise(b *testing.B) {
	im, err := ReadFile(filepath.Join(moduleTestdata(b), "4.dcm"))
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range []Pipeline{DefaultPipeline(), {Width: 224, Height: 224, Channels: 1, Resample: "bilinear", Normalise: "zscore", Contrast: "clahe:8:2"}} {
		b.Run(p.Resample+"-"+p.Normalise+"-"+p.Contrast, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := p.Apply(im, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeCompressed decodes the corpus's RLE, JPEG (8/12-bit, lossless) and
// JPEG-LS files to float32; bytes/op is the files' total size.
func BenchmarkDecodeCompressed(b *testing.B) {
	dir := testenv.Shared(b, "data/dicom/pydicom")
	all, _ := filepath.Glob(filepath.Join(dir, "*.dcm"))
	var files []string
	var total int64
	for _, f := range all {
		im, err := ReadFile(f)
		if err != nil || !IsEncapsulated(im.TransferSyntaxUID) {
			continue
		}
		if _, err := im.Frame(0); err != nil {
			continue
		}
		st, _ := os.Stat(f)
		total += st.Size()
		files = append(files, f)
	}
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, f := range files {
			im, err := ReadFile(f)
			if err != nil {
				b.Fatal(err)
			}
			for k := 0; k < im.Frames; k++ {
				if _, err := im.Frame(k); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

// BenchmarkDecodeLarge is concord-bench dicom's timed path (read the file, every
// frame to float32) on the 7.5 MB 2140x1760 chest X-ray.
func BenchmarkDecodeLarge(b *testing.B) {
	path := filepath.Join(moduleTestdata(b), "4.dcm")
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, reuse := range []bool{false, true} {
		b.Run(map[bool]string{false: "ReadFile", true: "Decoder"}[reuse], func(b *testing.B) {
			b.SetBytes(st.Size())
			b.ReportAllocs()
			var d Decoder
			for i := 0; i < b.N; i++ {
				var im *Image
				if reuse {
					im, err = d.ReadFile(path)
				} else {
					im, err = ReadFile(path)
				}
				if err != nil {
					b.Fatal(err)
				}
				for k := 0; k < im.Frames; k++ {
					if reuse {
						_, err = d.Frame(im, k)
					} else {
						_, err = im.Frame(k)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
