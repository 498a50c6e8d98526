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
		{6, 16, 3, false}, {10, 33, 7, true}, {13, 40, 9, false}, {400, 20, 3, false},
	} {
		a := randn(rng, tc.m*tc.k)
		b := randn(rng, tc.k*tc.n)
		c := randn(rng, tc.m*tc.n)
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

// TestMatmulOffMatchesReference reads B's rows at arbitrary offsets, as the
// padded-image convolutions do, including the left-over rows and columns.
func TestMatmulOffMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ m, n, k int }{
		{1, 840, 9}, {3, 37, 27}, {6, 16, 5}, {16, 840, 144}, {32, 224, 288}, {10, 5, 11}, {64, 2085, 30}, {9, 3000, 4}, {16, 2021, 200},
	} {
		a := make([]float32, tc.m*tc.k)
		b := make([]float32, tc.k*tc.n+500)
		c := make([]float32, tc.m*tc.n)
		for _, v := range [][]float32{a, b, c} {
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
		}
		boff := make([]int, tc.k)
		for p := range boff {
			boff[p] = rng.IntN(len(b) - tc.n + 1)
		}
		want := make([]float64, len(c))
		for i := 0; i < tc.m; i++ {
			for j := 0; j < tc.n; j++ {
				s := float64(c[i*tc.n+j])
				for p := 0; p < tc.k; p++ {
					s += float64(a[i*tc.k+p]) * float64(b[boff[p]+j])
				}
				want[i*tc.n+j] = s
			}
		}
		matmulAccOff(tc.m, tc.n, tc.k, a, tc.k, 1, b, boff, c, tc.n, make([]float32, padLen(tc.k)))
		for i := range c {
			if d := math.Abs(float64(c[i]) - want[i]); d > 1e-4*(1+math.Abs(want[i]))*math.Sqrt(float64(tc.k)) {
				t.Fatalf("%+v: c[%d] = %v, want %v", tc, i, c[i], want[i])
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("an offset past the end of B did not panic")
		}
	}()
	matmulAccOff(4, 16, 1, make([]float32, 4), 1, 1, make([]float32, 20), []int{5}, make([]float32, 64), 16, make([]float32, padLen(1)))
}

// TestDotAccMatchesReference covers A·Bᵀ with ragged rows and k%8 tails.
func TestDotAccMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct{ m, n, k int }{
		{16, 16, 840}, {32, 16, 224}, {16, 1, 840}, {3, 3, 13}, {5, 7, 64}, {1, 1, 7}, {2, 3, 17},
	} {
		lda, ldb := tc.k+3, tc.k+5
		a := make([]float32, tc.m*lda)
		b := make([]float32, tc.n*ldb)
		c := make([]float32, tc.m*tc.n)
		for _, v := range [][]float32{a, b, c} {
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
		}
		want := make([]float64, len(c))
		for i := 0; i < tc.m; i++ {
			for j := 0; j < tc.n; j++ {
				s := float64(c[i*tc.n+j])
				for p := 0; p < tc.k; p++ {
					s += float64(a[i*lda+p]) * float64(b[j*ldb+p])
				}
				want[i*tc.n+j] = s
			}
		}
		dotAcc(tc.m, tc.n, tc.k, a, lda, b, ldb, c, tc.n, 1)
		for i := range c {
			if d := math.Abs(float64(c[i]) - want[i]); d > 1e-4*(1+math.Abs(want[i]))*math.Sqrt(float64(tc.k)) {
				t.Fatalf("%+v: c[%d] = %v, want %v", tc, i, c[i], want[i])
			}
		}
	}
}

// TestReluKernels checks the SIMD ReLU and ReLU mask, with their Go tails,
// on negative zeros, negatives and positives.
func TestReluKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x := randn(rng, 37)
	x[3], x[30] = float32(math.Copysign(0, -1)), float32(math.Copysign(0, -1))
	act := append([]float32(nil), x...)
	reluInPlace(act)
	grad := make([]float32, len(x))
	for i := range grad {
		grad[i] = float32(i + 1)
	}
	reluMask(grad, act)
	for i, v := range x {
		if want := max(v, 0); act[i] != want || math.Signbit(float64(act[i])) {
			t.Fatalf("relu(%v) = %v", v, act[i])
		}
		if want := float32(i + 1); (v > 0) != (grad[i] == want) || (v <= 0 && grad[i] != 0) {
			t.Fatalf("mask at %v: grad %v", v, grad[i])
		}
	}
}

// TestWideKernelsSameBits checks that the AVX-512 kernels give exactly the
// AVX2 kernels' bits, on full strips, ragged strips, left-over rows and
// offset rows of B, so a model trains identically on either machine.
func TestWideKernelsSameBits(t *testing.T) {
	if !useWide {
		t.Skip("no AVX-512 on this machine")
	}
	defer func(w bool) { useWide = w }(useWide)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct{ m, n, k int }{
		{6, 32, 5}, {16, 784, 144}, {13, 47, 9}, {3, 70, 4}, {64, 49, 576}, {10, 16, 3}, {4, 100, 1},
	} {
		a := randn(rng, tc.m*tc.k)
		b := randn(rng, tc.k*tc.n+tc.k)
		c0 := randn(rng, tc.m*tc.n)
		boff := make([]int, tc.k)
		for p := range boff {
			boff[p] = p*tc.n + p%2
		}
		var got [2][2][]float32
		for i, wide := range []bool{false, true} {
			useWide = wide
			pad := make([]float32, padLen(tc.k))
			for j := range got[i] {
				got[i][j] = append([]float32(nil), c0...)
			}
			matmulAcc(tc.m, tc.n, tc.k, a, tc.k, 1, b, tc.n, got[i][0], tc.n, pad)
			matmulAccOff(tc.m, tc.n, tc.k, a, 1, tc.m, b, boff, got[i][1], tc.n, pad)
		}
		for j := range got[0] {
			for i := range c0 {
				if math.Float32bits(got[0][j][i]) != math.Float32bits(got[1][j][i]) {
					t.Fatalf("%+v (offset rows %v): c[%d] is %v with AVX2, %v with AVX-512", tc, j == 1, i, got[0][j][i], got[1][j][i])
				}
			}
		}
	}
}

// TestMatmulTMatchesReference checks A·Bᵀ with Bᵀ strided and at offsets,
// through the 8×8 transposes and their ragged rows and columns.
func TestMatmulTMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct{ m, n, k int }{
		{6, 32, 8}, {16, 70, 63}, {13, 8, 200}, {4, 33, 5}, {64, 96, 49}, {3, 5, 17},
	} {
		a := randn(rng, tc.m*tc.k)
		bt := randn(rng, tc.n*tc.k+tc.n)
		boff := make([]int, tc.n)
		for j := range boff {
			boff[j] = j*tc.k + j%2
		}
		for _, offset := range []bool{false, true} {
			c := make([]float32, tc.m*tc.n)
			pad := make([]float32, padLen(tc.k))
			row := func(j int) int { return j * tc.k }
			if offset {
				row = func(j int) int { return boff[j] }
				matmulAccTOff(tc.m, tc.n, tc.k, a, tc.k, 1, bt, boff, c, tc.n, pad)
			} else {
				matmulAccT(tc.m, tc.n, tc.k, a, tc.k, 1, bt, tc.k, c, tc.n, pad)
			}
			for i := 0; i < tc.m; i++ {
				for j := 0; j < tc.n; j++ {
					var want float64
					for p := 0; p < tc.k; p++ {
						want += float64(a[i*tc.k+p]) * float64(bt[row(j)+p])
					}
					if d := math.Abs(float64(c[i*tc.n+j]) - want); d > 1e-4*(1+math.Abs(want))*math.Sqrt(float64(tc.k)) {
						t.Fatalf("%+v offsets %v: c[%d][%d] = %v, want %v", tc, offset, i, j, c[i*tc.n+j], want)
					}
				}
			}
		}
	}
}

// TestAdamKernelSameBits checks the vector Adam update against the
// formula element by element, bit for bit, over several steps and a
// ragged tail.
func TestAdamKernelSameBits(t *testing.T) {
	const n = 203
	rng := rand.New(rand.NewPCG(9, 10))
	o := newOptimizer(TrainConfig{Optimizer: "adam", LR: 3e-3}, n)
	w, g := make([]float32, n), make([]float32, n)
	rw := make([]float32, n)
	rv, rs := make([]float32, n), make([]float32, n)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
		rw[i] = w[i]
	}
	for step := 1; step <= 5; step++ {
		for i := range g {
			g[i] = float32(rng.NormFloat64()) * 0.1
		}
		o.next()
		o.update(0, 100, w, g)
		o.update(100, n, w, g)
		const b1, b2, eps = 0.9, 0.999, 1e-8
		stepSize := float32(3e-3 / (1 - math.Pow(b1, float64(step))))
		sq := float32(math.Sqrt(1 - math.Pow(b2, float64(step))))
		for i := range rw {
			gi := g[i]
			rv[i] = b1*rv[i] + (1-b1)*gi
			rs[i] = b2*rs[i] + (1-b2)*gi*gi
			rw[i] -= stepSize * rv[i] / (float32(math.Sqrt(float64(rs[i])))/sq + eps)
		}
		for i := range w {
			if math.Float32bits(w[i]) != math.Float32bits(rw[i]) {
				t.Fatalf("step %d: w[%d] = %v, the formula gives %v", step, i, w[i], rw[i])
			}
		}
	}
}

// randn is n standard normal values.
func randn(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// TestMatmulBlockingSameBits: where B is packed (12 or more rows), a long
// k runs in blocks, each summed in order and added to C; the result is the
// same, bit for bit, as one GEMM per block of k computed four rows at a
// time (nothing packed or blocked there), in every kind of tile (full,
// ragged strip, left-over row) and for plain, transposed and offset B.
func TestMatmulBlockingSameBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const m, n, k = 19, 70, 1700 // rows 8+6+4 and 1 left over; strips 32+32+6; k in blocks
	if kBlock(k) >= k {
		t.Fatalf("kBlock(%d) = %d: k is not blocked", k, kBlock(k))
	}
	a := randn(rng, m*k)
	b := randn(rng, k*n)
	off := make([]int, k)
	for p := range off {
		off[p] = rng.IntN(k*n - n)
	}
	offT := make([]int, n)
	for j := range offT {
		offT[j] = rng.IntN(k*n - k)
	}
	c0 := randn(rng, m*n)
	for _, kind := range []string{"plain", "transposed", "offset", "transposed offset"} {
		// run adds rows i..i+rows of A·B over k in [p0, p0+kb) to c.
		run := func(rows, i, p0, kb int, c []float32) {
			ai, ci := a[i*k+p0:], c[i*n:(i+rows)*n]
			pad := make([]float32, padLen(kb))
			switch kind {
			case "plain":
				matmulAcc(rows, n, kb, ai, k, 1, b[p0*n:], n, ci, n, pad)
			case "transposed":
				matmulAccT(rows, n, kb, ai, k, 1, b[p0:], k, ci, n, pad)
			case "offset":
				matmulAccOff(rows, n, kb, ai, k, 1, b, off[p0:], ci, n, pad)
			default:
				shifted := make([]int, n)
				for j, o := range offT {
					shifted[j] = o + p0
				}
				matmulAccTOff(rows, n, kb, ai, k, 1, b, shifted, ci, n, pad)
			}
		}
		got := append([]float32(nil), c0...)
		run(m, 0, 0, k, got)
		want := append([]float32(nil), c0...)
		kc := kBlock(k)
		for p0 := 0; p0 < k; p0 += kc {
			for i := 0; i < m; i += 4 {
				run(min(4, m-i), i, p0, min(kc, k-p0), want)
			}
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: C[%d][%d] is %v, %v by blocks", kind, i/n, i%n, got[i], want[i])
			}
		}
	}
}
