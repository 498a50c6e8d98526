package dp

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// The sum of k >= m sites' noise shares must carry at least the variance
// z²C² the accountant charges for: measured over many coordinates with a
// fixed seed, within 5 standard errors of the expected k/m·z²C².
func TestSiteNoiseScale(t *testing.T) {
	const z, clip, m, n = 1.1, 0.5, 3, 20000
	for _, k := range []int{3, 4, 6} {
		t.Run("", func(t *testing.T) {
			src := rand.New(rand.NewPCG(7, uint64(k)))
			sum := make([]float64, n)
			for range k {
				v := make([]float32, n)
				AddNoise(v, SiteNoiseStd(z, clip, m), src)
				for i, x := range v {
					sum[i] += float64(x)
				}
			}
			var mean, ss float64
			for _, x := range sum {
				mean += x
				ss += x * x
			}
			mean /= n
			variance := ss/n - mean*mean
			want := float64(k) / m * z * z * clip * clip
			// The sample variance of n normals has standard error want·sqrt(2/n).
			if se := want * math.Sqrt(2.0/n); math.Abs(variance-want) > 5*se {
				t.Errorf("k=%d: variance of the summed noise %.5f, want %.5f ± %.5f", k, variance, want, 5*se)
			}
			if variance < z*z*clip*clip*(1-5*math.Sqrt(2.0/n)) {
				t.Errorf("k=%d: the sum carries less than the full noise z²C² = %.5f", k, z*z*clip*clip)
			}
			if math.Abs(mean) > 5*math.Sqrt(want/n) {
				t.Errorf("k=%d: noise mean %.5f, want 0", k, mean)
			}
		})
	}
}

// The site-level round is the Gaussian mechanism with q = 1: its RDP is
// α/(2z²) per round and composes linearly over rounds, and the ledger's
// epsilon is the RDP conversion of that curve.
func TestSiteRoundAccounting(t *testing.T) {
	orders := DefaultOrders()
	for _, tc := range []struct {
		z      float64
		rounds int
	}{{0.8, 1}, {1.0, 3}, {2.5, 10}, {4.530877117, 1}} {
		r, err := RDP(Gaussian{NoiseMultiplier: tc.z, SampleRate: 1, Steps: tc.rounds}, orders)
		if err != nil {
			t.Fatal(err)
		}
		for i, a := range orders {
			want := float64(tc.rounds) * a / (2 * tc.z * tc.z)
			if relErr(r[i], want) > 1e-12 {
				t.Fatalf("z=%v rounds=%d: RDP(%v) = %v, want α/(2z²)·T = %v", tc.z, tc.rounds, a, r[i], want)
			}
		}
		l := mustLedger(t, Budget{Level: Site, Epsilon: 100, Delta: 1e-6})
		for round := 1; round <= tc.rounds; round++ {
			e := entry("j", round, SiteRound(tc.z))
			e.Level = Site
			if err := l.Charge(e); err != nil {
				t.Fatal(err)
			}
		}
		got, err := l.Spent()
		if err != nil {
			t.Fatal(err)
		}
		// The conversion done by hand from the formula.
		want := math.Inf(1)
		for _, a := range orders {
			rdp := float64(tc.rounds) * a / (2 * tc.z * tc.z)
			want = min(want, rdp+math.Log1p(-1/a)-(math.Log(1e-6)+math.Log(a))/(a-1))
		}
		if relErr(got, want) > 1e-9 {
			t.Errorf("z=%v rounds=%d: ledger epsilon %v, formula %v", tc.z, tc.rounds, got, want)
		}
	}
	// The published value: z = 4.530877117, one round, q = 1 is (1, 1e-6)-DP.
	eps, err := Spent(4.530877117, 1, 1, 1e-6)
	if err != nil || math.Abs(eps-1) > 1e-3 {
		t.Errorf("Spent(4.530877117, q=1, 1 step, 1e-6) = %v, %v; want 1", eps, err)
	}
	z, err := PlanSite(1, 1e-6, 1)
	if err != nil || relErr(z, 4.530877117) > 1e-3 {
		t.Errorf("PlanSite(1, 1e-6, 1) = %v, %v; want 4.5309", z, err)
	}
}

func TestAdaptiveSplit(t *testing.T) {
	for _, tc := range []struct{ z, sb float64 }{{1, 5}, {1, 0.6}, {0.5, 3}, {2, 1.01}} {
		zu, err := AdaptiveSplit(tc.z, tc.sb)
		if err != nil {
			t.Fatal(err)
		}
		if zu <= tc.z {
			t.Errorf("z=%v σb=%v: update multiplier %v is not above z", tc.z, tc.sb, zu)
		}
		// The two releases compose to exactly one of multiplier z: the
		// update's α/(2zu²) plus the count's α(1/2)²/(2σb²) is α/(2z²).
		if got := 1/(zu*zu) + 1/(4*tc.sb*tc.sb); relErr(got, 1/(tc.z*tc.z)) > 1e-12 {
			t.Errorf("z=%v σb=%v: zu⁻² + (2σb)⁻² = %v, want z⁻² = %v", tc.z, tc.sb, got, 1/(tc.z*tc.z))
		}
	}
	for _, tc := range []struct{ z, sb float64 }{{1, 0.5}, {1, 0.1}, {0, 1}, {math.NaN(), 1}, {1, math.Inf(1)}} {
		if _, err := AdaptiveSplit(tc.z, tc.sb); !errors.Is(err, ErrInvalid) {
			t.Errorf("AdaptiveSplit(%v, %v) = %v, want ErrInvalid", tc.z, tc.sb, err)
		}
	}
}

func TestNextClip(t *testing.T) {
	const c, q, lr = 1.0, 0.5, 0.2
	if got := NextClip(c, 0.5, q, lr); got != c {
		t.Errorf("at the target quantile the clip moved: %v", got)
	}
	if got, want := NextClip(c, 1, q, lr), math.Exp(-0.1); relErr(got, want) > 1e-12 {
		t.Errorf("every site under the clip: %v, want %v (shrink)", got, want)
	}
	if got, want := NextClip(c, -3, q, lr), math.Exp(0.1); relErr(got, want) > 1e-12 {
		t.Errorf("a negative noisy fraction is clamped to 0: %v, want %v (grow)", got, want)
	}
	if got := UncentreCount(CountBit(1, 2)+CountBit(3, 2)+CountBit(2, 2), 3); got != 2 {
		t.Errorf("two of three within the clip counted as %v", got)
	}
}
