package evaluation

import (
	"math"
	"slices"
	"testing"
)

// shiftPSI is the index, worked by hand, of ten equal bins against bins
// where the first holds twice its share and the last none: the one bin
// that doubled adds 0.1*ln 2, the one that emptied (floored at
// PSIEpsilon) adds (0.1-1e-4)*ln(0.1/1e-4).
var shiftPSI = 0.1*math.Log(2) + (0.1-PSIEpsilon)*math.Log(0.1/PSIEpsilon)

func TestPSI(t *testing.T) {
	tenth := slices.Repeat([]float64{0.1}, 10)
	shifted := append([]float64{0.2}, append(slices.Repeat([]float64{0.1}, 8), 0)...)
	cases := []struct {
		name             string
		expected, actual []float64
		want             float64
	}{
		{"identical", []float64{0.5, 0.5}, []float64{0.5, 0.5}, 0},
		{"identical counts and proportions", []float64{20, 30, 50}, []float64{0.2, 0.3, 0.5}, 0},
		// (0.25-0.5) ln(0.25/0.5) + (0.75-0.5) ln(0.75/0.5) = 0.25 ln 2 + 0.25 ln 1.5 = 0.25 ln 3.
		{"quarter moved", []float64{0.5, 0.5}, []float64{0.25, 0.75}, 0.25 * math.Log(3)},
		{"quarter moved, counts", []float64{10, 10}, []float64{5, 15}, 0.25 * math.Log(3)},
		{"symmetric", []float64{0.25, 0.75}, []float64{0.5, 0.5}, 0.25 * math.Log(3)},
		{"deciles shifted down", tenth, shifted, shiftPSI},
		// An empty expected bin: 0.5 ln(0.5/1) + (0.5-1e-4) ln(0.5/1e-4).
		{"empty baseline bin", []float64{1, 0}, []float64{0.5, 0.5}, 0.5*math.Log(2) + (0.5-PSIEpsilon)*math.Log(0.5/PSIEpsilon)},
		{"both empty bins", []float64{1, 0}, []float64{3, 0}, 0},
		{"lengths differ", []float64{1, 1}, []float64{1, 1, 1}, math.NaN()},
		{"empty", nil, nil, math.NaN()},
		{"no actual values", []float64{1, 1}, []float64{0, 0}, math.NaN()},
		{"negative count", []float64{1, 1}, []float64{-1, 2}, math.NaN()},
		{"NaN count", []float64{1, math.NaN()}, []float64{1, 1}, math.NaN()},
		{"infinite count", []float64{1, math.Inf(1)}, []float64{1, 1}, math.NaN()},
	}
	for _, c := range cases {
		got := PSI(c.expected, c.actual)
		if math.IsNaN(c.want) != math.IsNaN(got) || !math.IsNaN(c.want) && math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: PSI = %v, want %v", c.name, got, c.want)
		}
	}
	if shiftPSI <= PSISignificant {
		t.Fatalf("the hand-worked shift %v should read as significant", shiftPSI)
	}
}

func TestQuantileEdges(t *testing.T) {
	oneToHundred := make([]float64, 100)
	for i := range oneToHundred {
		oneToHundred[i] = float64(i + 1)
	}
	cases := []struct {
		name   string
		sample []float64
		bins   int
		want   []float64
	}{
		{"deciles of 1..100", oneToHundred, 10, []float64{11, 21, 31, 41, 51, 61, 71, 81, 91}},
		{"quartiles of 1..8", []float64{8, 7, 6, 5, 4, 3, 2, 1}, 4, []float64{3, 5, 7}},
		// Eight zeros and two ones: every decile but the ninth is 0, and an
		// edge at the minimum would make an empty bin.
		{"ties merge", []float64{0, 0, 0, 0, 0, 0, 0, 0, 1, 1}, 10, []float64{1}},
		{"constant", []float64{3, 3, 3}, 10, nil},
		{"NaN ignored", []float64{math.NaN(), 1, 2}, 2, []float64{2}},
		{"empty", nil, 10, nil},
		{"one bin", oneToHundred, 1, nil},
	}
	for _, c := range cases {
		if got := QuantileEdges(c.sample, c.bins); !slices.Equal(got, c.want) {
			t.Errorf("%s: edges %v, want %v", c.name, got, c.want)
		}
	}
}

func TestHistogramPSI(t *testing.T) {
	var base []float64
	for i := 1; i <= 100; i++ {
		base = append(base, float64(i))
	}
	h := NewHistogram(QuantileEdges(base, DefaultBins))
	same, shifted := NewHistogram(h.Edges), NewHistogram(h.Edges)
	for _, x := range base {
		h.Add(x)
		same.Add(x)
		shifted.Add(x + 10) // 11..110: bin 0 empties, the last bin doubles
	}
	h.Add(math.NaN())
	if want := slices.Repeat([]float64{10}, 10); !slices.Equal(h.Counts, want) || h.N() != 100 {
		t.Fatalf("counts %v (n %v), want %v", h.Counts, h.N(), want)
	}
	if psi := h.PSI(same); psi != 0 {
		t.Errorf("the same values: PSI %v, want 0", psi)
	}
	if psi := h.PSI(shifted); math.Abs(psi-shiftPSI) > 1e-12 {
		t.Errorf("shifted by a decile: PSI %v, want %v", psi, shiftPSI)
	}
	other := NewHistogram([]float64{50})
	other.Add(1)
	if psi := h.PSI(other); !math.IsNaN(psi) {
		t.Errorf("histograms over other bins compared: %v", psi)
	}
	// Values beyond the baseline's range land in the end bins.
	far := NewHistogram(h.Edges)
	far.Add(-1e9)
	far.Add(1e9)
	if far.Counts[0] != 1 || far.Counts[9] != 1 {
		t.Errorf("out-of-range values counted as %v", far.Counts)
	}
}

func TestFrequenciesPSI(t *testing.T) {
	count := func(values ...string) Frequencies {
		f := Frequencies{}
		for _, v := range values {
			f.Add(v)
		}
		return f
	}
	half := count("M", "F")
	cases := []struct {
		name   string
		actual Frequencies
		want   float64
	}{
		{"same", count("F", "M", "F", "M"), 0},
		{"quarter moved", count("M", "F", "F", "F"), 0.25 * math.Log(3)},
		// A category the baseline never saw: expected 1e-4 there. Proportions
		// 1/3 each: 2 * (1/3-1/2) ln((1/3)/(1/2)) + (1/3-1e-4) ln((1/3)/1e-4).
		{"new category", count("M", "F", ""), 2*(1.0/3-0.5)*math.Log((1.0/3)/0.5) + (1.0/3-PSIEpsilon)*math.Log((1.0/3)/PSIEpsilon)},
		{"nothing arrived", Frequencies{}, math.NaN()},
	}
	for _, c := range cases {
		got := half.PSI(c.actual)
		if math.IsNaN(c.want) != math.IsNaN(got) || !math.IsNaN(c.want) && math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: PSI %v, want %v", c.name, got, c.want)
		}
	}
	if f := count("", ""); f[Unknown] != 2 || len(f) != 1 {
		t.Errorf("empty values counted as %v, want %d under %q", f, 2, Unknown)
	}
}
