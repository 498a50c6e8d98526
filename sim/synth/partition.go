package synth

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// MinPerSite is the fewest samples Partition gives any site: fewer cannot
// fill a mini-batch, let alone a validation split.
const MinPerSite = 8

// maxDraws bounds the redraws of Dirichlet proportions when a draw leaves a
// site below MinPerSite.
const maxDraws = 1000

// ErrPartition is wrapped by every error Partition returns for a request
// that cannot be met.
var ErrPartition = errors.New("cannot partition")

// Partition splits the indices of labels among sites and returns each
// site's indices in increasing order; every index appears exactly once.
//
// scheme is "iid" (a uniform shuffle dealt out evenly) or "dirichlet:ALPHA"
// with ALPHA > 0: for each class, the shares of the sites are drawn from a
// symmetric Dirichlet(ALPHA), as in Hsu et al. 2019, "Measuring the Effects
// of Non-Identical Data Distribution for Federated Visual Classification".
// Small ALPHA (0.1) gives each site a few dominant classes; large ALPHA
// (100) approaches iid. Draws that leave a site with fewer than MinPerSite
// samples are redrawn, as FedLab and NIID-Bench do.
//
// The same labels, sites, scheme and seed always give the same result.
func Partition(labels []int, sites int, scheme string, seed int64) ([][]int, error) {
	if sites < 1 {
		return nil, fmt.Errorf("%w: %d sites; need at least 1", ErrPartition, sites)
	}
	if len(labels) < sites*MinPerSite {
		return nil, fmt.Errorf("%w: %d samples among %d sites leaves fewer than %d each; use fewer sites or more data",
			ErrPartition, len(labels), sites, MinPerSite)
	}
	for i, l := range labels {
		if l < 0 {
			return nil, fmt.Errorf("%w: label %d at index %d is negative", ErrPartition, l, i)
		}
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x70_61_72_74)) // "part"
	name, arg, hasArg := strings.Cut(scheme, ":")
	switch {
	case name == "iid" && !hasArg:
		return partitionIID(len(labels), sites, rng), nil
	case name == "dirichlet":
		alpha, err := strconv.ParseFloat(arg, 64)
		if err != nil || !(alpha > 0) || math.IsInf(alpha, 0) {
			return nil, fmt.Errorf("%w: scheme %q needs a positive number after the colon, e.g. dirichlet:0.5",
				ErrPartition, scheme)
		}
		return partitionDirichlet(labels, sites, alpha, rng)
	}
	return nil, fmt.Errorf("%w: unknown scheme %q; use iid or dirichlet:ALPHA (e.g. dirichlet:0.5)", ErrPartition, scheme)
}

func partitionIID(n, sites int, rng *rand.Rand) [][]int {
	perm := rng.Perm(n)
	out := make([][]int, sites)
	for k, i := range perm {
		out[k%sites] = append(out[k%sites], i)
	}
	for _, p := range out {
		slices.Sort(p)
	}
	return out
}

func partitionDirichlet(labels []int, sites int, alpha float64, rng *rand.Rand) ([][]int, error) {
	byClass := map[int][]int{}
	for i, l := range labels {
		byClass[l] = append(byClass[l], i)
	}
	classes := make([]int, 0, len(byClass))
	for c := range byClass {
		classes = append(classes, c)
	}
	slices.Sort(classes) // map order must not leak into the result
	props := make([]float64, sites)
	for range maxDraws {
		out := make([][]int, sites)
		for _, c := range classes {
			idx := slices.Clone(byClass[c])
			rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
			dirichlet(rng, alpha, props)
			// Cut the shuffled class at the cumulative shares.
			start, cum := 0, 0.0
			for s := range sites {
				cum += props[s]
				end := int(math.Round(cum * float64(len(idx))))
				if s == sites-1 {
					end = len(idx)
				}
				end = max(end, start)
				out[s] = append(out[s], idx[start:end]...)
				start = end
			}
		}
		if slices.IndexFunc(out, func(p []int) bool { return len(p) < MinPerSite }) >= 0 {
			continue
		}
		for _, p := range out {
			slices.Sort(p)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: dirichlet:%v left some of %d sites with fewer than %d samples in %d draws; raise alpha or use fewer sites",
		ErrPartition, alpha, sites, MinPerSite, maxDraws)
}

// dirichlet fills p with one draw from a symmetric Dirichlet(alpha). It
// works in log space because for small alpha every Gamma draw can
// underflow to zero.
func dirichlet(rng *rand.Rand, alpha float64, p []float64) {
	top := math.Inf(-1)
	for i := range p {
		p[i] = logGamma(rng, alpha)
		top = max(top, p[i])
	}
	if math.IsInf(top, -1) {
		// alpha so small that every draw underflowed even in log space:
		// the limit is all mass on one site.
		clear(p)
		p[rng.IntN(len(p))] = 1
		return
	}
	var sum float64
	for i := range p {
		p[i] = math.Exp(p[i] - top)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
}

// logGamma returns the logarithm of a Gamma(alpha, 1) draw, by Marsaglia
// and Tsang's method ("A simple method for generating gamma variables",
// ACM TOMS 26(3), 2000). For alpha < 1 it uses their boost
// Gamma(alpha) = Gamma(alpha+1) * U^(1/alpha).
func logGamma(rng *rand.Rand, alpha float64) float64 {
	if alpha < 1 {
		u := 1 - rng.Float64() // (0, 1]
		return logGamma(rng, alpha+1) + math.Log(u)/alpha
	}
	d := alpha - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := rng.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := rng.Float64()
		if u < 1-0.0331*x*x*x*x {
			return math.Log(d * v)
		}
		if u > 0 && math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return math.Log(d * v)
		}
	}
}

// LabelSkew measures how far the sites' label mixes are from the pooled
// one: the mean over sites of the total-variation distance between a
// site's label distribution and the whole data set's, from 0 (every site
// alike) to nearly 1 (each site holds classes no other has). Simulators
// report it next to the partition scheme. Indices outside labels are
// ignored.
func LabelSkew(labels []int, parts [][]int) float64 {
	global := map[int]float64{}
	for _, l := range labels {
		global[l]++
	}
	for c := range global {
		global[c] /= float64(len(labels))
	}
	var total float64
	var counted int
	for _, p := range parts {
		local := map[int]float64{}
		var n float64
		for _, i := range p {
			if i >= 0 && i < len(labels) {
				local[labels[i]]++
				n++
			}
		}
		if n == 0 {
			continue
		}
		var tv float64
		for c, g := range global {
			tv += math.Abs(local[c]/n - g)
		}
		total += tv / 2
		counted++
	}
	if counted == 0 {
		return 0
	}
	return total / float64(counted)
}
