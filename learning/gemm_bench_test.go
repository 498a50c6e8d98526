package learning

import (
	"fmt"
	"testing"
)

// BenchmarkMatmul reports GFLOP/s of matmulAcc on the cnn's shapes.
func BenchmarkMatmul(b *testing.B) {
	for _, s := range []struct{ m, n, k int }{
		{16, 784, 144}, {32, 196, 288}, {144, 16, 784}, {144, 784, 16}, {16, 784, 9},
	} {
		b.Run(fmt.Sprintf("%dx%dx%d", s.m, s.n, s.k), func(b *testing.B) {
			a := make([]float32, s.m*s.k)
			x := make([]float32, s.k*s.n)
			c := make([]float32, s.m*s.n)
			pad := make([]float32, padLen(s.k))
			for i := 0; i < b.N; i++ {
				matmulAcc(s.m, s.n, s.k, a, s.k, 1, x, s.n, c, s.n, pad)
			}
			b.ReportMetric(float64(b.N)*2*float64(s.m*s.n*s.k)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
