package imaging

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// TestFrameReduced: a 512x512 JPEG 2000 frame asked for at least 224x224 is
// decoded at 256x256 (one wavelet level left out) and agrees with the
// full-resolution frame averaged over 2x2 blocks (the 5/3 low-pass band is a
// wider average: within 2% of the range on the mean); asked for its full size it is
// Frame itself; an uncompressed frame always comes whole.
func TestFrameReduced(t *testing.T) {
	dir := testenv.Shared(t, "data/dicom/pydicom")
	for _, name := range []string{"J2K_pixelrep_mismatch.dcm", "693_J2KI.dcm"} {
		t.Run(name, func(t *testing.T) {
			im, err := ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			full, err := im.Frame(0)
			if err != nil {
				t.Fatal(err)
			}
			same, w, h, err := im.FrameReduced(0, im.Columns, im.Rows)
			if err != nil || w != im.Columns || h != im.Rows || !slices.Equal(same, full) {
				t.Fatalf("at full size: %dx%d, err %v, equal to Frame %v", w, h, err, slices.Equal(same, full))
			}
			red, w, h, err := im.FrameReduced(0, 224, 224)
			if err != nil {
				t.Fatal(err)
			}
			if w != 256 || h != 256 || len(red) != w*h {
				t.Fatalf("reduced to %dx%d (%d values), want 256x256", w, h, len(red))
			}
			avg := ResizeArea(full, im.Columns, im.Rows, w, h)
			lo, hi := slices.Min(full), slices.Max(full)
			var sum float64
			for k := range red {
				sum += math.Abs(float64(red[k] - avg[k]))
			}
			if mean := sum / float64(len(red)) / float64(hi-lo); mean > 0.02 {
				t.Errorf("mean difference from the 2x2 average %.4f of the range, want at most 0.02", mean)
			}
		})
	}
	im, err := ReadFile(filepath.Join(dir, "CT_small.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	full, _ := im.Frame(0)
	got, w, h, err := im.FrameReduced(0, 8, 8)
	if err != nil || w != im.Columns || h != im.Rows || !slices.Equal(got, full) {
		t.Errorf("uncompressed: %dx%d, err %v, equal to Frame %v", w, h, err, slices.Equal(got, full))
	}
}

// TestPipelineReducedArea: the reduced-area pipeline gives a 224x224 result close
// to the area pipeline's on a JPEG 2000 frame, and the very same on others.
func TestPipelineReducedArea(t *testing.T) {
	dir := testenv.Shared(t, "data/dicom/pydicom")
	area := DefaultPipeline()
	red := area
	red.Resample = "reduced-area"
	if area.Hash() == red.Hash() {
		t.Fatal("reduced-area has the hash of area")
	}
	for _, c := range []struct {
		name  string
		exact bool
	}{{"J2K_pixelrep_mismatch.dcm", false}, {"CT_small.dcm", true}} {
		im, err := ReadFile(filepath.Join(dir, c.name))
		if err != nil {
			t.Fatal(err)
		}
		a, err := area.Apply(im, 0)
		if err != nil {
			t.Fatal(err)
		}
		r, err := red.Apply(im, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(r) != 224*224 {
			t.Fatalf("%s: %d values", c.name, len(r))
		}
		if c.exact {
			if !slices.Equal(a, r) {
				t.Errorf("%s: reduced-area differs from area on an uncompressed frame", c.name)
			}
			continue
		}
		var sum float64
		for k := range a {
			sum += math.Abs(float64(a[k] - r[k]))
		}
		if mean := sum / float64(len(a)); mean > 0.05 {
			t.Errorf("%s: mean difference %.4f from area (normalised values), want at most 0.05", c.name, mean)
		}
	}
}
