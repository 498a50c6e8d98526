package dp

import (
	"fmt"
	"math"
)

// Site-level DP with distributed noise. Each of at least MinSites sites
// clips its update to C and adds its share of the noise; the coordinator
// only ever sees (under secure aggregation) the sum, which is what the
// accountant charges. The functions here are the arithmetic of that
// design, shared by the site that adds the noise and the coordinator that
// adapts the clip, so that both compute the same numbers.

// SiteRound is the mechanism one site-level round runs, as the accountant
// sees it: the Gaussian mechanism with sensitivity C and noise multiplier
// z on the sum of the sites' clipped updates, with every site in (q = 1),
// once. Its RDP is α/(2z²).
func SiteRound(z float64) Gaussian {
	return Gaussian{NoiseMultiplier: z, SampleRate: 1, Steps: 1}
}

// PlanSite returns the smallest noise multiplier z for which rounds
// site-level rounds spend at most eps at delta.
func PlanSite(eps, delta float64, rounds int) (float64, error) {
	return Plan(eps, delta, 1, rounds)
}

// SiteNoiseStd is the standard deviation of the noise one site adds to each
// coordinate of its clipped update: z·C/sqrt(m). Independent shares from
// k >= m sites add up to variance k/m·z²C² >= z²C², at least the noise the
// accountant charges for; fewer than m contributions are never aggregated.
func SiteNoiseStd(z, clip float64, minSites int) float64 {
	return z * clip / math.Sqrt(float64(max(1, minSites)))
}

// AdaptiveSplit divides a round's noise multiplier z between the update
// and the count of sites under the clip (Andrew et al. 2021, Theorem 1):
// releasing the update with noise multiplier zUpdate and the count, whose
// bits are centred to ±1/2 (sensitivity 1/2), with noise σ_b costs exactly
// what one Gaussian release of multiplier z costs when
// zUpdate = (z⁻² − (2σ_b)⁻²)^(−1/2). It needs 2σ_b > z: a count noise at
// or below z/2 would already spend the whole round.
func AdaptiveSplit(z, countNoise float64) (zUpdate float64, err error) {
	if !(z > 0) || math.IsInf(z, 0) {
		return 0, fmt.Errorf("%w: noise multiplier %v: want a finite number > 0", ErrInvalid, z)
	}
	if !(2*countNoise > z) || math.IsInf(countNoise, 0) {
		return 0, fmt.Errorf("%w: count noise %v leaves no noise for the update: it must exceed half the noise multiplier (%v)", ErrInvalid, countNoise, z/2)
	}
	inv := 1/(z*z) - 1/(4*countNoise*countNoise)
	return 1 / math.Sqrt(inv), nil
}

// NextClip is adaptive clipping's geometric update of the clip norm:
// C·exp(−η(b̄ − γ)), where b̄ is the noisy fraction of sites whose update
// norm was at most C and γ the target quantile. A fraction above the target
// shrinks the clip, one below grows it. b̄ is clamped to [0, 1] first: the
// noise can push it outside, and the clamp only limits a step.
func NextClip(clip, fraction, quantile, lr float64) float64 {
	fraction = min(1, max(0, fraction))
	return clip * math.Exp(-lr*(fraction-quantile))
}

// CountBit is what one site contributes to the count: +1/2 when its
// update's norm is within the clip, −1/2 otherwise. Centring halves the
// sensitivity of the sum; UncentreCount undoes it.
func CountBit(norm, clip float64) float64 {
	if norm <= clip {
		return 0.5
	}
	return -0.5
}

// UncentreCount turns the noisy sum of k sites' centred bits into the
// noisy number of sites within the clip.
func UncentreCount(centredSum float64, k int) float64 {
	return centredSum + float64(k)/2
}
