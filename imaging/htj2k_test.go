package imaging

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// htj2kDICOM re-encodes the first frame of a shared uncompressed file with
// OpenJPH's ojph_compress and wraps the codestream as encapsulated pixel data
// in transfer syntax ts. It returns the new file and the codestream.
func htj2kDICOM(t *testing.T, path, ts string, args ...string) (*Image, []byte, []byte) {
	t.Helper()
	ojph, err := exec.LookPath("ojph_compress")
	if err != nil {
		testenv.Missing(t, "ojph_compress not found (apt-get install openjph-tools)")
	}
	im := mustRead(t, path)
	raw, err := im.StoredFrame(0)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var in []string
	switch {
	case im.SamplesPerPixel == 3 && im.BitsAllocated == 8:
		p := filepath.Join(dir, "in.ppm")
		hdr := fmt.Sprintf("P6\n%d %d\n255\n", im.Columns, im.Rows)
		if err := os.WriteFile(p, append([]byte(hdr), raw...), 0o600); err != nil {
			t.Fatal(err)
		}
		in = []string{"-i", p, "-colour_trans", "false"}
	case im.SamplesPerPixel == 1 && im.BitsAllocated == 16:
		// OpenJPH 0.9 reads raw samples without sign extension: the test images'
		// stored values are all non-negative.
		for k := 0; k+1 < len(raw); k += 2 {
			if im.PixelRepresentation == 1 && int16(binary.LittleEndian.Uint16(raw[k:])) < 0 {
				t.Fatalf("%s has negative samples", filepath.Base(path))
			}
		}
		p := filepath.Join(dir, "in.yuv")
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		in = []string{"-i", p, "-dims", fmt.Sprintf("{%d,%d}", im.Columns, im.Rows), "-num_comps", "1",
			"-signed", fmt.Sprint(im.PixelRepresentation == 1), "-bit_depth", fmt.Sprint(im.BitsStored), "-downsamp", "{1,1}"}
	default:
		t.Fatalf("%s: no OpenJPH input for %d samples of %d bits", path, im.SamplesPerPixel, im.BitsAllocated)
	}
	cs := filepath.Join(dir, "out.j2c")
	cmd := append(append(in, "-o", cs), args...)
	if out, err := exec.Command(ojph, cmd...).CombinedOutput(); err != nil {
		t.Fatalf("ojph_compress %v: %v\n%s", cmd, err, out)
	}
	code, err := os.ReadFile(cs)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(mustReadBytes(t, path), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	f.Meta.set(tagTransferSyntax, "UI", []byte(ts))
	px := f.Data.Find(tagPixelData)
	px.VR, px.Value, px.Fragments = "OB", nil, [][]byte{{}, code}
	b, err := encodeFile(f.Meta, f.Data, ts)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Read(b, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	return out, raw, code
}

func mustReadBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHTJ2KTransferSyntaxes: real images re-encoded as HTJ2K in the three
// transfer syntaxes decode through the imaging package: the lossless ones give
// back the original samples, the lossy one OpenJPEG's decoding of the same
// codestream within one. pydicom (2.3 here) has no HTJ2K decoder, so OpenJPEG
// is the reference.
func TestHTJ2KTransferSyntaxes(t *testing.T) {
	dir := testenv.Shared(t, "data/dicom/pydicom")
	for _, name := range []string{"CT_small.dcm", "MR_small.dcm", "SC_rgb_small_odd.dcm"} {
		for _, tc := range []struct {
			ts   string
			args []string
		}{
			{TSHTJ2KLossless, []string{"-reversible", "true"}},
			{TSHTJ2KLosslessRPCL, []string{"-reversible", "true", "-prog_order", "RPCL"}},
			{TSHTJ2K, []string{"-qstep", "0.001"}},
		} {
			t.Run(name+" "+tc.ts, func(t *testing.T) {
				im, raw, code := htj2kDICOM(t, filepath.Join(dir, name), tc.ts, tc.args...)
				if !CanDecode(tc.ts) {
					t.Fatalf("CanDecode(%s) is false", tc.ts)
				}
				if err := im.Decodable(); err != nil {
					t.Fatalf("Decodable: %v", err)
				}
				got, err := im.StoredFrame(0)
				if err != nil {
					t.Fatalf("StoredFrame: %v", err)
				}
				if tc.ts != TSHTJ2K {
					if !bytes.Equal(got, raw) {
						t.Errorf("lossless HTJ2K frame differs from the original samples")
					}
					return
				}
				want := opjRaw(t, code, im)
				if len(want) != len(got) {
					t.Fatalf("%d bytes, OpenJPEG %d", len(got), len(want))
				}
				bps := im.BytesPerSample()
				worst := 0
				for k := 0; k < len(got); k += bps {
					a, b := sampleAt(got[k:], bps, im.PixelRepresentation == 1), sampleAt(want[k:], bps, im.PixelRepresentation == 1)
					worst = max(worst, abs(a-b))
				}
				if worst > 1 {
					t.Errorf("lossy HTJ2K frame differs from OpenJPEG's by %d", worst)
				}
			})
		}
	}
}

func sampleAt(b []byte, bps int, signed bool) int {
	if bps == 1 {
		return int(b[0])
	}
	v := binary.LittleEndian.Uint16(b)
	if signed {
		return int(int16(v))
	}
	return int(v)
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// opjRaw decodes a codestream with opj_decompress into StoredFrame's layout
// (samples interleaved, little-endian).
func opjRaw(t *testing.T, code []byte, im *Image) []byte {
	t.Helper()
	opj, err := exec.LookPath("opj_decompress")
	if err != nil {
		testenv.Missing(t, "opj_decompress not found (apt-get install libopenjp2-tools)")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.j2c"), filepath.Join(dir, "out.rawl")
	if err := os.WriteFile(in, code, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(opj, "-i", in, "-o", out, "-quiet").CombinedOutput(); err != nil {
		t.Fatalf("opj_decompress: %v\n%s", err, b)
	}
	planar := mustReadBytes(t, out) // one plane after another
	bps, spp, n := im.BytesPerSample(), im.SamplesPerPixel, im.Rows*im.Columns
	if len(planar) != n*spp*bps {
		t.Fatalf("opj_decompress wrote %d bytes for %d samples", len(planar), n*spp)
	}
	if spp == 3 {
		return interleave(planar, n, bps)
	}
	return planar
}
