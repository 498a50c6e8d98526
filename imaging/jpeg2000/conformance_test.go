package jpeg2000

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// readPGX reads one component written by opj_decompress.
func readPGX(path string) (w, h, prec int, signed bool, samples []int32, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		err = fmt.Errorf("%s: no PGX header", path)
		return
	}
	f := strings.Fields(strings.NewReplacer("+", " + ", "-", " - ").Replace(string(b[:nl])))
	// PG ML [+|-] prec w h
	if len(f) < 6 || f[0] != "PG" {
		err = fmt.Errorf("%s: PGX header %q", path, b[:nl])
		return
	}
	big := f[1] == "ML"
	signed = f[2] == "-"
	prec, _ = strconv.Atoi(f[3])
	w, _ = strconv.Atoi(f[4])
	h, _ = strconv.Atoi(f[5])
	data := b[nl+1:]
	bps := 1
	if prec > 8 {
		bps = 2
	}
	if prec > 16 {
		bps = 4
	}
	if len(data) < w*h*bps {
		err = fmt.Errorf("%s: %d data bytes for %dx%d", path, len(data), w, h)
		return
	}
	samples = make([]int32, w*h)
	for i := range samples {
		var v uint32
		for k := 0; k < bps; k++ {
			var by byte
			if big {
				by = data[i*bps+k]
			} else {
				by = data[i*bps+bps-1-k]
			}
			v = v<<8 | uint32(by)
		}
		switch {
		case !signed:
			samples[i] = int32(v)
		case bps == 1:
			samples[i] = int32(int8(v))
		case bps == 2:
			samples[i] = int32(int16(v))
		default:
			samples[i] = int32(v)
		}
	}
	return
}

// reference decodes path with opj_decompress into one PGX per component.
func reference(t *testing.T, opj, path string, reduce int, img *Image) [][]int32 {
	t.Helper()
	// opj_decompress takes three components with subsampled chroma for sYCC and
	// converts them to RGB; asked for one component at a time it does not.
	if n := len(img.Components); n == 3 && img.Components[1].Dx != 1 && img.Components[0].Dx == 1 && img.Components[0].Dy == 1 {
		var comps [][]int32
		for c := 0; c < n; c++ {
			comps = append(comps, referenceArgs(t, opj, path, reduce, "-c", strconv.Itoa(c))...)
		}
		return comps
	}
	return referenceArgs(t, opj, path, reduce)
}

func referenceArgs(t *testing.T, opj, path string, reduce int, extra ...string) [][]int32 {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"-i", path, "-o", filepath.Join(dir, "out.pgx"), "-quiet"}, extra...)
	if reduce > 0 {
		args = append(args, "-r", strconv.Itoa(reduce))
	}
	if out, err := exec.Command(opj, args...).CombinedOutput(); err != nil {
		t.Fatalf("opj_decompress %s: %v\n%s", filepath.Base(path), err, out)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "out*.pgx"))
	sort.Slice(files, func(a, b int) bool { return pgxIndex(files[a]) < pgxIndex(files[b]) })
	var comps [][]int32
	for _, f := range files {
		_, _, _, _, s, err := readPGX(f)
		if err != nil {
			t.Fatal(err)
		}
		comps = append(comps, s)
	}
	return comps
}

func pgxIndex(p string) int {
	base := strings.TrimSuffix(filepath.Base(p), ".pgx")
	i := strings.LastIndexByte(base, '_')
	n, _ := strconv.Atoi(base[i+1:])
	return n
}

// maxDiff is the largest difference between two components and how many samples differ.
func maxDiff(a, b []int32) (int32, int) {
	var m int32
	n := 0
	for i := range a {
		d := a[i] - b[i]
		if d < 0 {
			d = -d
		}
		if d > 0 {
			n++
		}
		m = max(m, d)
	}
	return m, n
}

func needOPJ(t *testing.T) string {
	p, err := exec.LookPath("opj_decompress")
	if err != nil {
		testenv.Missing(t, "opj_decompress not found (apt-get install libopenjp2-tools)")
	}
	return p
}

// TestConformance decodes every Part 4 conformance stream and the other Part 1
// streams of the shared corpus and compares each component with opj_decompress:
// identical for reversible streams; for irreversible (9/7) ones, computed in float32,
// within one (Part 4's bound; with Debian's OpenJPEG 2.5.0 they are identical too).
func TestConformance(t *testing.T) {
	dir := testenv.Shared(t, "data/jpeg2000/conformance")
	opj := needOPJ(t)
	var files []string
	for _, pat := range []string{"*.j2k", "*.j2c", "*.jp2"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		files = append(files, m...)
	}
	sort.Strings(files)
	if len(files) < 40 {
		t.Fatalf("only %d streams in %s", len(files), dir)
	}
	var identical, within, refused int
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			img, err := Decode(data, Options{})
			if err != nil {
				if expectRefused[name] != "" && strings.Contains(err.Error(), expectRefused[name]) {
					refused++
					t.Logf("refused as expected: %v", err)
					return
				}
				t.Fatalf("decode: %v", err)
			}
			// A JP2 file's colour specification is not this package's business:
			// compare with OpenJPEG's decoding of the bare codestream.
			refPath := path
			if cs, _ := codestream(data); len(cs) != len(data) {
				refPath = filepath.Join(t.TempDir(), "cs.j2k")
				if err := os.WriteFile(refPath, cs, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ref := reference(t, opj, refPath, 0, img)
			if len(ref) != len(img.Components) {
				t.Fatalf("%d components, opj_decompress %d", len(img.Components), len(ref))
			}
			worst := int32(0)
			for c, comp := range img.Components {
				if len(ref[c]) != len(comp.Samples) {
					t.Fatalf("component %d: %d samples (%dx%d), opj_decompress %d", c, len(comp.Samples), comp.Width, comp.Height, len(ref[c]))
				}
				d, n := maxDiff(comp.Samples, ref[c])
				if d > 0 {
					t.Logf("component %d: %d samples differ, max %d", c, n, d)
				}
				worst = max(worst, d)
			}
			switch {
			case worst == 0:
				identical++
			case worst <= 1 && isIrreversible(data):
				within++
			default:
				t.Errorf("max difference %d from opj_decompress", worst)
			}
		})
	}
	t.Logf("%d streams: %d identical to opj_decompress, %d within 1 (9/7), %d refused as expected", len(files), identical, within, refused)
}

// expectRefused names the streams this decoder declines, with the words its error must hold.
var expectRefused = map[string]string{
	"file9.jp2": "palette",
}

func isIrreversible(data []byte) bool {
	cs, err := codestream(data)
	if err != nil {
		return false
	}
	// The first COD's transform byte: SOC, SIZ, then markers until COD.
	for pos := 2; pos+4 <= len(cs); {
		m, l := u16(cs[pos:]), u16(cs[pos+2:])
		if m == mCOD && pos+13 < len(cs) {
			return cs[pos+13] == 0
		}
		if m == mSOT {
			break
		}
		pos += 2 + l
	}
	return true
}
