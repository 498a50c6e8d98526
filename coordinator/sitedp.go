package coordinator

import (
	"fmt"
	"math"

	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/privacy/dp"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Site-level differential privacy (privacy/dp doc, "Site level"). The
// sites add the noise; the coordinator's duties are to aggregate the
// unweighted mean (a sample-weighted one would break the sensitivity bound
// C of the sum), to close a round only with at least min_sites updates
// (the round machine's rule: the noise shares assume m), to check that the
// decrypted total weight is the number of contributors (every site
// encrypted weight 1), and, with adaptive clipping, to adapt the clip from
// the noisy count and send it with the next round's tasks.

// siteLevel reports whether the job runs site-level DP.
func siteLevel(spec *pb.JobSpec) bool { return spec.GetPrivacy().GetLevel() == string(dp.Site) }

// adaptiveClip reports whether the job adapts its site-level clip.
func adaptiveClip(spec *pb.JobSpec) bool {
	return siteLevel(spec) && spec.GetPrivacy().GetAdaptiveClipQuantile() > 0
}

// updateValues is the number of values in each site's update: the model's
// parameters, and the count bit under adaptive clipping.
func (j *job) updateValues() int { return updateValues(j.spec, j.rec.Params) }

func updateValues(spec *pb.JobSpec, params int) int {
	if adaptiveClip(spec) {
		return params + 1
	}
	return params
}

// roundClip is the clip of the job's current round: the adapted one, or
// the spec's before the first adaptation. 0 for a job that does not adapt
// (the site uses the spec's).
func (j *job) roundClip() float64 {
	if !adaptiveClip(j.spec) {
		return 0
	}
	if j.rec.UpdateClip > 0 {
		return j.rec.UpdateClip
	}
	return j.spec.GetPrivacy().GetUpdateClip()
}

// siteReceiptProblems checks a site-level receipt against the job: one
// Gaussian release (q = 1, one step) with the job's noise multiplier,
// calibrated for min_sites contributors, at the round's clip.
func siteReceiptProblems(j *job, r dp.Receipt) []string {
	d, err := jobspec.SiteDPConfig(j.spec)
	if err != nil || d == nil {
		return []string{fmt.Sprintf("cannot be checked: %v", err)}
	}
	var out []string
	if math.Abs(r.NoiseMultiplier-d.NoiseMultiplier) > 1e-9*d.NoiseMultiplier {
		out = append(out, fmt.Sprintf("declares noise multiplier %g, the job's is %g", r.NoiseMultiplier, d.NoiseMultiplier))
	}
	if r.SampleRate != 1 || r.Steps != 1 {
		out = append(out, fmt.Sprintf("declares sample rate %g and %d steps: a site-level release is one Gaussian release with every site in", r.SampleRate, r.Steps))
	}
	if r.MinContributors != d.MinSites {
		out = append(out, fmt.Sprintf("calibrates the noise for %d contributors, the job's min_sites is %d", r.MinContributors, d.MinSites))
	}
	clip := j.roundClip()
	if clip == 0 {
		clip = d.Clip
	}
	if math.Abs(r.UpdateClip-clip) > 1e-12*clip {
		out = append(out, fmt.Sprintf("declares update clip %g, the round's is %g", r.UpdateClip, clip))
	}
	return out
}

// checkSiteWeight refuses a decrypted site-level sum whose total weight is
// not the number of contributors: some site weighted its update, and the
// sum's sensitivity is no longer C.
func checkSiteWeight(total float64, contributors int) error {
	if !(math.Abs(total-float64(contributors)) <= 0.25) { // NaN too
		return fmt.Errorf("site-level DP: the decrypted total weight is %.3f, not the %d contributors (each site must encrypt weight 1): the aggregate is refused", total, contributors)
	}
	return nil
}

// adaptClip takes the count bit off a site-level adaptive mean and
// returns the next round's clip: the mean's last value is the noisy mean
// of the centred bits, so k times it, uncentred, is the noisy number of
// sites whose update was within the clip (dp.NextClip).
func adaptClip(spec *pb.JobSpec, clip float64, mean []float32, k int, metrics map[string]float64) ([]float32, float64) {
	p := spec.GetPrivacy()
	n := len(mean) - 1
	count := dp.UncentreCount(float64(mean[n])*float64(k), k)
	fraction := count / float64(k)
	next := dp.NextClip(clip, fraction, p.GetAdaptiveClipQuantile(), p.GetAdaptiveClipLr())
	metrics["update_clip"] = clip
	metrics["clipped_fraction_noisy"] = 1 - fraction
	return mean[:n], next
}
