package synth

import (
	"bytes"
	"image/color"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/internal/testenv"
)

func TestWriteDICOMRoundTrip(t *testing.T) {
	dir := t.TempDir()
	hs := Hospitals(2, 8)
	uids := map[string]bool{}
	for _, h := range hs {
		h.N = 14
		m, err := WriteDICOM(dir, h, 3)
		if err != nil {
			t.Fatal(err)
		}
		samples, err := Generate(h, 3)
		if err != nil {
			t.Fatal(err)
		}
		if m.Dir != filepath.Join(dir, h.Slug()) || len(m.Entries) != h.N {
			t.Fatalf("manifest %+v for %d samples", m, h.N)
		}
		if m.Positives() == 0 || m.Positives() == h.N {
			t.Fatalf("%d of %d positives; want a mix", m.Positives(), h.N)
		}
		for i, e := range m.Entries {
			want := ClassNormal
			if e.Label == 1 {
				want = ClassLesion
			}
			if e.Label != samples[i].Label || !strings.HasPrefix(e.Path, want+"/") {
				t.Fatalf("entry %d is %+v for label %d", i, e, samples[i].Label)
			}
			path := filepath.Join(m.Dir, filepath.FromSlash(e.Path))
			im, err := imaging.ReadFile(path)
			if err != nil {
				t.Fatalf("read back %s: %v", e.Path, err)
			}
			if im.Rows != h.Size || im.Columns != h.Size || im.Modality != h.Modality || im.BitsStored != h.BitsStored || !im.HasWindow {
				t.Fatalf("%s: header %dx%d %s bits %d window %v", e.Path, im.Rows, im.Columns, im.Modality, im.BitsStored, im.HasWindow)
			}
			px, err := im.Frame(0)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range px {
				if uint16(v) != samples[i].Pixels[k] {
					t.Fatalf("%s: pixel %d is %v, generated %d", e.Path, k, v, samples[i].Pixels[k])
				}
			}
			// The site's standardisation turns it into a model input.
			in, err := imaging.Pipeline{Width: 28, Height: 28, Channels: 1, Resample: "area", Normalise: "auto"}.Apply(im, 0)
			if err != nil || len(in) != 28*28 {
				t.Fatalf("%s: pipeline gave %d values, %v", e.Path, len(in), err)
			}
			for _, v := range in {
				if v != v || v < -0.01 || v > 1.01 {
					t.Fatalf("%s: pipeline value %v outside 0..1", e.Path, v)
				}
			}
			for _, u := range []string{im.StudyInstanceUID, im.SeriesInstanceUID, im.SOPInstanceUID} {
				if !strings.HasPrefix(u, "2.25.") || !imaging.ValidUID(u) || uids[u] {
					t.Fatalf("%s: uid %q is malformed or repeats", e.Path, u)
				}
				uids[u] = true
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range []string{h.Name, samples[i].Patient.ID, samples[i].Patient.Name} {
				if !bytes.Contains(raw, []byte(v)) {
					t.Fatalf("%s does not carry %q", e.Path, v)
				}
			}
		}
		// The imaging package's own loader reads the manifest back.
		ex, err := imaging.LoadManifest(m.CSV, m.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(ex) != len(m.Entries) {
			t.Fatalf("LoadManifest read %d entries, wrote %d", len(ex), len(m.Entries))
		}
		for i := range ex {
			if ex[i].Label != m.Entries[i].Label || ex[i].Path != filepath.Join(m.Dir, filepath.FromSlash(m.Entries[i].Path)) {
				t.Fatalf("manifest row %d read as %+v, wrote %+v", i, ex[i], m.Entries[i])
			}
		}
	}
	// Same seed, same files.
	m1, _ := WriteDICOM(filepath.Join(dir, "again"), hs[0], 3)
	a, _ := os.ReadFile(filepath.Join(m1.Dir, filepath.FromSlash(m1.Entries[0].Path)))
	b, _ := os.ReadFile(filepath.Join(dir, hs[0].Slug(), filepath.FromSlash(m1.Entries[0].Path)))
	if !bytes.Equal(a, b) {
		t.Error("WriteDICOM is not deterministic")
	}
}

// TestWriteDICOMPydicom has an independent reader, pydicom, open a written
// file and agree on its header and pixels.
func TestWriteDICOMPydicom(t *testing.T) {
	py := testenv.Python(t, "pydicom", "numpy")
	h := Hospitals(1, 2)[0]
	h.N = 3
	m, err := WriteDICOM(t.TempDir(), h, 1)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := Generate(h, 1)
	path := filepath.Join(m.Dir, filepath.FromSlash(m.Entries[0].Path))
	out, err := exec.Command(py, "-c", `import sys, pydicom
d = pydicom.dcmread(sys.argv[1])
a = d.pixel_array
print(d.Rows, d.Columns, d.Modality, d.InstitutionName, d.PatientID, int(a.sum()))`, path).CombinedOutput()
	if err != nil {
		t.Fatalf("pydicom: %v\n%s", err, out)
	}
	var sum int
	for _, p := range s[0].Pixels {
		sum += int(p)
	}
	got := strings.Fields(string(out))
	want := []string{strconv.Itoa(h.Size), strconv.Itoa(h.Size), h.Modality}
	if len(got) < 4 || !reflect.DeepEqual(got[:3], want) || !strings.Contains(string(out), h.Name) ||
		!strings.Contains(string(out), s[0].Patient.ID) || got[len(got)-1] != strconv.Itoa(sum) {
		t.Fatalf("pydicom read %q; want %v, %q, %q and pixel sum %d", out, want, h.Name, s[0].Patient.ID, sum)
	}
}

func TestWriteDICOMErrors(t *testing.T) {
	h := Hospitals(1, 1)[0]
	h.N = 2
	bad := h
	bad.Size = 3
	if _, err := WriteDICOM(t.TempDir(), bad, 1); err == nil {
		t.Error("WriteDICOM accepted an invalid hospital")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteDICOM(file, h, 1); err == nil {
		t.Error("WriteDICOM wrote under a regular file")
	}
}

func TestContact(t *testing.T) {
	h := Hospitals(1, 1)[0]
	h.N, h.PositiveRate = 6, 0.5
	s, err := Generate(h, 1)
	if err != nil {
		t.Fatal(err)
	}
	img := Contact(s)
	b := img.Bounds()
	if b.Dx() != 3*100+4 || b.Dy() != 2*104+4 {
		t.Fatalf("contact sheet of 6 is %v", b)
	}
	var dark, orange int
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			if c.R < 40 && c.G < 40 && c.B < 40 {
				dark++
			}
			if c == (color.RGBA{230, 120, 0, 255}) {
				orange++
			}
		}
	}
	if dark < 1000 || orange != 3*96*4 {
		t.Errorf("contact sheet has %d dark pixels and %d orange ones", dark, orange)
	}
	if Contact(nil).Bounds().Empty() {
		t.Error("empty contact sheet has no bounds")
	}
	if out := os.Getenv("SYNTH_CONTACT"); out != "" {
		writePNG(t, out, img)
	}
}

// TestMonochrome1 checks that an inverted-storage site gives the same
// model input as an ordinary one, both in memory and through DICOM files
// and the imaging pipeline.
func TestMonochrome1(t *testing.T) {
	h := Hospitals(2, 4)[0]
	h.N, h.Monochrome1 = 6, false
	inv := h
	inv.Monochrome1 = true
	dir := t.TempDir()
	m2, err := WriteDICOM(filepath.Join(dir, "m2"), h, 1)
	if err != nil {
		t.Fatal(err)
	}
	m1, err := WriteDICOM(filepath.Join(dir, "m1"), inv, 1)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := Generate(h, 1)
	b, _ := Generate(inv, 1)
	pipe := imaging.Pipeline{Width: 28, Height: 28, Channels: 1, Resample: "area", Normalise: "auto"}
	for i := range a {
		if reflect.DeepEqual(a[i].Pixels, b[i].Pixels) || !b[i].Monochrome1 {
			t.Fatal("Monochrome1 did not invert the stored pixels")
		}
		ia, _ := a[i].Input(28)
		ib, _ := b[i].Input(28)
		for k := range ia {
			if d := ia[k] - ib[k]; d > 0.05 || d < -0.05 {
				t.Fatalf("sample %d: Input differs by %v at %d between MONOCHROME1 and MONOCHROME2", i, d, k)
			}
		}
		var pa, pb []float32
		for _, x := range []struct {
			m   Manifest
			out *[]float32
		}{{m2, &pa}, {m1, &pb}} {
			im, err := imaging.ReadFile(filepath.Join(x.m.Dir, filepath.FromSlash(x.m.Entries[i].Path)))
			if err != nil {
				t.Fatal(err)
			}
			if *x.out, err = pipe.Apply(im, 0); err != nil {
				t.Fatal(err)
			}
		}
		for k := range pa {
			if d := pa[k] - pb[k]; d > 0.02 || d < -0.02 {
				t.Fatalf("sample %d: pipeline output differs by %v at %d between MONOCHROME1 and MONOCHROME2 files", i, d, k)
			}
		}
	}
}

// TestWriteDICOMSubgroups: the generated files state sex, age, manufacturer
// and model, with more than one value of each over a hospital, so that
// validation reports non-trivial subgroups.
func TestWriteDICOMSubgroups(t *testing.T) {
	h := Hospitals(1, 5)[0]
	h.N = 60
	m, err := WriteDICOM(t.TempDir(), h, 2)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]map[string]int{}
	for _, e := range m.Entries {
		im, err := imaging.ReadFile(filepath.Join(m.Dir, filepath.FromSlash(e.Path)))
		if err != nil {
			t.Fatal(err)
		}
		for f, v := range im.Groups() {
			if v == "" {
				t.Fatalf("%s: no %s", e.Path, f)
			}
			if seen[f] == nil {
				seen[f] = map[string]int{}
			}
			seen[f][v]++
		}
	}
	for _, f := range imaging.GroupFields {
		if len(seen[f]) < 2 {
			t.Errorf("%s: one value only over %d images: %v", f, h.N, seen[f])
		}
	}
	if seen[imaging.GroupManufacturer][h.Manufacturer] <= h.N/2 {
		t.Errorf("the hospital's own manufacturer took %d of %d images", seen[imaging.GroupManufacturer][h.Manufacturer], h.N)
	}
	t.Logf("subgroups: %v", seen)
}
