package dp

import (
	"errors"
	"math"
	"testing"
)

func relErr(got, want float64) float64 { return math.Abs(got-want) / math.Abs(want) }

// The values are the published test values listed in
// shared/reference/dp-accounting.md.

func TestRDPSubsampledGaussian(t *testing.T) {
	// dp_accounting rdp_privacy_accountant_test.py: q=0.01, σ=2.5, 50 steps.
	orders := []float64{1.5, 2.5, 5, 50, 100}
	want := []float64{6.70579741e-4, 1.08548710e-3, 2.18075656e-3, 2.38460375e-2, 1.67416308e2}
	got, err := RDP(Gaussian{NoiseMultiplier: 2.5, SampleRate: 0.01, Steps: 50}, orders)
	if err != nil {
		t.Fatal(err)
	}
	for i := range orders {
		if e := relErr(got[i], want[i]); e > 1e-4 {
			t.Errorf("RDP at order %v: %.9g, want %.9g (rel. error %.2g > 1e-4)", orders[i], got[i], want[i], e)
		}
	}
}

func TestRDPEdgeCases(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		name string
		m    Gaussian
		want float64 // at order 8
	}{
		{"rate 0 releases nothing", Gaussian{NoiseMultiplier: 1, SampleRate: 0, Steps: 100}, 0},
		{"rate 0 even without noise", Gaussian{NoiseMultiplier: 0, SampleRate: 0, Steps: 100}, 0},
		{"no steps", Gaussian{NoiseMultiplier: 1, SampleRate: 0.5, Steps: 0}, 0},
		{"no noise", Gaussian{NoiseMultiplier: 0, SampleRate: 0.01, Steps: 1}, inf},
		{"rate 1 is the Gaussian mechanism α/2σ²", Gaussian{NoiseMultiplier: 2, SampleRate: 1, Steps: 3}, 3 * 8 / 8.0},
		{"steps multiply", Gaussian{NoiseMultiplier: 1, SampleRate: 1, Steps: 10}, 10 * 8 / 2.0},
	} {
		got, err := RDP(tc.m, []float64{8})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got[0] != tc.want {
			t.Errorf("%s: RDP(8) = %v, want %v", tc.name, got[0], tc.want)
		}
	}
	// Below rate 1 the subsampled mechanism costs less than the plain one,
	// and more with a higher rate.
	a, _ := RDP(Gaussian{NoiseMultiplier: 1, SampleRate: 0.1, Steps: 1}, []float64{2, 8, 8.5})
	b, _ := RDP(Gaussian{NoiseMultiplier: 1, SampleRate: 0.2, Steps: 1}, []float64{2, 8, 8.5})
	c, _ := RDP(Gaussian{NoiseMultiplier: 1, SampleRate: 1, Steps: 1}, []float64{2, 8, 8.5})
	for i := range a {
		if !(0 < a[i] && a[i] < b[i] && b[i] < c[i]) {
			t.Errorf("order %d: RDP at rates 0.1, 0.2, 1 is %v, %v, %v; want increasing", i, a[i], b[i], c[i])
		}
	}
}

func TestEpsilonReferences(t *testing.T) {
	// A constant RDP of 1.1 over orders 2..32 at δ=1e-5: 1.32783806176 at α=32.
	var orders, rdp []float64
	for a := 2; a <= 32; a++ {
		orders, rdp = append(orders, float64(a)), append(rdp, 1.1)
	}
	eps, order, err := Epsilon(rdp, orders, 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	if relErr(eps, 1.32783806176) > 1e-10 || order != 32 {
		t.Errorf("constant RDP 1.1: ε = %.12g at α = %v, want 1.32783806176 at 32", eps, order)
	}

	for _, tc := range []struct {
		name                 string
		noise, rate          float64
		steps                int
		delta, want, relTol  float64
		orders               []float64
		wantExactlyOrAtLeast bool
	}{
		// dp_accounting: σ=4.530877117, one unsampled step gives (1, 1e-6).
		{"gaussian (1, 1e-6), default orders", 4.530877117, 1, 1, 1e-6, 1, 1e-6, nil, false},
		{"gaussian (1, 1e-6), orders by 0.01", 4.530877117, 1, 1, 1e-6, 1, 1e-7, fineOrders(), false},
		{"rate 0", 1, 0, 1000, 1e-5, 0, 0, nil, false},
	} {
		orders := tc.orders
		if orders == nil {
			orders = defaultOrders
		}
		r, err := RDP(Gaussian{tc.noise, tc.rate, tc.steps}, orders)
		if err != nil {
			t.Fatal(err)
		}
		eps, _, err := Epsilon(r, orders, tc.delta)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(eps-tc.want) > tc.relTol*max(tc.want, 1) {
			t.Errorf("%s: ε = %.10g, want %.10g within %g", tc.name, eps, tc.want, tc.relTol)
		}
	}
	if eps, err := Spent(0, 0.01, 10, 1e-5); err != nil || !math.IsInf(eps, 1) {
		t.Errorf("σ = 0: ε = %v (%v), want +Inf", eps, err)
	}
}

func fineOrders() []float64 {
	var o []float64
	for i := 102; i <= 10000; i++ {
		o = append(o, float64(i)/100)
	}
	return o
}

// TestOpacus: σ=1.5, q=0.04, 2,250 steps, δ=1e-5 gives 7.32911117143 in
// Opacus' test. Its optimum is the fractional order 3.9, where Opacus sums
// the series with signs and dp_accounting (and Concord) sums absolute
// values: with signs, this code gives Opacus' figure to 1e-9; as shipped it
// gives a slightly larger, conservative ε.
func TestOpacus(t *testing.T) {
	const want = 7.32911117143
	m := Gaussian{NoiseMultiplier: 1.5, SampleRate: 0.04, Steps: 2250}
	r, err := rdp(m, defaultOrders, true)
	if err != nil {
		t.Fatal(err)
	}
	signed, order, err := Epsilon(r, defaultOrders, 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	if relErr(signed, want) > 1e-9 || order != 3.9 {
		t.Errorf("signed series: ε = %.12g at α = %v, want %.12g at 3.9", signed, order, want)
	}
	got, err := Spent(1.5, 0.04, 2250, 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	if got < want || relErr(got, want) > 1e-4 {
		t.Errorf("Spent = %.12g, want at least %.12g and within 1e-4", got, want)
	}
	t.Logf("Opacus reference %.11f; signed series %.11f; Spent %.11f", want, signed, got)
}

// TestTFPrivacyMNIST: the TF Privacy tutorial's figures (N=60,000, batch
// 256, δ=1e-5, ⌈epochs·N/B⌉ steps) were computed by the older accountant:
// the signed fractional series and the conversion ε = min RDP(α) − log
// δ/(α−1), over Opacus' orders. Those two choices on this code reproduce
// them to 0.2%; the current conversion, which Spent uses, gives a lower ε
// (10-22% lower here): the same run, a tighter bound.
func TestTFPrivacyMNIST(t *testing.T) {
	var opacusOrders []float64
	for x := 1; x < 100; x++ {
		opacusOrders = append(opacusOrders, 1+float64(x)/10)
	}
	for a := 12; a < 64; a++ {
		opacusOrders = append(opacusOrders, float64(a))
	}
	q := 256.0 / 60000
	for _, tc := range []struct {
		noise  float64
		epochs int
		want   float64
	}{
		{1.12, 60, 2.92},
		{0.6, 30, 9.74},
		{1.2, 10, 1.20},
	} {
		steps := int(math.Ceil(float64(tc.epochs) * 60000 / 256))
		r, err := rdp(Gaussian{tc.noise, q, steps}, opacusOrders, true)
		if err != nil {
			t.Fatal(err)
		}
		old := math.Inf(1)
		for i, a := range opacusOrders {
			old = min(old, r[i]-math.Log(1e-5)/(a-1))
		}
		if relErr(old, tc.want) > 0.002 {
			t.Errorf("σ=%v, %d epochs: older conversion gives %.4f, want %.2f within 0.2%%", tc.noise, tc.epochs, old, tc.want)
		}
		got, err := Spent(tc.noise, q, steps, 1e-5)
		if err != nil {
			t.Fatal(err)
		}
		if got > tc.want || got < 0.75*tc.want {
			t.Errorf("σ=%v, %d epochs: Spent = %.4f, want at most %.2f and above 75%% of it", tc.noise, tc.epochs, got, tc.want)
		}
		t.Logf("σ=%v %d epochs (%d steps): reference %.2f, older conversion %.4f, Spent %.4f", tc.noise, tc.epochs, steps, tc.want, old, got)
	}
}

func TestPlanRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		eps, delta, rate float64
		steps            int
	}{
		{1, 1e-5, 0.01, 1000},
		{8, 1e-5, 0.04, 2250},
		{3, 1e-6, 256.0 / 60000, 14063},
		{0.5, 1e-5, 1, 1},
		{10, 1e-3, 0.5, 20},
	} {
		s, err := Plan(tc.eps, tc.delta, tc.rate, tc.steps)
		if err != nil {
			t.Fatalf("Plan(%+v): %v", tc, err)
		}
		got, err := Spent(s, tc.rate, tc.steps, tc.delta)
		if err != nil {
			t.Fatal(err)
		}
		if got > tc.eps {
			t.Errorf("%+v: Plan gave σ=%v whose ε %v exceeds the target", tc, s, got)
		}
		// A noise multiplier PlanPrecision lower must miss the target: σ is
		// the smallest to that precision.
		lower, _ := Spent(s*(1-2*PlanPrecision), tc.rate, tc.steps, tc.delta)
		if lower <= tc.eps {
			t.Errorf("%+v: σ=%v is not the smallest: %v gives ε %v", tc, s, s*(1-2*PlanPrecision), lower)
		}
		if relErr(got, tc.eps) > 1e-3 {
			t.Errorf("%+v: ε at the planned σ=%v is %v, want within 0.1%% of the target", tc, s, got)
		}
	}
}

func TestInvalidInputs(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"NaN noise", spentErr(nan, 0.1, 10, 1e-5)},
		{"negative noise", spentErr(-1, 0.1, 10, 1e-5)},
		{"infinite noise", spentErr(math.Inf(1), 0.1, 10, 1e-5)},
		{"rate above 1", spentErr(1, 1.5, 10, 1e-5)},
		{"negative rate", spentErr(1, -0.1, 10, 1e-5)},
		{"NaN rate", spentErr(1, nan, 10, 1e-5)},
		{"negative steps", spentErr(1, 0.1, -1, 1e-5)},
		{"delta 0", spentErr(1, 0.1, 10, 0)},
		{"delta 1", spentErr(1, 0.1, 10, 1)},
		{"NaN delta", spentErr(1, 0.1, 10, nan)},
		{"plan: epsilon 0", planErr(0, 1e-5, 0.1, 10)},
		{"plan: NaN epsilon", planErr(nan, 1e-5, 0.1, 10)},
		{"plan: rate 0", planErr(1, 1e-5, 0, 10)},
		{"plan: no steps", planErr(1, 1e-5, 0.1, 0)},
		{"plan: delta above 1", planErr(1, 2, 0.1, 10)},
		{"plan: unreachable", planErr(1e-9, 1e-12, 1, 1e6)},
		{"order 1", func() error { _, err := RDP(Gaussian{1, 0.1, 1}, []float64{1, 2}); return err }()},
		{"no orders", func() error { _, err := RDP(Gaussian{1, 0.1, 1}, nil); return err }()},
		{"negative rdp", func() error { _, _, err := Epsilon([]float64{-1}, []float64{2}, 1e-5); return err }()},
		{"length mismatch", func() error { _, _, err := Epsilon([]float64{1, 2}, []float64{2}, 1e-5); return err }()},
	} {
		if !errors.Is(tc.err, ErrInvalid) {
			t.Errorf("%s: error %v, want ErrInvalid", tc.name, tc.err)
		}
	}
}

func spentErr(noise, rate float64, steps int, delta float64) error {
	_, err := Spent(noise, rate, steps, delta)
	return err
}

func planErr(eps, delta, rate float64, steps int) error {
	_, err := Plan(eps, delta, rate, steps)
	return err
}

func TestCompose(t *testing.T) {
	a := Gaussian{NoiseMultiplier: 1.1, SampleRate: 0.01, Steps: 100}
	b := Gaussian{NoiseMultiplier: 0.8, SampleRate: 0.05, Steps: 30}
	ra, _ := RDP(a, defaultOrders)
	rb, _ := RDP(b, defaultOrders)
	sum, err := Compose(ra, rb)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sum {
		if sum[i] != ra[i]+rb[i] {
			t.Fatalf("order %v: composed %v, want %v + %v", defaultOrders[i], sum[i], ra[i], rb[i])
		}
	}
	// Composing a mechanism with itself is the same as doubling its steps.
	a2 := a
	a2.Steps *= 2
	r2, _ := RDP(a2, defaultOrders)
	self, _ := Compose(ra, ra)
	for i := range r2 {
		if relErr(self[i], r2[i]) > 1e-12 {
			t.Fatalf("order %v: twice %v, doubled steps %v", defaultOrders[i], self[i], r2[i])
		}
	}
	if _, err := Compose(ra, rb[:3]); !errors.Is(err, ErrInvalid) {
		t.Errorf("curves of different lengths: %v", err)
	}
}
