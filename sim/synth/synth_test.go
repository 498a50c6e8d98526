package synth

import (
	"math"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"testing"
)

func TestHospitalsDeterministicAndDistinct(t *testing.T) {
	a, b := Hospitals(6, 42), Hospitals(6, 42)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("Hospitals(6, 42) differs between calls")
	}
	if reflect.DeepEqual(a, Hospitals(6, 43)) {
		t.Fatal("Hospitals ignores its seed")
	}
	names, codes := map[string]bool{}, map[string]bool{}
	sizes, bits := map[int]bool{}, map[int]bool{}
	lo, hi := 1.0, 0.0
	for _, h := range a {
		if err := h.Validate(); err != nil {
			t.Errorf("Hospitals gave an invalid hospital: %v", err)
		}
		if names[h.Name] || codes[h.code()] {
			t.Errorf("name %q or code %q repeats", h.Name, h.code())
		}
		names[h.Name], codes[h.code()] = true, true
		sizes[h.Size], bits[h.BitsStored] = true, true
		lo, hi = math.Min(lo, h.PositiveRate), math.Max(hi, h.PositiveRate)
	}
	if len(sizes) < 4 || len(bits) < 2 {
		t.Errorf("scanners hardly differ: sizes %v, bits %v", sizes, bits)
	}
	if hi-lo < 0.2 {
		t.Errorf("label mixes span only %.2f..%.2f", lo, hi)
	}
	many := Hospitals(30, 1)
	seen := map[string]bool{}
	mono1, cr := 0, 0
	for _, h := range many {
		if h.Monochrome1 {
			mono1++
		}
		if h.Modality == "CR" {
			cr++
		}
		if seen[h.Name] || seen[h.code()] || h.Validate() != nil {
			t.Fatalf("hospital %q (code %q) repeats or is invalid", h.Name, h.code())
		}
		seen[h.Name], seen[h.code()] = true, true
	}
	if mono1 == 0 || cr == 0 || cr == len(many) {
		t.Errorf("of 30 hospitals %d are CR and %d store MONOCHROME1; want some of each", cr, mono1)
	}
	if Hospitals(0, 1) != nil || Hospitals(-3, 1) != nil {
		t.Error("Hospitals(n <= 0) is not empty")
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"St Brigid's General":            "st-brigids-general",
		"Riverside Community Hospital 2": "riverside-community-hospital-2",
		"  Élan / Nord  ":                "lan-nord",
		"../..":                          "",
	} {
		if got := Slug(in); got != want {
			t.Errorf("Slug(%q) = %q, want %q", in, got, want)
		}
	}
}

func small(n int) Hospital {
	h := Hospitals(3, 5)[1]
	h.N = n
	return h
}

func TestGenerateDeterministic(t *testing.T) {
	h := small(12)
	a, err := Generate(h, 9)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate(h, 9)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same hospital and seed gave different samples")
	}
	c, _ := Generate(h, 10)
	if reflect.DeepEqual(a[0].Pixels, c[0].Pixels) {
		t.Error("a different seed gave the same first image")
	}
	h2 := h
	h2.Name = "Another Place"
	d, _ := Generate(h2, 9)
	if reflect.DeepEqual(a[0].Pixels, d[0].Pixels) {
		t.Error("two hospitals with the same seed got the same first image")
	}
}

func TestGenerateLabelMixAndRange(t *testing.T) {
	for _, h := range Hospitals(4, 3) {
		h.N = 40
		s, err := Generate(h, 1)
		if err != nil {
			t.Fatal(err)
		}
		pos := 0
		for _, x := range s {
			pos += x.Label
			if x.Rows != h.Size || x.Cols != h.Size || len(x.Pixels) != h.Size*h.Size {
				t.Fatalf("%s: sample is %dx%d with %d pixels, want %d square", h.Name, x.Rows, x.Cols, len(x.Pixels), h.Size)
			}
			lo, hi := slices.Min(x.Pixels), slices.Max(x.Pixels)
			if int(hi) > maxStored(h.BitsStored) {
				t.Fatalf("%s: pixel %d exceeds %d bits", h.Name, hi, h.BitsStored)
			}
			// The body fills a good part of the scanner's range.
			if float64(hi-lo) < 0.3*h.Scale {
				t.Fatalf("%s: pixels span only %d..%d for scale %v", h.Name, lo, hi, h.Scale)
			}
		}
		if want := int(math.Round(40 * h.PositiveRate)); pos != want {
			t.Errorf("%s: %d positives, want %d", h.Name, pos, want)
		}
	}
}

func TestFakePatients(t *testing.T) {
	name := regexp.MustCompile(`^ZZSYNTH[A-Z0-9]+\^[A-Z]+\^[A-Z]{6}$`)
	id := regexp.MustCompile(`^SYN[A-Z0-9]+\d{10}$`)
	acc := regexp.MustCompile(`^A[A-Z0-9]+\d{10}$`)
	date := regexp.MustCompile(`^(19[3-9]\d|200\d)(0[1-9]|1[0-2])(0[1-9]|[12]\d)$`)
	seen := map[string]bool{}
	var all []Sample
	for _, h := range Hospitals(5, 2) {
		h.N = 30
		for _, seed := range []int64{4, 5} { // a training and a test draw
			s, err := Generate(h, seed)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, s...)
		}
	}
	for _, x := range all {
		p := x.Patient
		if !name.MatchString(p.Name) || !id.MatchString(p.ID) || !acc.MatchString(p.Accession) || !date.MatchString(p.BirthDate) ||
			len(p.Accession) > 16 {
			t.Fatalf("bad fake identifiers %+v", p)
		}
		for _, v := range []string{p.Name, p.ID, p.Accession} {
			if seen[v] {
				t.Fatalf("identifier %q repeats", v)
			}
			seen[v] = true
		}
	}
}

func TestGenerateRejectsBadHospitals(t *testing.T) {
	good := small(4)
	for name, mutate := range map[string]func(*Hospital){
		"empty name":      func(h *Hospital) { h.Name = " " },
		"no letters":      func(h *Hospital) { h.Name = "!!" },
		"negative n":      func(h *Hospital) { h.N = -1 },
		"tiny":            func(h *Hospital) { h.Size = 4 },
		"huge":            func(h *Hospital) { h.Size = 1 << 20 },
		"too much":        func(h *Hospital) { h.N, h.Size = 1<<30, 1024 },
		"rate":            func(h *Hospital) { h.PositiveRate = 1.5 },
		"nan rate":        func(h *Hospital) { h.PositiveRate = math.NaN() },
		"bits":            func(h *Hospital) { h.BitsStored = 20 },
		"scale":           func(h *Hospital) { h.Scale = 0 },
		"overflow":        func(h *Hospital) { h.BitsStored, h.Scale, h.Offset = 8, 250, 10 },
		"negative offset": func(h *Hospital) { h.Offset = -1 },
		"noise":           func(h *Hospital) { h.NoiseSigma = math.Inf(1) },
		"contrast":        func(h *Hospital) { h.Contrast = 0 },
		"blur":            func(h *Hospital) { h.Blur = 100 },
		"modality":        func(h *Hospital) { h.Modality = "CT" },
	} {
		h := good
		mutate(&h)
		if _, err := Generate(h, 1); err == nil {
			t.Errorf("%s: Generate accepted %+v", name, h)
		}
	}
	if _, err := Generate(good, 1); err != nil {
		t.Fatalf("good hospital rejected: %v", err)
	}
	zero := good
	zero.N = 0
	if s, err := Generate(zero, 1); err != nil || len(s) != 0 {
		t.Errorf("N=0 gave %d samples, %v", len(s), err)
	}
}

func TestLesionLiesInALung(t *testing.T) {
	for i := range 500 {
		rng := newRng(uint64(i))
		a := newAnatomy(rng, 1)
		in := false
		for s := range 2 {
			if tilted(a.lesX, a.lesY, a.lungX[s], a.lungY[s], a.lungRX[s], a.lungRY[s], a.lungCos[s], a.lungSin[s]) <= 0.75*0.75+1e-9 {
				in = true
			}
		}
		if !in || a.lesAmp <= 0 || a.lesSX <= 0 {
			t.Fatalf("draw %d: lesion at (%.2f, %.2f) amp %.2f is outside both lungs", i, a.lesX, a.lesY, a.lesAmp)
		}
		if b := newAnatomy(newRng(uint64(i)), 0); b.lesion {
			t.Fatal("label 0 drew a lesion")
		}
	}
}

func TestInput(t *testing.T) {
	s, err := Generate(small(2), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{28, 32, 100} {
		in, err := s[0].Input(size)
		if err != nil {
			t.Fatal(err)
		}
		if len(in) != size*size {
			t.Fatalf("Input(%d) has %d values", size, len(in))
		}
		var m, v float64
		for _, x := range in {
			m += float64(x)
		}
		m /= float64(len(in))
		for _, x := range in {
			v += (float64(x) - m) * (float64(x) - m)
		}
		if math.Abs(m) > 1e-3 || math.Abs(v/float64(len(in))-1) > 1e-3 {
			t.Errorf("Input(%d): mean %v variance %v, want 0 and 1", size, m, v/float64(len(in)))
		}
	}
	for _, size := range []int{0, -1, MaxSize + 1} {
		if _, err := s[0].Input(size); err == nil {
			t.Errorf("Input(%d) accepted", size)
		}
	}
	if _, err := (Sample{Rows: 3, Cols: 3, Pixels: make([]uint16, 8)}).Input(4); err == nil {
		t.Error("Input accepted a short pixel slice")
	}
}

// TestLearnable checks that the labels are in the pixels: a logistic
// regression on 16x16 pixels, trained on one draw and tested on another,
// ranks lesions above normals well beyond chance (noise with random labels
// gives 0.5), yet short of perfect.
func TestLearnable(t *testing.T) {
	const size = 16
	hs := Hospitals(3, 11)
	data := func(seed int64) (x [][]float64, y []int) {
		for _, h := range hs {
			h.N = 160
			if testing.Short() {
				h.N = 100
			}
			s, err := Generate(h, seed)
			if err != nil {
				t.Fatal(err)
			}
			for _, smp := range s {
				in, err := smp.Input(size)
				if err != nil {
					t.Fatal(err)
				}
				row := make([]float64, len(in))
				for i, v := range in {
					row[i] = float64(v)
				}
				x = append(x, row)
				y = append(y, smp.Label)
			}
		}
		return x, y
	}
	xtr, ytr := data(1)
	xte, yte := data(2)

	w := make([]float64, size*size+1)
	const lr, l2 = 0.05, 1e-3
	for range 150 {
		grad := make([]float64, len(w))
		for i, row := range xtr {
			z := w[len(w)-1]
			for j, v := range row {
				z += w[j] * v
			}
			d := 1/(1+math.Exp(-z)) - float64(ytr[i])
			for j, v := range row {
				grad[j] += d * v
			}
			grad[len(w)-1] += d
		}
		for j := range w {
			w[j] -= lr * (grad[j]/float64(len(xtr)) + l2*w[j])
		}
	}
	scores := make([]float64, len(xte))
	for i, row := range xte {
		z := w[len(w)-1]
		for j, v := range row {
			z += w[j] * v
		}
		scores[i] = z
	}
	got := auc(scores, yte)
	t.Logf("logistic regression on %dx%d pixels: test AUC %.3f (%d train, %d test)", size, size, got, len(xtr), len(xte))
	if got < 0.75 {
		t.Errorf("test AUC %.3f; the lesion is not learnable from the pixels", got)
	}
	// A linear model must not solve it outright, or the demo's learning
	// curve would show nothing to learn.
	if got > 0.98 {
		t.Errorf("test AUC %.3f; the task is trivial", got)
	}
}

// auc is the Mann-Whitney estimate of the area under the ROC curve.
func auc(scores []float64, labels []int) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	var rankSum float64
	var pos int
	for r := 0; r < len(idx); {
		e := r
		for e+1 < len(idx) && scores[idx[e+1]] == scores[idx[r]] {
			e++
		}
		mid := float64(r+e)/2 + 1
		for k := r; k <= e; k++ {
			if labels[idx[k]] == 1 {
				rankSum += mid
				pos++
			}
		}
		r = e + 1
	}
	neg := len(scores) - pos
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	return (rankSum - float64(pos*(pos+1))/2) / float64(pos*neg)
}
