package imaging

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// dcmtkDecode decompresses in with dcmdjpeg (or dcmdjpls) into a native file and
// returns this package's reading of that file, which TestConformancePydicom ties to pydicom.
func dcmtkDecode(t *testing.T, tool, in string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "native.dcm")
	if o, err := exec.Command(tool, in, out).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(tool), filepath.Base(in), err, o)
	}
	im, err := ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := storedAll(im)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestJPEGLosslessAgainstDcmtk compresses native files with dcmcjpeg's true lossless
// codec under every selection value and a point transform, then checks that this
// package's decoder gives exactly dcmdjpeg's array.
func TestJPEGLosslessAgainstDcmtk(t *testing.T) {
	cjpeg := needTool(t, "dcmcjpeg", "dcmtk")
	djpeg := needTool(t, "dcmdjpeg", "dcmtk")
	dir := testenv.Shared(t, "data/dicom/pydicom")
	sources := []string{
		filepath.Join(dir, "MR_small.dcm"),                                          // 16-bit signed
		filepath.Join(dir, "CT_small.dcm"),                                          // 16-bit signed CT
		filepath.Join(dir, "image_dfl.dcm"),                                         // 8-bit, from deflate
		filepath.Join(testenv.Shared(t, "data/dicom/dcmqi"), "ct-3slice", "01.dcm"), // 512x512 CT
		filepath.Join(dir, "SC_rgb_small_odd.dcm"),                                  // RGB, odd size
		filepath.Join(dir, "examples_rgb_color.dcm"),                                // RGB
	}
	type variant struct {
		name string
		args []string
	}
	variants := []variant{{"sv1", []string{"+e1"}}}
	for sv := 2; sv <= 7; sv++ {
		variants = append(variants, variant{fmt.Sprintf("sv%d", sv), []string{"+el", "+sv", fmt.Sprint(sv)}})
	}
	variants = append(variants, variant{"sv1-pt2", []string{"+el", "+sv", "1", "+pt", "2"}})
	if testing.Short() {
		variants = variants[:2]
	}
	tmp := t.TempDir()
	for _, src := range sources {
		for _, v := range variants {
			t.Run(filepath.Base(src)+"/"+v.name, func(t *testing.T) {
				comp := filepath.Join(tmp, filepath.Base(src)+"."+v.name+".dcm")
				args := append(append([]string{}, v.args...), src, comp)
				if o, err := exec.Command(cjpeg, args...).CombinedOutput(); err != nil {
					t.Fatalf("dcmcjpeg: %v\n%s", err, o)
				}
				im, err := ReadFile(comp)
				if err != nil {
					t.Fatal(err)
				}
				got, _, err := storedAll(im)
				if err != nil {
					t.Fatalf("decode %s: %v", TransferSyntaxName(im.TransferSyntaxUID), err)
				}
				want := dcmtkDecode(t, djpeg, comp)
				if !bytes.Equal(got, want) {
					t.Fatalf("differs from dcmdjpeg at %d of %d bytes", countDiff(want, got), len(want))
				}
			})
		}
	}
	// A lossless file from another encoder (GDCM) in the corpus.
	t.Run("SC_rgb_jpeg_gdcm.dcm", func(t *testing.T) {
		p := filepath.Join(dir, "SC_rgb_jpeg_gdcm.dcm")
		im, err := ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := storedAll(im)
		if err != nil {
			t.Fatal(err)
		}
		if want := dcmtkDecode(t, djpeg, p); !bytes.Equal(got, want) {
			t.Fatalf("differs from dcmdjpeg at %d of %d bytes", countDiff(want, got), len(want))
		}
	})
}

// TestJPEG12BitAgainstDcmtk decodes the corpus's 12-bit extended JPEG files, which
// pydicom cannot, and compares with dcmdjpeg (IJG 6b islow IDCT, as ours).
func TestJPEG12BitAgainstDcmtk(t *testing.T) {
	djpeg := needTool(t, "dcmdjpeg", "dcmtk")
	dir := testenv.Shared(t, "data/dicom/pydicom")
	for _, name := range []string{"JPGExtended.dcm", "JPEG-lossy.dcm"} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			im, err := ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := storedAll(im)
			if err != nil {
				t.Fatal(err)
			}
			want := dcmtkDecode(t, djpeg, p)
			if !bytes.Equal(got, want) {
				t.Fatalf("differs from dcmdjpeg at %d of %d bytes", countDiff(want, got), len(want))
			}
		})
	}
}

// TestJPEGLSAgainstDcmtk decodes the corpus's JPEG-LS files (lossless and near-lossless,
// grey and colour, line and sample interleaved) and files re-encoded with dcmcjpls,
// and compares with dcmdjpls.
func TestJPEGLSAgainstDcmtk(t *testing.T) {
	djpls := needTool(t, "dcmdjpls", "dcmtk")
	cjpls := needTool(t, "dcmcjpls", "dcmtk")
	dir := testenv.Shared(t, "data/dicom/pydicom")
	files := []string{}
	for _, n := range []string{"MR_small_jpeg_ls_lossless.dcm", "JPEGLSNearLossless_08.dcm", "JPEGLSNearLossless_16.dcm", "SC_rgb_jls_lossy_line.dcm", "SC_rgb_jls_lossy_sample.dcm"} {
		files = append(files, filepath.Join(dir, n))
	}
	tmp := t.TempDir()
	// dcmcjpls encodes signed and palette images only losslessly.
	lossless := [][]string{{"+el"}}
	all := [][]string{{"+el"}, {"+en", "+md", "3"}, {"+en", "+md", "1", "+is"}, {"+el", "+in"}, {"+el", "+is"}}
	for _, c := range []struct {
		src      string
		variants [][]string
	}{{"CT_small.dcm", lossless}, {"examples_palette.dcm", lossless}, {"image_dfl.dcm", all[:2]}, {"SC_rgb_small_odd.dcm", all}, {"examples_rgb_color.dcm", all}} {
		for i, args := range c.variants {
			out := filepath.Join(tmp, fmt.Sprintf("%s.%d.dcm", c.src, i))
			a := append(append([]string{}, args...), filepath.Join(dir, c.src), out)
			if o, err := exec.Command(cjpls, a...).CombinedOutput(); err != nil {
				t.Fatalf("dcmcjpls %v %s: %v %s", args, c.src, err, o)
			}
			files = append(files, out)
		}
	}
	for _, p := range files {
		t.Run(filepath.Base(p), func(t *testing.T) {
			im, err := ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := storedAll(im)
			if err != nil {
				t.Fatal(err)
			}
			want := dcmtkDecode(t, djpls, p)
			if !bytes.Equal(got, want) {
				t.Fatalf("differs from dcmdjpls at %d of %d bytes", countDiff(want, got), len(want))
			}
		})
	}
}
