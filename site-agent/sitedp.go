package siteagent

import (
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/privacy/dp"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Site-level differential privacy (privacy.level site): the site clips its
// update to the round's clip C and adds its share of the Gaussian noise,
// std z·C/sqrt(min_sites), before encrypting, so that whatever sum of at
// least min_sites updates is decrypted carries the noise the site's
// site-level ledger is charged for. The noise comes from
// dp.NewSecureSource (ChaCha8 seeded from crypto/rand): noise the
// coordinator or another site could predict would protect nothing.

// release is what one update released, for the ledger and the receipt.
type release struct {
	level           dp.Level
	mechanism       dp.Gaussian
	delta           float64
	clip            float64 // site level: the round's C
	minContributors int     // site level: the m the noise share assumes
}

// sitePolicyRefuses returns why this site refuses a site-level job
// whatever its data, or nil.
func (a *Agent) sitePolicyRefuses(t *pb.Task) error {
	if a.cfg.Privacy.RequireDP {
		return permanentf("job %s uses site-level differential privacy, which does not protect each patient record, and this site requires record-level DP "+
			"(privacy.require_dp in its agent.yaml): resubmit the job with privacy.level: record", t.JobId)
	}
	if a.siteLedger == nil {
		return permanentf("job %s asks for site-level differential privacy, but this site has no site-level budget "+
			"(privacy.site_budget in its agent.yaml), so it takes no such job: ask the site to set one, or leave it out of the job", t.JobId)
	}
	return nil
}

// siteGate decides the site-level DP of a TRAIN task: nil for a job
// without it. The clip is the one the coordinator sent (adaptive
// clipping) or the spec's; the rest of the job must fit the site-level
// budget, or the site refuses permanently, with the numbers.
func (a *Agent) siteGate(t *pb.Task) (*jobspec.SiteDP, error) {
	if t.Spec.GetPrivacy().GetLevel() != string(dp.Site) {
		return nil, nil
	}
	if err := a.sitePolicyRefuses(t); err != nil {
		return nil, err
	}
	d, err := jobspec.SiteDPConfig(t.Spec)
	if err != nil {
		return nil, permanent(err)
	}
	c, err := d.WithClip(t.UpdateClip)
	if err != nil {
		return nil, permanent(err)
	}
	remaining := max(1, c.Rounds-int(t.Round)+1)
	rest := dp.Gaussian{NoiseMultiplier: c.NoiseMultiplier, SampleRate: 1, Steps: remaining}
	if err := a.siteLedger.Check(rest); err != nil {
		return nil, permanentf("site %s refuses job %s at round %d: the rest of the job (%d site-level releases) would exceed its site-level privacy budget: %w",
			a.siteName(), t.JobId, t.Round, remaining, err)
	}
	return &c, nil
}

// privatise clips delta to the round's clip and adds this site's share of
// the noise; with adaptive clipping it appends the site's centred count
// bit (was the norm within the clip?) with its share of the count's noise.
// It returns the vector to release and the norm before clipping, which
// stays at the site.
func privatise(d jobspec.SiteDP, delta []float32, src dp.Source) ([]float32, float64) {
	norm := dp.ClipL2(delta, d.Clip)
	dp.AddNoise(delta, d.UpdateStd(), src)
	if !d.Adaptive() {
		return delta, norm
	}
	bit := dp.CountBit(norm, d.Clip) + d.CountStd()*src.NormFloat64()
	return append(delta, float32(bit)), norm
}
