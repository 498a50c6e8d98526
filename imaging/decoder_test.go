package imaging

import (
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// TestDecoderMatchesReadFile reads the whole corpus with one Decoder, twice over
// (so every buffer is reused by files of other sizes and layouts), and checks
// that every result equals ReadFile's: the same error category, the same frames
// bit for bit, the same standardised pixels. An image from the previous file
// must refuse to decode rather than read the new file's bytes.
func TestDecoderMatchesReadFile(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testenv.Shared(t, "data/dicom/pydicom"), "*.dcm"))
	more, _ := filepath.Glob(filepath.Join(moduleTestdata(t), "*.dcm"))
	files = append(files, more...)
	if len(files) < 80 {
		t.Fatalf("corpus has %d files; expected the pydicom corpus and the dicom module's testdata", len(files))
	}
	pl := DefaultPipeline()
	var d Decoder
	var prev *Image
	decoded := 0
	for pass := 0; pass < 2; pass++ {
		for _, f := range files {
			name := filepath.Base(f)
			want, werr := ReadFile(f)
			got, gerr := d.ReadFile(f)
			if prev != nil {
				if _, err := prev.Frame(0); !errors.Is(err, ErrStale) {
					t.Fatalf("%s: the previous file's image decodes after the decoder moved on: %v", name, err)
				}
				if _, err := pl.Apply(prev, 0); !errors.Is(err, ErrStale) {
					t.Fatalf("%s: the previous file's image standardises after the decoder moved on: %v", name, err)
				}
				prev = nil
			}
			if (werr == nil) != (gerr == nil) || Reason(werr) != Reason(gerr) {
				t.Fatalf("%s: ReadFile says %v, Decoder.ReadFile says %v", name, werr, gerr)
			}
			if werr != nil {
				continue
			}
			prev = got
			for k := 0; k < want.Frames; k++ {
				w, werr := want.Frame(k)
				g, gerr := d.Frame(got, k)
				if (werr == nil) != (gerr == nil) {
					t.Fatalf("%s frame %d: Frame says %v, Decoder.Frame says %v", name, k, werr, gerr)
				}
				if !sameFloats(w, g) {
					t.Fatalf("%s frame %d: Decoder.Frame differs from Frame", name, k)
				}
				if werr == nil {
					decoded++
				}
			}
			w, werr := pl.Apply(want, 0)
			g, gerr := pl.Apply(got, 0)
			if (werr == nil) != (gerr == nil) || !sameFloats(w, g) {
				t.Fatalf("%s: the pipeline gives different results from a Decoder's image (%v, %v)", name, werr, gerr)
			}
		}
	}
	if decoded < 100 {
		t.Fatalf("only %d frames decoded: the comparison proves little", decoded)
	}
}

func sameFloats(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

// TestDecoderReadErrors checks that a Decoder refuses what ReadFile refuses,
// without the path in the message, and stays usable afterwards.
func TestDecoderReadErrors(t *testing.T) {
	dir := t.TempDir()
	var d Decoder
	d.Limits = DefaultLimits
	d.Limits.MaxFileBytes = 100
	good := filepath.Join(moduleTestdata(t), "6.dcm")
	for _, c := range []struct {
		path string
		want error
	}{
		{filepath.Join(dir, "absent-patient-name.dcm"), nil},
		{dir, nil},
		{good, ErrTooLarge},
	} {
		_, err := d.ReadFile(c.path)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Fatalf("%s: got %v, want an error (%v)", c.path, err, c.want)
		}
		if strings.Contains(err.Error(), filepath.Base(c.path)) {
			t.Fatalf("error names the path: %v", err)
		}
	}
	d.Limits = Limits{}
	im, err := d.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Frame(im, 0); err != nil {
		t.Fatal(err)
	}
}
