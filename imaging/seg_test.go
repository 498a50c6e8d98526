package imaging

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// TestSegmentationDcmqi reads the dcmqi liver SEG and ties its frames to the real CT
// series it segments.
func TestSegmentationDcmqi(t *testing.T) {
	dir := testenv.Shared(t, "data/dicom/dcmqi")
	s, err := ReadSegmentation(filepath.Join(dir, "liver-seg.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Rows != 512 || s.Columns != 512 || s.Type != "BINARY" || len(s.Segments) != 1 || s.Segments[0].Label != "Liver" || len(s.Frames) != 3 {
		t.Fatalf("segmentation: %dx%d %s %+v, %d frames", s.Columns, s.Rows, s.Type, s.Segments, len(s.Frames))
	}
	cts, _ := filepath.Glob(filepath.Join(dir, "ct-3slice", "*.dcm"))
	matched := 0
	for _, p := range cts {
		im, err := ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m := s.Mask(im.SOPInstanceUID, 1)
		if m == nil {
			continue
		}
		matched++
		if len(m) != im.Rows*im.Columns {
			t.Fatalf("mask size %d for %dx%d image", len(m), im.Columns, im.Rows)
		}
		on := 0
		var hu float64
		px, _ := im.Frame(0)
		for k, v := range m {
			if v > 1 {
				t.Fatalf("binary mask value %d", v)
			}
			if v == 1 {
				on++
				hu += float64(px[k])
			}
		}
		// A liver mask covers thousands of pixels of soft tissue (tens of HU).
		if on < 1000 || on > 512*512/2 {
			t.Errorf("%s: %d mask pixels", filepath.Base(p), on)
		}
		if mean := hu / float64(on); mean < 0 || mean > 200 {
			t.Errorf("%s: mean HU under the liver mask %.1f, expected soft tissue", filepath.Base(p), mean)
		}
	}
	if matched != 3 {
		t.Fatalf("%d of 3 CT slices matched to SEG frames", matched)
	}
	if _, err := ReadSegmentation(cts[0]); err == nil {
		t.Error("a CT image was accepted as a segmentation")
	}
}

func TestPNGMask(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 3, 2))
	img.Pix[4] = 2
	p := filepath.Join(t.TempDir(), "m.png")
	f, _ := os.Create(p)
	png.Encode(f, img)
	f.Close()
	m, err := LoadPNGMask(p, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if m[4] != 2 || m[0] != 0 {
		t.Fatalf("mask %v", m)
	}
	if _, err := LoadPNGMask(p, 3, 3); err == nil {
		t.Error("size mismatch accepted")
	}
}
