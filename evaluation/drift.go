package evaluation

import (
	"math"
	"slices"
	"sort"
)

// Drift is measured with the population stability index (PSI): for bins
// with expected proportions e_i (the baseline a model was trained on) and
// actual proportions a_i (the data arriving now),
//
//	PSI = sum_i (a_i - e_i) * ln(a_i / e_i).
//
// It is a symmetric Kullback-Leibler divergence, needs no labels, and has
// thresholds practitioners share: below 0.1 no meaningful shift, 0.1 to
// 0.25 a moderate one, above 0.25 a shift worth acting on (retraining or a
// look at the scanner). Sites report PSI and nothing else about arriving
// images, so the figure has to be one a consortium admin can read.

// Conventional PSI thresholds.
const (
	PSIModerate    = 0.1
	PSISignificant = 0.25
)

// PSIEpsilon is the floor of a bin's proportion. An empty bin would make
// the logarithm infinite; the common practice (credit scoring, where PSI
// comes from, and most monitoring tools) is to replace a zero proportion
// by a small constant. 1e-4 keeps a bin that is empty on one side and
// holds a few percent on the other at a PSI of a few tenths (clearly a
// shift) instead of infinity. Proportions are not renormalised after the
// floor: the floor is a bound on the log, not a smoothing.
const PSIEpsilon = 1e-4

// PSI is the population stability index of actual against expected, two
// histograms over the same bins given as proportions or counts (each is
// normalised by its own total). Identical distributions give 0. It is NaN
// when the lengths differ, either total is not positive, or a value is
// negative or not finite: there is no meaningful answer then, and NaN
// cannot be mistaken for "no drift".
func PSI(expected, actual []float64) float64 {
	if len(expected) != len(actual) || len(expected) == 0 {
		return math.NaN()
	}
	te, ta := total(expected), total(actual)
	if !(te > 0) || !(ta > 0) || math.IsInf(te, 0) || math.IsInf(ta, 0) {
		return math.NaN()
	}
	psi := 0.0
	for i := range expected {
		e := max(expected[i]/te, PSIEpsilon)
		a := max(actual[i]/ta, PSIEpsilon)
		psi += (a - e) * math.Log(a/e)
	}
	return psi
}

// total sums v, or NaN when a value is negative or NaN.
func total(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		if x < 0 || math.IsNaN(x) {
			return math.NaN()
		}
		s += x
	}
	return s
}

// DefaultBins is the number of bins of a continuous feature: the deciles
// of the baseline. Ten is the usual choice for PSI; fewer hide a shift in
// the tails, more make the index noisy on the few dozen images a small
// site sees between checks.
const DefaultBins = 10

// Histogram counts a continuous feature in fixed bins. Edges are the inner
// cut points, ascending: bin 0 is (-inf, Edges[0]), bin i is
// [Edges[i-1], Edges[i]) and the last bin is [Edges[len-1], +inf), so a
// value outside the baseline's range still lands in a bin. The edges come
// from the baseline (QuantileEdges) and are kept with it, so that every
// later window is counted in the same bins.
type Histogram struct {
	Edges  []float64 `json:"edges"`
	Counts []float64 `json:"counts"`
}

// NewHistogram is an empty histogram with the given inner edges, which must
// be ascending (QuantileEdges returns such).
func NewHistogram(edges []float64) Histogram {
	return Histogram{Edges: slices.Clone(edges), Counts: make([]float64, len(edges)+1)}
}

// Add counts x; NaN is not counted.
func (h *Histogram) Add(x float64) {
	if math.IsNaN(x) {
		return
	}
	// The first edge above x is x's bin's upper bound.
	h.Counts[sort.Search(len(h.Edges), func(i int) bool { return h.Edges[i] > x })]++
}

// N is the number of values counted.
func (h Histogram) N() float64 { return total(h.Counts) }

// PSI is the index of actual against h (the baseline). It is NaN when the
// two were not counted in the same bins.
func (h Histogram) PSI(actual Histogram) float64 {
	if !slices.Equal(h.Edges, actual.Edges) {
		return math.NaN()
	}
	return PSI(h.Counts, actual.Counts)
}

// QuantileEdges returns the inner edges of bins holding equal shares of
// sample: the 1/bins, 2/bins, ... quantiles (nearest rank). Equal-mass bins
// make every expected proportion 1/bins, so the index is as sensitive in
// the tails as in the middle, and they need no assumption about the range
// of the feature (standardised pixels are in [0, 1] after one pipeline and
// unbounded after z-scoring). Repeated quantiles (a sample with many equal
// values, such as pixels clipped to a window) are merged, so there may be
// fewer bins than asked; a constant sample gives no edges (one bin). NaNs
// are ignored. sample is not modified.
func QuantileEdges(sample []float64, bins int) []float64 {
	s := make([]float64, 0, len(sample))
	for _, x := range sample {
		if !math.IsNaN(x) {
			s = append(s, x)
		}
	}
	if len(s) == 0 || bins < 2 {
		return nil
	}
	sort.Float64s(s)
	var edges []float64
	for k := 1; k < bins; k++ {
		e := s[min(len(s)-1, k*len(s)/bins)]
		// An edge at the minimum would leave bin 0 empty by construction.
		if e > s[0] && (len(edges) == 0 || e > edges[len(edges)-1]) {
			edges = append(edges, e)
		}
	}
	return edges
}

// Unknown is the category of a missing or unreadable value. It is a
// category of its own: a scanner that stops writing a field is itself a
// shift worth seeing.
const Unknown = "unknown"

// Frequencies counts a categorical feature by value.
type Frequencies map[string]float64

// Add counts value; "" counts as Unknown.
func (f Frequencies) Add(value string) {
	if value == "" {
		value = Unknown
	}
	f[value]++
}

// PSI is the index of actual against f (the baseline) over the union of
// their categories: a category only one side has is an empty bin on the
// other, floored at PSIEpsilon. NaN when either side is empty.
func (f Frequencies) PSI(actual Frequencies) float64 {
	keys := make([]string, 0, len(f)+len(actual))
	for k := range f {
		keys = append(keys, k)
	}
	for k := range actual {
		if _, ok := f[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys) // a fixed order: the sum is then reproducible bit for bit
	e, a := make([]float64, len(keys)), make([]float64, len(keys))
	for i, k := range keys {
		e[i], a[i] = f[k], actual[k]
	}
	return PSI(e, a)
}
