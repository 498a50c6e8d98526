package siteagent

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/privacy/dp"
)

// TestPrivatise: the update is clipped to C and carries noise of std
// z·C/sqrt(m); with adaptive clipping the centred bit (−½: the norm was
// above the clip) is appended with noise of std σ_b/sqrt(m).
func TestPrivatise(t *testing.T) {
	const n = 40000
	d := jobspec.SiteDP{Clip: 0.5, NoiseMultiplier: 1, UpdateNoiseMultiplier: 1, MinSites: 4}
	delta := make([]float32, n)
	delta[0] = 100 // norm 100, far above the clip
	out, norm := privatise(d, delta, rand.New(rand.NewPCG(1, 2)))
	if norm != 100 || len(out) != n {
		t.Fatalf("norm %v, %d values", norm, len(out))
	}
	var ss float64
	for _, v := range out[1:] {
		ss += float64(v) * float64(v)
	}
	std, want := math.Sqrt(ss/float64(n-1)), 1*0.5/math.Sqrt(4)
	if math.Abs(std-want) > 5*want/math.Sqrt(2*n) {
		t.Errorf("noise std %v, want z·C/sqrt(m) = %v", std, want)
	}
	if math.Abs(float64(out[0])-0.5) > 5*want {
		t.Errorf("first value %v: the clipped 0.5 plus noise expected", out[0])
	}

	zu, err := dp.AdaptiveSplit(1, 2)
	if err != nil {
		t.Fatal(err)
	}
	ad := jobspec.SiteDP{Clip: 0.5, NoiseMultiplier: 1, UpdateNoiseMultiplier: zu, MinSites: 4, Quantile: 0.5, ClipLR: 0.2, CountNoise: 2}
	var bits float64
	const trials = 4000
	src := rand.New(rand.NewPCG(3, 4))
	for range trials {
		v := []float32{3, 4} // norm 5 > 0.5
		out, _ := privatise(ad, v, src)
		if len(out) != 3 {
			t.Fatalf("adaptive: %d values, want the update and the bit", len(out))
		}
		bits += float64(out[2])
	}
	// Mean of −½ + N(0, (σ_b/sqrt(m))²): within 5 standard errors.
	if m, se := bits/trials, 2/math.Sqrt(4)/math.Sqrt(trials); math.Abs(m+0.5) > 5*se {
		t.Errorf("mean of the released bits %v, want −0.5 ± %v", m, 5*se)
	}
}
