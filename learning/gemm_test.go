package learning

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestMatmulMatchesReference covers the SIMD tiles, the ragged edges and
// transposed strides against a float64 triple loop.
func TestMatmulMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		m, n, k int
		transA  bool
	}{
		{4, 16, 1, false}, {16, 784, 144, false}, {9, 16, 784, false}, {7, 37, 5, true},
		{144, 196, 32, true}, {3, 3, 3, false}, {32, 196, 288, false}, {1, 1, 1, true},
	} {
		a := make([]float32, tc.m*tc.k)
		b := make([]float32, tc.k*tc.n)
		c := make([]float32, tc.m*tc.n)
		for i := range a {
			a[i] = float32(rng.NormFloat64())
		}
		for i := range b {
			b[i] = float32(rng.NormFloat64())
		}
		for i := range c {
			c[i] = float32(rng.NormFloat64())
		}
		want := make([]float64, len(c))
		ars, acs := tc.k, 1
		if tc.transA { // a holds Aᵀ, k×m
			ars, acs = 1, tc.m
		}
		for i := 0; i < tc.m; i++ {
			for j := 0; j < tc.n; j++ {
				s := float64(c[i*tc.n+j])
				for p := 0; p < tc.k; p++ {
					s += float64(a[i*ars+p*acs]) * float64(b[p*tc.n+j])
				}
				want[i*tc.n+j] = s
			}
		}
		matmulAcc(tc.m, tc.n, tc.k, a, ars, acs, b, tc.n, c, tc.n, make([]float32, padLen(tc.k)))
		for i := range c {
			if d := math.Abs(float64(c[i]) - want[i]); d > 1e-4*(1+math.Abs(want[i]))*math.Sqrt(float64(tc.k)) {
				t.Fatalf("%+v: c[%d] = %v, want %v", tc, i, c[i], want[i])
			}
		}
	}
}
