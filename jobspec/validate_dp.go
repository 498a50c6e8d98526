package jobspec

import (
	"math"

	"github.com/concord-fl/concord/aggregation"
	"github.com/concord-fl/concord/privacy/dp"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Bounds of the differential privacy settings: a delta above 1e-3 is no
// guarantee for a data set of a few thousand records, and a noise
// multiplier or epsilon beyond 100 is a typo rather than a choice.
const (
	maxDPDelta      = 1e-3
	maxDPNoise      = 100
	maxDPEpsilon    = 100
	maxExampleClip  = 1e6
	maxUpdateClip   = 1e6
	maxClipLR       = 10
	levelRecord     = string(dp.Record)
	levelSite       = string(dp.Site)
	dpFieldsPattern = "privacy.example_clip/update_clip/adaptive_clip/epsilon/delta/noise_multiplier"
)

// dpField is one numeric differential privacy setting of the spec.
type dpField struct {
	field string
	x     float64
}

func dpFields(p *pb.PrivacySpec) (shared, record, site []dpField) {
	shared = []dpField{{"privacy.epsilon", p.Epsilon}, {"privacy.delta", p.Delta}, {"privacy.noise_multiplier", p.NoiseMultiplier}}
	record = []dpField{{"privacy.example_clip", p.ExampleClip}}
	site = []dpField{{"privacy.update_clip", p.UpdateClip}, {"privacy.adaptive_clip.quantile", p.AdaptiveClipQuantile},
		{"privacy.adaptive_clip.lr", p.AdaptiveClipLr}, {"privacy.adaptive_clip.count_noise", p.AdaptiveClipCountNoise}}
	return shared, record, site
}

// dp checks the differential privacy settings: record (DP-SGD at every
// site), site (noise on the updates, over sites) or none, each with its
// own fields and none of the others'. An option is honoured or refused.
func (v *validator) dp(s *pb.JobSpec) {
	p := s.Privacy
	shared, record, site := dpFields(p)
	unset := func(fs []dpField, why string) {
		for _, f := range fs {
			if f.x != 0 {
				v.bad("%s is %v but %s: remove it", f.field, f.x, why)
			}
		}
	}
	switch p.Level {
	case "", "none":
		for _, fs := range [][]dpField{shared, record, site} {
			for _, f := range fs {
				if f.x != 0 {
					v.bad("%s is %v but privacy.level is %s (differential privacy off): set privacy.level: record (DP-SGD at every site) or site (noise on each site's update), or remove %s",
						f.field, f.x, quote(p.Level), dpFieldsPattern)
				}
			}
		}
		return
	case levelRecord:
		unset(site, "privacy.level is record (site-level settings apply to privacy.level: site)")
		v.floatIn("privacy.example_clip", p.ExampleClip, span{lo: 0, hi: maxExampleClip, loOpen: true})
	case levelSite:
		unset(record, "privacy.level is site (example_clip is DP-SGD's, privacy.level: record)")
		v.siteDP(s)
	default:
		v.bad("privacy.level is %s: use record (DP-SGD at every site), site (noise on each site's update) or none", quote(p.Level))
		return
	}
	v.noise(p)
}

// noise checks delta and exactly one of noise_multiplier (the noise) and
// epsilon (the whole job's target, from which the noise is planned).
func (v *validator) noise(p *pb.PrivacySpec) {
	v.floatIn("privacy.delta", p.Delta, span{lo: 0, hi: maxDPDelta, loOpen: true})
	switch {
	case p.NoiseMultiplier != 0 && p.Epsilon != 0:
		v.bad("privacy.noise_multiplier is %v and privacy.epsilon is %v: set one of them (noise_multiplier fixes the noise; epsilon plans the noise that spends it over the whole job)",
			p.NoiseMultiplier, p.Epsilon)
	case p.NoiseMultiplier != 0:
		v.floatIn("privacy.noise_multiplier", p.NoiseMultiplier, span{lo: 0, hi: maxDPNoise, loOpen: true})
	case p.Epsilon != 0:
		v.floatIn("privacy.epsilon", p.Epsilon, span{lo: 0, hi: maxDPEpsilon, loOpen: true})
	default:
		v.bad("privacy.level is %s but neither privacy.noise_multiplier nor privacy.epsilon is set: set the noise, or the epsilon the job may spend", p.Level)
	}
}

// siteDP checks site-level DP. The sensitivity of the sum of clipped
// updates is C only if each site counts once: the aggregate must be the
// unweighted mean, and the coordinator must see no single update's value
// in a way the noise on the sum does not cover. fedavg, fedprox and the
// adaptive server optimisers take the mean (their server step is
// post-processing); median and trimmed-mean select among individual
// updates, whose own noise is only 1/sqrt(min_sites) of the whole, so
// they are refused.
func (v *validator) siteDP(s *pb.JobSpec) {
	p := s.Privacy
	v.floatIn("privacy.update_clip", p.UpdateClip, span{lo: 0, hi: maxUpdateClip, loOpen: true})
	if st := s.Aggregation.GetStrategy(); st == aggregation.StrategyMedian || st == aggregation.StrategyTrimmedMean {
		v.bad("aggregation.strategy %s with privacy.level site: a %s picks among single sites' updates, each carrying only 1/sqrt(min_sites) of the noise, "+
			"so the site-level guarantee would not hold; use fedavg, fedprox, fedadam, fedyogi or fedadagrad (they take the unweighted mean of the updates)", quote(st), st)
	}
	if p.AdaptiveClipQuantile == 0 {
		if p.AdaptiveClipLr != 0 || p.AdaptiveClipCountNoise != 0 {
			v.bad("privacy.adaptive_clip.lr/count_noise are set but privacy.adaptive_clip.quantile is not: set the target quantile (e.g. 0.5) to adapt the clip, or remove them")
		}
		return
	}
	q := v.floatIn("privacy.adaptive_clip.quantile", p.AdaptiveClipQuantile, span{lo: 0, hi: 1, loOpen: true, hiOpen: true})
	lr := v.floatIn("privacy.adaptive_clip.lr", p.AdaptiveClipLr, span{lo: 0, hi: maxClipLR, loOpen: true})
	cn := v.floatIn("privacy.adaptive_clip.count_noise", p.AdaptiveClipCountNoise, span{lo: 0, hi: maxDPNoise, loOpen: true})
	if !q || !lr || !cn {
		return
	}
	z := p.NoiseMultiplier
	if z == 0 {
		var err error
		if z, err = dp.PlanSite(p.Epsilon, p.Delta, int(s.Rounds)); err != nil {
			return // the epsilon's own check reports it
		}
	}
	if 2*p.AdaptiveClipCountNoise <= z {
		v.bad("privacy.adaptive_clip.count_noise %v leaves no noise for the update: the count's noise must exceed half the round's noise multiplier %.4g "+
			"(the two releases share it: z_update = (z^-2 - (2 count_noise)^-2)^-1/2); set count_noise to at least %.3g, or raise the noise",
			p.AdaptiveClipCountNoise, z, math.Ceil(z*1000)/1000)
	}
}
