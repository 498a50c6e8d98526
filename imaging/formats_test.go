package imaging

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// formatCase is one file written by testdata/pydicom_formats.py.
type formatCase struct {
	Name, File, Ref, RGB string
}

// TestRarePixelFormatsAgainstPydicom decodes parametric maps (Float and Double Float
// Pixel Data), 1-bit RLE and segmented palettes, all built with pydicom from real
// files of the shared corpus, and compares the stored values with pydicom's
// pixel_array (for 1-bit RLE, which pydicom 2 cannot decode, with the pixel_array of
// the uncompressed source) and palette colours with pydicom's apply_color_lut.
func TestRarePixelFormatsAgainstPydicom(t *testing.T) {
	testenv.Shared(t, "data/dicom/pydicom/CT_small.dcm")
	testenv.Shared(t, "data/dicom/pydicom/examples_palette.dcm")
	testenv.Shared(t, "data/dicom/dcmqi/liver-seg.dcm")
	py := testenv.Python(t, "pydicom", "numpy")
	dir := t.TempDir()
	cmd := exec.Command(py, filepath.Join("testdata", "pydicom_formats.py"), testenv.SharedDir(), dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pydicom_formats.py: %v\n%s", err, stderr.String())
	}
	var cases []formatCase
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var c formatCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("pydicom_formats.py output %q: %v", sc.Text(), err)
		}
		cases = append(cases, c)
	}
	kinds := map[string]int{}
	var refs []string
	seen := map[string]bool{}
	for _, c := range cases {
		kinds[strings.SplitN(c.Name, "-", 2)[0]]++
		if !seen[c.Ref] {
			seen[c.Ref] = true
			refs = append(refs, c.Ref)
		}
	}
	if kinds["float"] < 3 || kinds["double"] < 3 || kinds["rle1"] < 3 || kinds["palseg"] < 6 {
		t.Fatalf("pydicom_formats.py wrote %v", kinds)
	}
	ref := runPydicom(t, py, refs)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			r := ref[c.Ref]
			if !r.OK {
				t.Fatalf("pydicom cannot decode the reference: %s", r.Error)
			}
			im, err := ReadFile(c.File)
			if err != nil {
				t.Fatalf("read: %v (%s)", err, Reason(err))
			}
			got, shape, err := storedAll(im)
			if err != nil {
				t.Fatalf("decode: %v (%s)", err, Reason(err))
			}
			head, err := ReadHeader(c.File)
			if err != nil {
				t.Fatalf("header read: %v", err)
			}
			if head.Rows != im.Rows || head.Columns != im.Columns || head.Frames != im.Frames || head.Dtype() != im.Dtype() {
				t.Fatalf("header read gives %dx%d, %d frames, %s; full read %dx%d, %d frames, %s",
					head.Rows, head.Columns, head.Frames, head.Dtype(), im.Rows, im.Columns, im.Frames, im.Dtype())
			}
			b, err := os.ReadFile(r.NPY)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ReadNPY(b)
			if err != nil {
				t.Fatal(err)
			}
			if !equalInts(want.Shape, shape) || want.Dtype != im.Dtype() {
				t.Fatalf("shape %v %s, pydicom %v %s", shape, im.Dtype(), want.Shape, want.Dtype)
			}
			if !bytes.Equal(want.Data, got) {
				t.Fatalf("stored values differ from pydicom at %d of %d bytes", countDiff(want.Data, got), len(got))
			}
			px, err := im.Frame(0)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case c.RGB != "":
				rgb := readFloat64NPY(t, c.RGB)
				if len(rgb) != len(px) {
					t.Fatalf("%d colour values, pydicom %d", len(px), len(rgb))
				}
				for k := range rgb {
					if math.Abs(float64(px[k])-rgb[k]) > 1e-3 {
						t.Fatalf("colour value %d: %v, pydicom's apply_color_lut %v", k, px[k], rgb[k])
					}
				}
			case im.Dtype() == "<f4" || im.Dtype() == "<f8":
				for k := range px {
					var v float64
					if im.Dtype() == "<f8" {
						v = math.Float64frombits(binary.LittleEndian.Uint64(want.Data[8*k:]))
					} else {
						v = float64(math.Float32frombits(binary.LittleEndian.Uint32(want.Data[4*k:])))
					}
					if px[k] != float32(v) {
						t.Fatalf("value %d: %v, pydicom %v", k, px[k], v)
					}
				}
			}
		})
	}
}

// TestDeflatePaddingAgainstPydicom re-deflates the corpus's deflated file with the
// paddings writers add (a null byte after an odd-length data set, nulls after the
// deflate stream) and expects pydicom's pixels from each.
func TestDeflatePaddingAgainstPydicom(t *testing.T) {
	src := filepath.Join(testenv.Shared(t, "data/dicom/pydicom"), "image_dfl.dcm")
	py := testenv.Python(t, "pydicom", "numpy")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	metaEnd := 144 + int(binary.LittleEndian.Uint32(b[140:144]))
	ds, err := io.ReadAll(flate.NewReader(bytes.NewReader(b[metaEnd:])))
	if err != nil {
		t.Fatal(err)
	}
	deflate := func(p []byte) []byte {
		var buf bytes.Buffer
		w, _ := flate.NewWriter(&buf, flate.BestCompression)
		_, _ = w.Write(p)
		_ = w.Close()
		return buf.Bytes()
	}
	odd := func(p []byte) []byte {
		for len(p)%2 == 0 {
			p = append(p, 0)
		}
		return p
	}
	even := func(p []byte) []byte {
		if len(p)%2 == 1 {
			p = append(p, 0)
		}
		return p
	}
	join := func(p ...[]byte) []byte { return bytes.Join(p, nil) }
	cases := map[string][]byte{
		"dataset-padded-1":        deflate(join(ds, []byte{0})),
		"dataset-padded-3":        deflate(join(ds, []byte{0, 0, 0})),
		"dataset-odd-stream-even": even(deflate(join(ds, []byte{0}))),
		"stream-null-after":       join(deflate(ds), []byte{0}),
		"stream-odd":              odd(deflate(ds)),
	}
	dir := t.TempDir()
	var paths []string
	for name, stream := range cases {
		p := filepath.Join(dir, name+".dcm")
		if err := os.WriteFile(p, join(b[:metaEnd], stream), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	ref := runPydicom(t, py, paths)
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			r := ref[p]
			if !r.OK {
				t.Fatalf("pydicom: %s", r.Error)
			}
			im, err := ReadFile(p)
			if err != nil {
				t.Fatalf("%v (%s)", err, Reason(err))
			}
			got, _, err := storedAll(im)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(r.NPY)
			if err != nil {
				t.Fatal(err)
			}
			a, err := ReadNPY(want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Data, got) {
				t.Fatalf("pixels differ from pydicom at %d of %d bytes", countDiff(a.Data, got), len(got))
			}
		})
	}
	// Trailing bytes that are not padding still mean a damaged file.
	bad := join(b[:metaEnd], deflate(join(ds, []byte{0x10, 0})))
	if _, err := Read(bad, DefaultLimits); Reason(err) != "truncated" {
		t.Errorf("non-null bytes after the last element: %v, want a truncated file", err)
	}
}

// TestFloatNonFiniteInPipeline: NaN (a parametric map's "no value") and infinities
// leave the pipeline as finite values, NaN at the bottom of the range.
func TestFloatNonFiniteInPipeline(t *testing.T) {
	im, err := Read(formatSeeds(t)["float32"], DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	v := im.pixel.Value
	for k := 0; k < 16; k++ { // the first two rows
		binary.LittleEndian.PutUint32(v[4*k:], math.Float32bits(float32(math.NaN())))
	}
	binary.LittleEndian.PutUint32(v[4*40:], math.Float32bits(float32(math.Inf(1))))
	binary.LittleEndian.PutUint32(v[4*41:], math.Float32bits(float32(math.Inf(-1))))
	for _, norm := range []string{"auto", "minmax", "zscore", "percentile:1:99"} {
		p := Pipeline{Width: 8, Height: 8, Channels: 1, Resample: "area", Normalise: norm}
		out, err := p.Apply(im, 0)
		if err != nil {
			t.Fatalf("%s: %v", norm, err)
		}
		for k, x := range out {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("%s: value %d is %v", norm, k, x)
			}
		}
		if norm == "minmax" && (out[0] != 0 || out[40] != 1 || out[41] != 0) {
			t.Errorf("minmax: NaN gives %v, +Inf %v, -Inf %v; want 0, 1, 0", out[0], out[40], out[41])
		}
	}
}

// TestSegmentExpansionAgainstPydicom expands random segment lists (discrete, linear
// with rounding ties, indirect copies at relative offsets, loops, trailing nulls) in
// both entry sizes and byte orders, and expects pydicom's table or, where pydicom
// fails, an error.
func TestSegmentExpansionAgainstPydicom(t *testing.T) {
	py := testenv.Python(t, "pydicom", "numpy")
	type segCase struct {
		Words []int  `json:"words"`
		Fmt   string `json:"fmt"`
	}
	rng := rand.New(rand.NewSource(7))
	var cases []segCase
	for i := 0; i < 400; i++ {
		fmt := []string{"<H", ">H", "<B", ">B"}[i%4]
		top := 65535
		if fmt[1] == 'B' || rng.Intn(2) == 0 {
			top = 255
		}
		if rng.Intn(3) == 0 {
			top = 9 // small steps: many halves to round
		}
		var w, starts []int
		for s, n := 0, 1+rng.Intn(8); s < n; s++ {
			starts = append(starts, len(w))
			op := rng.Intn(3)
			if s == 0 && rng.Intn(8) != 0 {
				op = 0
			}
			switch op {
			case 0:
				k := rng.Intn(5)
				w = append(w, 0, k)
				for j := 0; j < k; j++ {
					w = append(w, rng.Intn(top+1))
				}
			case 1:
				k := 1 + rng.Intn(6)
				if rng.Intn(10) == 0 {
					k = 0
				}
				w = append(w, 1, k, rng.Intn(top+1))
			case 2:
				off := starts[rng.Intn(len(starts))] // an earlier segment's start, mostly
				if len(starts) > 1 {
					off = starts[rng.Intn(len(starts)-1)]
				}
				if rng.Intn(4) == 0 {
					off = rng.Intn(len(w) + 3)
				}
				w = append(w, 2, rng.Intn(4))
				if fmt[1] == 'B' {
					// four bytes that pydicom reads as two words, low word first
					lo, hi := off&0xFFFF, off>>16
					if fmt[0] == '<' {
						w = append(w, lo&0xFF, lo>>8, hi&0xFF, hi>>8)
					} else {
						w = append(w, lo>>8, lo&0xFF, hi>>8, hi&0xFF)
					}
				} else {
					w = append(w, off&0xFFFF, off>>16)
				}
			}
		}
		if rng.Intn(4) == 0 {
			w = append(w, 0) // trailing null
		}
		cases = append(cases, segCase{w, fmt})
	}
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join("testdata", "pydicom_segments.py"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pydicom_segments.py: %v\n%s", err, stderr.String())
	}
	var want []struct {
		LUT   []int  `json:"lut"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &want); err != nil || len(want) != len(cases) {
		t.Fatalf("pydicom_segments.py gave %d results for %d cases: %v", len(want), len(cases), err)
	}
	var errs int
	for i, c := range cases {
		x := segExpander{byteWords: c.Fmt[1] == 'B', big: c.Fmt[0] == '>', max: 1 << 16, budget: 1 << 20, entries: 1 << 24}
		got, err := x.expand(c.Words, -1, -1, 0)
		switch {
		case want[i].Error != "":
			errs++
			if err == nil {
				t.Errorf("case %d %s %v: pydicom fails (%s), ours gives %v", i, c.Fmt, c.Words, want[i].Error, got)
			}
		case err != nil:
			t.Errorf("case %d %s %v: pydicom gives %v, ours fails: %v", i, c.Fmt, c.Words, want[i].LUT, err)
		case !equalInts(got, want[i].LUT) && !(len(got) == 0 && len(want[i].LUT) == 0):
			t.Errorf("case %d %s %v: got %v, pydicom %v", i, c.Fmt, c.Words, got, want[i].LUT)
		}
	}
	if errs < 40 || len(cases)-errs < 160 {
		t.Errorf("%d of %d cases fail in pydicom: the generator no longer covers both outcomes", errs, len(cases))
	}
	t.Logf("%d cases, %d refused by both", len(cases), errs)
}
