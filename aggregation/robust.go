package aggregation

import (
	"fmt"
	"slices"
)

// Median returns the coordinate-wise median of the updates (Yin et al. 2018).
// With an even number of updates it is the mean of the two middle values.
// Updates are unweighted. It needs every update in memory, so it is for
// plaintext mode only.
func Median(updates [][]float32) ([]float32, error) {
	return sortedCombine(updates, 0, "median")
}

// TrimmedMean returns the coordinate-wise trimmed mean: for each coordinate
// it drops the ⌊fraction·N⌋ lowest and ⌊fraction·N⌋ highest of the N values
// and averages the rest (Yin et al. 2018). fraction must be in [0, 0.5);
// 0 gives the plain unweighted mean.
func TrimmedMean(updates [][]float32, fraction float64) ([]float32, error) {
	if !(fraction >= 0 && fraction < 0.5) {
		return nil, fmt.Errorf("trim fraction %v must be in [0, 0.5)", fraction)
	}
	k := int(fraction * float64(len(updates)))
	return sortedCombine(updates, k, "trimmed mean")
}

// sortedCombine sorts each coordinate's column of N values, then takes its
// middle (median) or the mean of column[k:N-k] (trimmed mean). Sorting makes
// the result independent of the order of the updates.
func sortedCombine(updates [][]float32, k int, what string) ([]float32, error) {
	if len(updates) == 0 {
		return nil, fmt.Errorf("%s of no updates: %w", what, ErrEmpty)
	}
	n := len(updates[0])
	if n == 0 {
		return nil, fmt.Errorf("%s of empty updates: %w", what, ErrEmpty)
	}
	for j, u := range updates {
		if len(u) != n {
			return nil, fmt.Errorf("update %d has %d parameters, update 0 has %d: %w", j, len(u), n, ErrLength)
		}
		for i, x := range u {
			if !finite32(x) {
				return nil, fmt.Errorf("update %d parameter %d is %v: %w", j, i, x, ErrNotFinite)
			}
		}
	}
	N := len(updates)
	col := make([]float32, N)
	out := make([]float32, n)
	for i := range n {
		for j, u := range updates {
			col[j] = u[i]
		}
		slices.Sort(col)
		if what == "median" {
			if N%2 == 1 {
				out[i] = col[N/2]
			} else {
				out[i] = float32((float64(col[N/2-1]) + float64(col[N/2])) / 2)
			}
			continue
		}
		var s float64
		for _, x := range col[k : N-k] {
			s += float64(x)
		}
		out[i] = float32(s / float64(N-2*k))
	}
	return out, nil
}
