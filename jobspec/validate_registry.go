package jobspec

import (
	"math"

	pb "github.com/concord-fl/concord/proto/concordpb"
)

// validation checks the promotion gates. A gate is real or refused: gates
// without validation sites could never be measured.
func (v *validator) validation(s *pb.JobSpec) {
	switch s.Mode {
	case "", ModeFederated:
	case ModeLeaveOneSiteOut:
		v.leaveOneSiteOut(s)
	default:
		v.bad("mode is %s: want %s or %s", quote(s.Mode), ModeFederated, ModeLeaveOneSiteOut)
	}
	if iv := s.InitVersion; iv != "" && !versionName(iv) {
		v.bad("init_version is %s: a published version, e.g. v3 (`concordctl models list`)", quote(iv))
	}
	if r := s.GetRetrain(); r != nil {
		switch {
		case math.IsNaN(r.DriftPsi) || r.DriftPsi < 0 || r.DriftPsi > 100:
			v.bad("retrain.drift_psi is %v: a population stability index from 0 to 100 (0 turns the trigger off; 0.25 is a common alarm level)", r.DriftPsi)
		case math.IsNaN(r.EverySeconds) || r.EverySeconds < 0 || r.EverySeconds > 10*365*24*3600:
			v.bad("retrain.every is %vs: at most ten years", r.EverySeconds)
		case r.EverySeconds > 0 && r.EverySeconds < 3600:
			v.bad("retrain.every is %vs: at least 1h", r.EverySeconds)
		case r.RequireApproval && r.DriftPsi == 0 && r.MinFeedback == 0 && r.EverySeconds == 0:
			v.bad("retrain.require_approval is set but no retraining trigger is (drift_psi, min_feedback or every)")
		}
	}
	g := s.GetValidation()
	if g == nil {
		return
	}
	gates := false
	for _, f := range []struct {
		field string
		x     float64
	}{{"validation.min_auc", g.MinAuc}, {"validation.min_sensitivity", g.MinSensitivity}, {"validation.at_specificity", g.AtSpecificity},
		{"validation.max_auc_regression", g.MaxAucRegression}, {"validation.max_subgroup_gap", g.MaxSubgroupGap}, {"validation.min_dice", g.MinDice}} {
		switch {
		case math.IsNaN(f.x) || f.x < 0 || f.x > 1:
			v.bad("%s is %v: want a number from 0 to 1 (0 turns the gate off)", f.field, f.x)
		case f.x > 0 && f.field != "validation.at_specificity":
			gates = true
		}
	}
	if g.AtSpecificity > 0 && g.MinSensitivity == 0 {
		v.bad("validation.at_specificity is set but validation.min_sensitivity is not: the operating point is for the sensitivity gate")
	}
	if d := g.ReceiptDeadlineSeconds; math.IsNaN(d) || d < 0 || d > 7*24*3600 {
		v.bad("validation.receipt_deadline is %vs: at most a week", d)
	}
	if g.MinSubgroupCount > 1_000_000 {
		v.bad("validation.min_subgroup_count is %d: at most 1000000", g.MinSubgroupCount)
	}
	if g.ScoreLocalModels {
		switch {
		case len(s.ValidationSites) == 0:
			v.bad("validation.score_local_models needs validation_sites to score them")
		case s.GetPrivacy().GetSecureAggregation() != "none":
			v.bad("validation.score_local_models needs privacy.secure_aggregation none: under secure aggregation no site's local model leaves it unencrypted")
		}
	}
	if gates && len(s.ValidationSites) == 0 {
		v.bad("validation gates are set but validation_sites is empty: name the sites that score each candidate, or remove the gates")
	}
	seg := Segments(s)
	if g.MinDice > 0 && !seg {
		v.bad("validation.min_dice is a segmentation gate: model %s classifies", quote(s.GetModel().GetArch()))
	}
	if (g.MinAuc > 0 || g.MinSensitivity > 0 || g.MaxAucRegression > 0 || g.MaxSubgroupGap > 0) && seg {
		v.bad("validation.min_auc, min_sensitivity, max_auc_regression and max_subgroup_gap are classification gates: a segmentation job uses validation.min_dice")
	}
}

// versionName accepts v1, v2, ...: the names the registry gives.
func versionName(s string) bool {
	if len(s) < 2 || len(s) > 21 || s[0] != 'v' || s[1] == '0' {
		return false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Job modes.
const (
	ModeFederated       = "federated"
	ModeLeaveOneSiteOut = "leave-one-site-out"
)

// leaveOneSiteOut checks that every fold can run: each trains on the
// listed sites but one, and publishes nothing, so gates and retraining do
// not apply.
func (v *validator) leaveOneSiteOut(s *pb.JobSpec) {
	k := len(s.Sites)
	if k < 2 {
		v.bad("mode leave-one-site-out needs sites: to list at least 2 sites (one fold per site)")
		return
	}
	if int(s.MinSites) > k-1 {
		v.bad("mode leave-one-site-out: each fold trains on %d sites, but min_sites is %d", k-1, s.MinSites)
	}
	if t := s.GetPrivacy().GetThreshold(); int(t) > k-1 {
		v.bad("mode leave-one-site-out: each fold has %d key holders, but privacy.threshold is %d", k-1, t)
	}
	g := s.GetValidation()
	if g.GetMinAuc() > 0 || g.GetMinSensitivity() > 0 || g.GetMaxAucRegression() > 0 || g.GetMaxSubgroupGap() > 0 || g.GetMinDice() > 0 {
		v.bad("mode leave-one-site-out publishes nothing, so validation gates do not apply: remove them")
	}
	if r := s.GetRetrain(); r.GetDriftPsi() > 0 || r.GetMinFeedback() > 0 || r.GetEverySeconds() > 0 {
		v.bad("mode leave-one-site-out publishes nothing, so there is nothing to retrain: remove retrain")
	}
}
