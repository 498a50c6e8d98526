package jpeg2000

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// htInput is a test image for ojph_compress: comps planes of w x h samples (the
// chroma of "420" ones halved) of the given bit depth. Signed ones hold values
// in [0, 2^(bits-1)) only: OpenJPH 0.9 reads raw samples without sign extension.
type htInput struct {
	w, h, comps, bits int
	sub420            bool
	signed            bool
}

// synth makes a plane with smooth gradients, edges and noise, from a fixed seed.
func synth(w, h, bits, seed int) []int32 {
	r := rand.New(rand.NewSource(int64(seed)))
	top := float64(int(1)<<uint(bits) - 1)
	out := make([]int32, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := 0.35 + 0.25*math.Sin(float64(x)/9+float64(seed)) + 0.2*float64(y)/float64(h)
			if (x/23+y/17)%3 == 0 {
				v += 0.15 // an edge
			}
			v += 0.05 * r.NormFloat64()
			out[y*w+x] = int32(max(0, min(top, v*top)))
		}
	}
	return out
}

func (in htInput) planes() [][]int32 {
	var p [][]int32
	for c := 0; c < in.comps; c++ {
		w, h := in.w, in.h
		if in.sub420 && c > 0 {
			w, h = (w+1)/2, (h+1)/2
		}
		bits := in.bits
		if in.signed {
			bits--
		}
		p = append(p, synth(w, h, bits, c+1))
	}
	return p
}

// write stores the image as PGM/PPM (unsigned 8 or 16 bits, full components)
// or as planar little-endian YUV, and returns the ojph_compress arguments that
// describe it.
func (in htInput) write(t *testing.T, dir string) (string, []string) {
	t.Helper()
	planes := in.planes()
	bps := 1
	if in.bits > 8 {
		bps = 2
	}
	put := func(b []byte, v int32) []byte {
		if bps == 1 {
			return append(b, byte(v))
		}
		return binary.BigEndian.AppendUint16(b, uint16(v))
	}
	if !in.sub420 && !in.signed && (in.bits == 8 || in.bits == 16) && (in.comps == 1 || in.comps == 3) {
		magic, name := "P5", "in.pgm"
		if in.comps == 3 {
			magic, name = "P6", "in.ppm"
		}
		b := []byte(fmt.Sprintf("%s\n%d %d\n%d\n", magic, in.w, in.h, 1<<uint(in.bits)-1))
		for i := 0; i < in.w*in.h; i++ {
			for c := range planes {
				b = put(b, planes[c][i])
			}
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path, nil
	}
	var b []byte
	for _, p := range planes {
		for _, v := range p {
			if bps == 1 {
				b = append(b, byte(v))
			} else {
				b = binary.LittleEndian.AppendUint16(b, uint16(v))
			}
		}
	}
	path := filepath.Join(dir, "in.yuv")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	signed, depth, down := "false", fmt.Sprint(in.bits), "{1,1}"
	if in.signed {
		signed = "true"
	}
	first := signed
	for c := 1; c < in.comps; c++ {
		signed += "," + first
		depth += fmt.Sprintf(",%d", in.bits)
		if in.sub420 {
			down += ",{2,2}"
		} else {
			down += ",{1,1}"
		}
	}
	return path, []string{"-dims", fmt.Sprintf("{%d,%d}", in.w, in.h), "-num_comps", fmt.Sprint(in.comps),
		"-signed", signed, "-bit_depth", depth, "-downsamp", down}
}

func needOJPH(t *testing.T) string {
	p, err := exec.LookPath("ojph_compress")
	if err != nil {
		testenv.Missing(t, "ojph_compress not found (apt-get install openjph-tools)")
	}
	return p
}

// TestHTEncoded encodes synthetic images with OpenJPH's ojph_compress across
// its options and compares our decoding with opj_decompress's: identical for
// the reversible path (and equal to the input), within one for 9/7.
func TestHTEncoded(t *testing.T) {
	ojph := needOJPH(t)
	opj := needOPJ(t)
	gray8 := htInput{w: 157, h: 119, comps: 1, bits: 8}
	rev := []string{"-reversible", "true"}
	cases := []struct {
		name   string
		in     htInput
		args   []string
		reduce int
	}{
		{"rev 8-bit", gray8, rev, 0},
		{"9/7 8-bit", gray8, nil, 0},
		{"rev 16-bit", htInput{w: 131, h: 77, comps: 1, bits: 16}, rev, 0},
		{"9/7 16-bit", htInput{w: 131, h: 77, comps: 1, bits: 16}, []string{"-qstep", "0.0001"}, 0},
		{"rev 12-bit", htInput{w: 96, h: 101, comps: 1, bits: 12}, rev, 0},
		{"rev 12-bit signed", htInput{w: 96, h: 101, comps: 1, bits: 12, signed: true}, rev, 0},
		{"9/7 12-bit signed", htInput{w: 96, h: 101, comps: 1, bits: 12, signed: true}, []string{"-qstep", "0.001"}, 0},
		{"rev RGB colour transform", htInput{w: 99, h: 64, comps: 3, bits: 8}, rev, 0},
		{"9/7 RGB colour transform", htInput{w: 99, h: 64, comps: 3, bits: 8}, nil, 0},
		{"rev RGB no colour transform", htInput{w: 99, h: 64, comps: 3, bits: 8}, append([]string{"-colour_trans", "false"}, rev...), 0},
		{"rev 4:2:0", htInput{w: 90, h: 70, comps: 3, bits: 8, sub420: true}, rev, 0},
		{"rev tiles", gray8, append([]string{"-tile_size", "{64,48}"}, rev...), 0},
		{"9/7 tiles and offsets", gray8, []string{"-tile_size", "{50,40}", "-tile_offset", "{3,2}", "-image_offset", "{5,7}"}, 0},
		{"rev blocks 4x4", gray8, append([]string{"-block_size", "{4,4}"}, rev...), 0},
		{"rev blocks 16x128", gray8, append([]string{"-block_size", "{16,128}"}, rev...), 0},
		{"9/7 blocks 32x8", gray8, []string{"-block_size", "{32,8}"}, 0},
		{"rev precincts RPCL", gray8, append([]string{"-precincts", "{16,16},{32,32}", "-prog_order", "RPCL"}, rev...), 0},
		{"rev precincts PCRL", gray8, append([]string{"-precincts", "{32,32},{64,64}", "-prog_order", "PCRL"}, rev...), 0},
		{"rev precincts CPRL", htInput{w: 99, h: 64, comps: 3, bits: 8}, append([]string{"-precincts", "{32,32}", "-prog_order", "CPRL"}, rev...), 0},
		{"rev LRCP", gray8, append([]string{"-prog_order", "LRCP"}, rev...), 0},
		{"rev RLCP", gray8, append([]string{"-prog_order", "RLCP"}, rev...), 0},
		{"rev no wavelet", gray8, append([]string{"-num_decomps", "0"}, rev...), 0},
		{"rev 1 level", gray8, append([]string{"-num_decomps", "1"}, rev...), 0},
		{"9/7 7 levels", gray8, []string{"-num_decomps", "7"}, 0},
		{"rev reduced by 2", gray8, rev, 2},
		{"9/7 reduced by 1", htInput{w: 99, h: 64, comps: 3, bits: 8}, nil, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src, desc := tc.in.write(t, dir)
			out := filepath.Join(dir, "out.j2c")
			args := append([]string{"-i", src, "-o", out}, desc...)
			args = append(args, tc.args...)
			if b, err := exec.Command(ojph, args...).CombinedOutput(); err != nil {
				t.Fatalf("ojph_compress %v: %v\n%s", args, err, b)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			img, err := Decode(data, Options{ReduceLevels: tc.reduce})
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			irreversible := isIrreversible(data)
			compareWithReference(t, reference(t, opj, out, tc.reduce, img), img, irreversible)
			if irreversible || tc.reduce > 0 {
				return
			}
			for c, p := range tc.in.planes() {
				if d, n := maxDiff(img.Components[c].Samples, p); d != 0 {
					t.Errorf("component %d: %d samples differ from the input, max %d", c, n, d)
				}
			}
		})
	}
}
