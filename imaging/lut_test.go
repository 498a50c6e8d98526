package imaging

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// withElements re-encodes a synthetic file with extra or replaced top-level elements.
func withElements(t *testing.T, f SyntheticFile, els ...Element) []byte {
	t.Helper()
	b, err := EncodeSynthetic(f)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := Parse(b, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range els {
		pf.Data.setElement(e)
	}
	out, err := encodeFile(pf.Meta, pf.Data, TSExplicitLE)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func lutItem(first, bits int, data []uint16) *Dataset {
	desc := make([]byte, 6)
	binary.LittleEndian.PutUint16(desc, uint16(len(data)))
	binary.LittleEndian.PutUint16(desc[2:], uint16(first))
	binary.LittleEndian.PutUint16(desc[4:], uint16(bits))
	v := make([]byte, 2*len(data))
	for i, d := range data {
		binary.LittleEndian.PutUint16(v[2*i:], d)
	}
	return &Dataset{Elements: []Element{{Tag: tagLUTDescriptor, VR: "US", Value: desc}, {Tag: tagLUTData, VR: "OW", Value: v}}}
}

// TestLUTsAgainstPydicom builds files with a Modality LUT Sequence, a VOI LUT Sequence,
// and windows with each VOI LUT Function, and compares this package's modality values
// and VOI output with pydicom's apply_modality_lut and apply_voi_lut.
func TestLUTsAgainstPydicom(t *testing.T) {
	py := testenv.Python(t, "pydicom", "numpy")
	dir := t.TempDir()
	base := synthetic(16, 16)
	base.WindowWidth, base.RescaleSlope = 0, 0
	base.Modality = "CR"
	ramp := make([]uint16, 400)
	for i := range ramp {
		ramp[i] = uint16(i * 10)
	}
	voiRamp := make([]uint16, 1000)
	for i := range voiRamp {
		voiRamp[i] = uint16(65535 - i*37)
	}
	for i := range base.Pixels {
		base.Pixels[i] = uint16(i * 3 % 600)
	}
	type tc struct {
		name string
		file []byte
	}
	withWin := base
	withWin.WindowCenter, withWin.WindowWidth = 300, 250
	withWin.RescaleSlope, withWin.RescaleIntercept = 2, -100
	cases := []tc{
		{"modality-and-voi-lut", withElements(t, base,
			Element{Tag: tagModalityLUTSeq, VR: "SQ", Items: []*Dataset{lutItem(100, 16, ramp)}},
			// 16-bit entries: pydicom 2.3 indexes an 8-bit LUT with uint8 and wraps
			// inputs past 255, which the standard does not do.
			Element{Tag: tagVOILUTSeq, VR: "SQ", Items: []*Dataset{lutItem(50, 16, voiRamp)}})},
		{"linear", withElements(t, withWin)},
		{"linear-exact", withElements(t, withWin, Element{Tag: tagVOILUTFunction, VR: "CS", Value: []byte("LINEAR_EXACT")})},
		{"sigmoid", withElements(t, withWin, Element{Tag: tagVOILUTFunction, VR: "CS", Value: []byte("SIGMOID ")})},
	}
	var paths []string
	for _, c := range cases {
		p := filepath.Join(dir, c.name+".dcm")
		if err := os.WriteFile(p, c.file, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	cmd := exec.Command(py, append([]string{filepath.Join("testdata", "pydicom_lut.py"), dir}, paths...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pydicom: %v\n%s", err, stderr.String())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for i := 0; sc.Scan(); i++ {
		var r struct{ File, Mod, Voi string }
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		t.Run(cases[i].name, func(t *testing.T) {
			im, err := ReadFile(r.File)
			if err != nil {
				t.Fatal(err)
			}
			mod, err := im.Frame(0)
			if err != nil {
				t.Fatal(err)
			}
			want := readFloat64NPY(t, r.Mod)
			for k := range want {
				if math.Abs(float64(mod[k])-want[k]) > 1e-3 {
					t.Fatalf("modality value %d: %v, pydicom %v", k, mod[k], want[k])
				}
			}
			v := append([]float32(nil), mod...)
			if !im.voi(v) {
				t.Fatal("no voi found")
			}
			wantV := readFloat64NPY(t, r.Voi)
			// pydicom gives LUT entries, or windowed values on the output range.
			lo, hi := 0.0, 65535.0
			if im.VOILUT == nil {
				lo, hi = 0*2-100, float64(uint32(1)<<uint(im.BitsStored)-1)*2-100
			}
			for k := range wantV {
				got := float64(v[k])*(hi-lo) + lo
				if math.Abs(got-wantV[k]) > 1e-3*(hi-lo) {
					t.Fatalf("voi value %d: %v, pydicom %v", k, got, wantV[k])
				}
			}
		})
	}
}

func readFloat64NPY(t *testing.T, p string) []float64 {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ReadNPY(b)
	if err != nil || a.Dtype != "<f8" {
		t.Fatalf("npy %s: %v %v", p, err, a)
	}
	out := make([]float64, len(a.Data)/8)
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(a.Data[8*i:]))
	}
	return out
}
