package jobspec

import (
	"slices"

	"github.com/concord-fl/concord/aggregation"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Federated tuning (the spec's tuning section; the coordinator runs it,
// coordinator/tune.go). The candidates are every combination of
// tuning.server_lr and tuning.local_epochs (an absent list keeps the
// spec's own value). Each candidate trains as an ordinary federated job of
// tuning.rounds rounds that publishes nothing; the validation sites score
// its last round as usual; the best 1/eta by their mean score (AUC, or
// Dice for a segmentation job) run again eta times longer, and so on while
// a rung stays shorter than the spec's rounds and more than one candidate
// is left. Then the spec itself trains with the winner's settings.

const (
	// maxTuneCandidates bounds the candidates: each is a federated job at
	// every site.
	maxTuneCandidates = 16
	// DefaultTuneEta is tuning.eta when absent.
	DefaultTuneEta = 3
	maxTuneEta     = 8
)

// TuneCandidate is one point of a tuning search: the settings it gives
// the spec.
type TuneCandidate struct {
	ServerLR    float64
	LocalEpochs uint32
}

// TuneCandidates lists the candidates of the spec's search in a fixed
// order (server learning rate, then local epochs, as listed).
func TuneCandidates(s *pb.JobSpec) []TuneCandidate {
	tu := s.GetTuning()
	lrs, eps := tu.GetServerLr(), tu.GetLocalEpochs()
	if len(lrs) == 0 {
		lrs = []float64{s.GetAggregation().GetServerLr()}
	}
	if len(eps) == 0 {
		eps = []uint32{s.GetTraining().GetLocalEpochs()}
	}
	var out []TuneCandidate
	for _, lr := range lrs {
		for _, e := range eps {
			out = append(out, TuneCandidate{ServerLR: lr, LocalEpochs: e})
		}
	}
	return out
}

// Apply gives spec the candidate's settings.
func (c TuneCandidate) Apply(spec *pb.JobSpec) {
	spec.Aggregation.ServerLr = c.ServerLR
	spec.Training.LocalEpochs = c.LocalEpochs
}

func (v *validator) tuning(s *pb.JobSpec) {
	tu := s.Tuning
	if tu == nil {
		return
	}
	lrs, eps := tu.ServerLr, tu.LocalEpochs
	switch n := max(len(lrs), 1) * max(len(eps), 1); {
	case len(lrs) == 0 && len(eps) == 0:
		v.bad("tuning lists no candidates: give tuning.server_lr, tuning.local_epochs or both")
	case n < 2:
		v.bad("tuning has one candidate: list at least two values to choose between")
	case n > maxTuneCandidates:
		v.bad("tuning has %d candidates (every combination of tuning.server_lr and tuning.local_epochs): at most %d", n, maxTuneCandidates)
	}
	a := s.GetAggregation().GetStrategy()
	adaptive := a == aggregation.StrategyFedAdam || a == aggregation.StrategyFedYogi || a == aggregation.StrategyFedAdagrad
	if len(lrs) > 0 && !adaptive {
		v.bad("tuning.server_lr needs a server optimiser with a learning rate (aggregation.strategy fedadam, fedyogi or fedadagrad); strategy %s has none", quote(a))
	}
	for _, lr := range lrs {
		v.floatIn("tuning.server_lr", lr, span{lo: 0, hi: maxLR, loOpen: true})
	}
	for _, e := range eps {
		v.uintIn("tuning.local_epochs", uint64(e), 1, maxLocalEpochs)
	}
	if len(eps) > 0 && s.GetTraining().GetLocalSteps() != 0 {
		v.bad("tuning.local_epochs tunes epochs, but the job trains training.local_steps: remove one of them")
	}
	if hasDuplicates(lrs) || hasDuplicates(eps) {
		v.bad("tuning lists a value twice")
	}
	if tu.Rounds < 1 || tu.Rounds >= s.Rounds {
		v.bad("tuning.rounds is %d: a first-rung trial takes at least 1 round and fewer than the job's %d", tu.Rounds, s.Rounds)
	}
	v.uintIn("tuning.eta", uint64(tu.Eta), 2, maxTuneEta)
	if len(s.ValidationSites) == 0 {
		v.bad("tuning scores each candidate at the validation sites: name validation_sites")
	}
	if l := s.GetPrivacy().GetLevel(); l != "" && l != "none" {
		v.bad("tuning runs every candidate as a job of its own, and each would spend privacy budget at every site: tune without privacy.level %s", quote(l))
	}
	if s.Mode == ModeLeaveOneSiteOut {
		v.bad("tuning and mode leave-one-site-out do not combine: tune first, then estimate with the chosen settings")
	}
}

func hasDuplicates[T comparable](xs []T) bool {
	for i, x := range xs {
		if slices.Contains(xs[i+1:], x) {
			return true
		}
	}
	return false
}
