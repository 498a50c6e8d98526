package dp

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func TestClipL2(t *testing.T) {
	for _, tc := range []struct {
		name     string
		v        []float32
		bound    float64
		norm     float64
		wantNorm float64 // after
	}{
		{"long vector is scaled to the bound", []float32{3, 4}, 1, 5, 1},
		{"short vector is untouched", []float32{0.3, 0.4}, 1, 0.5, 0.5},
		{"exactly at the bound", []float32{0, 2}, 2, 2, 2},
		{"zero vector", []float32{0, 0, 0}, 1, 0, 0},
		{"NaN is zeroed", []float32{float32(math.NaN()), 1}, 1, math.NaN(), 0},
		{"Inf is zeroed", []float32{float32(math.Inf(1)), 1}, 1, math.Inf(1), 0},
	} {
		in := append([]float32(nil), tc.v...)
		got := ClipL2(tc.v, tc.bound)
		if !(got == tc.norm || math.IsNaN(got) && math.IsNaN(tc.norm)) && math.Abs(got-tc.norm) > 1e-6 {
			t.Errorf("%s: norm before %v, want %v", tc.name, got, tc.norm)
		}
		var s float64
		for _, x := range tc.v {
			s += float64(x) * float64(x)
		}
		if math.Abs(math.Sqrt(s)-tc.wantNorm) > 1e-6 {
			t.Errorf("%s: norm after %v, want %v", tc.name, math.Sqrt(s), tc.wantNorm)
		}
		// Clipping keeps the direction.
		if tc.wantNorm > 0 && tc.norm > 0 && !math.IsInf(tc.norm, 0) {
			f := float32(tc.wantNorm / tc.norm)
			for i := range in {
				if math.Abs(float64(in[i]*f-tc.v[i])) > 1e-6 {
					t.Errorf("%s: element %d is %v, want %v", tc.name, i, tc.v[i], in[i]*f)
				}
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("ClipL2 accepted bound 0")
		}
	}()
	ClipL2([]float32{1}, 0)
}

func TestAddNoiseMoments(t *testing.T) {
	src := rand.New(rand.NewPCG(1, 2))
	v := make([]float32, 200000)
	AddNoise(v, 3, src)
	var s, s2 float64
	for _, x := range v {
		s += float64(x)
		s2 += float64(x) * float64(x)
	}
	n := float64(len(v))
	mean, sd := s/n, math.Sqrt(s2/n-(s/n)*(s/n))
	// Standard errors: 3/√n ≈ 0.0067 for the mean, 3/√(2n) ≈ 0.0047 for sd.
	if math.Abs(mean) > 0.04 || math.Abs(sd-3) > 0.03 {
		t.Errorf("noise mean %v, sd %v; want 0 and 3", mean, sd)
	}
}

func TestSecureSource(t *testing.T) {
	a, b := NewSecureSource(), NewSecureSource()
	if a.Uint64() == b.Uint64() {
		t.Error("two secure sources gave the same first draw: not seeded independently")
	}
}

func TestPoissonBatch(t *testing.T) {
	src := rand.New(rand.NewPCG(3, 4))
	const n, steps, rate = 1000, 400, 0.03
	total, sizes := 0, map[int]bool{}
	for range steps {
		b := PoissonBatch(n, rate, src)
		for i := 1; i < len(b); i++ {
			if b[i] <= b[i-1] || b[i] >= n {
				t.Fatalf("batch %v is not increasing indices below %d", b, n)
			}
		}
		total += len(b)
		sizes[len(b)] = true
	}
	if len(sizes) < 5 {
		t.Errorf("batch sizes %v: a Poisson batch size varies", sizes)
	}
	if err := CheckSampling(total, n, steps, rate); err != nil {
		t.Errorf("a genuine Poisson sampler failed the check: %v", err)
	}
	if got := PoissonBatch(10, 1, src); len(got) != 10 {
		t.Errorf("rate 1 drew %d of 10", len(got))
	}
	if got := PoissonBatch(10, 0, src); len(got) != 0 {
		t.Errorf("rate 0 drew %d of 10", len(got))
	}
}

func TestCheckSampling(t *testing.T) {
	for _, tc := range []struct {
		name               string
		selected, n, steps int
		rate               float64
		ok                 bool
	}{
		{"exact expectation", 300, 1000, 10, 0.03, true},
		// sd = √(10000·0.03·0.97) ≈ 17.06: tolerance 6·sd + 1 ≈ 103.3.
		{"within 6 sd", 300 + 103, 1000, 10, 0.03, true},
		{"beyond 6 sd", 300 + 104, 1000, 10, 0.03, false},
		{"below", 300 - 104, 1000, 10, 0.03, false},
		// Fixed batches of 64 from 1000 declared as rate 0.03 (30 expected):
		// the Opacus pitfall.
		{"fixed batch 64 declared as 0.03", 64 * 100, 1000, 100, 0.03, false},
		{"rate 1 draws everyone", 5000, 1000, 5, 1, true},
		{"rate 1 missing one", 4999, 1000, 5, 1, true}, // the +1 slack
		{"rate 1 missing two", 4998, 1000, 5, 1, false},
		{"rate 0 draws nobody", 0, 1000, 5, 0, true},
		{"nothing run", 0, 1000, 0, 0.1, true},
	} {
		err := CheckSampling(tc.selected, tc.n, tc.steps, tc.rate)
		if (err == nil) != tc.ok {
			t.Errorf("%s: error %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrSampling) {
			t.Errorf("%s: %v does not wrap ErrSampling", tc.name, err)
		}
	}
	for _, err := range []error{
		CheckSampling(-1, 10, 1, 0.5), CheckSampling(1, 10, 1, math.NaN()), CheckSampling(1, 10, 1, 2),
	} {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("invalid input: %v, want ErrInvalid", err)
		}
	}
}
