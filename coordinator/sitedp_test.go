package coordinator

import (
	"math"
	"strings"
	"testing"

	pb "github.com/concord-fl/concord/proto/concordpb"
)

// TestCheckSiteWeight: a decrypted site-level sum must weigh exactly one
// per contributor (up to the encryption's error); a site that encrypted
// its sample count instead is caught.
func TestCheckSiteWeight(t *testing.T) {
	for _, c := range []struct {
		total float64
		k     int
		ok    bool
	}{{3, 3, true}, {3.0001, 3, true}, {2.9999, 3, true}, {4, 3, false}, {66, 3, false}, {2, 3, false}, {math.NaN(), 3, false}} {
		err := checkSiteWeight(c.total, c.k)
		if (err == nil) != c.ok {
			t.Errorf("total %v over %d contributors: %v", c.total, c.k, err)
		}
		if err != nil && !strings.Contains(err.Error(), "each site must encrypt weight 1") {
			t.Errorf("error %q does not say what is wrong", err)
		}
	}
}

// TestAdaptClip: the mean's last value is the mean of the centred noisy
// bits; k times it, uncentred, is the noisy count, and the clip moves by
// exp(−η(b̄ − γ)).
func TestAdaptClip(t *testing.T) {
	spec := &pb.JobSpec{Privacy: &pb.PrivacySpec{Level: "site", AdaptiveClipQuantile: 0.5, AdaptiveClipLr: 0.2}}
	// 3 of 4 sites within the clip: centred bits +½ +½ +½ −½, mean 0.25.
	metrics := map[string]float64{}
	mean, next := adaptClip(spec, 2, []float32{0.1, -0.2, 0.25}, 4, metrics)
	if len(mean) != 2 || mean[0] != 0.1 || mean[1] != -0.2 {
		t.Fatalf("the update part of the mean: %v", mean)
	}
	if want := 2 * math.Exp(-0.2*(0.75-0.5)); math.Abs(next-want) > 1e-12 {
		t.Errorf("next clip %v, want %v", next, want)
	}
	if metrics["update_clip"] != 2 || math.Abs(metrics["clipped_fraction_noisy"]-0.25) > 1e-12 {
		t.Errorf("metrics %v", metrics)
	}
}
