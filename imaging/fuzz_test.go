package imaging

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// FuzzRead feeds arbitrary bytes to the reader, the pixel path and the de-identifier.
// It is seeded from the shared corpus (when present) and from synthetic files. Work
// per input is bounded by tight limits: the pixel budget is checked against the bytes
// present before anything is allocated.
func FuzzRead(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(testenv.SharedDir(), "data/dicom/pydicom", "*.dcm"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil && len(b) < 64<<10 {
			f.Add(b)
		}
	}
	s := synthetic(8, 8)
	if b, err := EncodeSynthetic(s); err == nil {
		f.Add(b)
	}
	lim := Limits{MaxFileBytes: 8 << 20, MaxPixels: 1 << 22, MaxDepth: 16, MaxElements: 1 << 14}
	d := NewDeidentifier([]byte("fuzz"))
	d.AllowBurnedIn = true
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := Read(b, lim)
		if err == nil {
			for i := 0; i < im.Frames && i < 4; i++ {
				if _, err := im.Frame(i); err != nil {
					break
				}
			}
			p := Pipeline{Width: 8, Height: 8, Channels: 1, Resample: "area", Normalise: "auto"}
			_, _ = p.Apply(im, 0)
		}
		if out, err := d.Bytes(b); err == nil {
			if _, err := Parse(out, lim); err != nil {
				t.Fatalf("de-identified output does not parse: %v", err)
			}
		}
	})
}
