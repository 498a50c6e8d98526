package coordinator

import (
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/concord-fl/concord/coordinator/round"
	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/jobspec"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Leave-one-site-out. A job in this mode becomes one ordinary federated
// job per site listed in sites (a fold): trained on the other sites and
// scored, through the usual signed validation receipts, by the held-out
// site (and by the job's validation sites, if any). Folds share a fold
// group; they publish nothing, since each is an estimate of how the
// federation's model generalises to a hospital that did not train it, and
// `concordctl jobs folds GROUP` reports the mean and spread over folds.
// The split is evaluation.LeaveOneSiteOut's, over the sites.

// maxNameBytes bounds a fold's job name (the spec's own name limit).
const maxNameBytes = 128

// submitFolds submits the folds of a leave-one-site-out spec and returns
// the first; all or none are created.
func (c *Coordinator) submitFolds(spec *pb.JobSpec, by Identity) (*job, error) {
	jobspec.Defaults(spec)
	if err := jobspec.ValidateWithLimits(spec, c.limits()); err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalid, err)
	}
	folds, err := evaluation.LeaveOneSiteOut(spec.Sites)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalid, err)
	}
	var jobs []*job
	undo := func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, j := range jobs {
			c.stepLocked(j, round.Event{Type: round.EvAbort, Now: c.now(), Actor: by.String(), Reason: "another fold of the same leave-one-site-out job could not be submitted"})
		}
	}
	group := ""
	for k, f := range folds {
		held := f.Name
		child := proto.Clone(spec).(*pb.JobSpec)
		child.Mode = jobspec.ModeFederated
		child.Sites = nil
		for _, i := range f.Train {
			child.Sites = append(child.Sites, spec.Sites[i])
		}
		child.ValidationSites = append([]string{held}, spec.ValidationSites...)
		child.Name = foldName(spec.Name, k+1, len(folds), held)
		j, err := c.submitJob(child, by, func(rec *jobRecord) {
			if group == "" {
				group = "loso-" + rec.ID
			}
			rec.FoldGroup, rec.HeldOut = group, held
		})
		if err != nil {
			undo()
			return nil, fmt.Errorf("fold %d (%s held out): %w", k+1, held, err)
		}
		jobs = append(jobs, j)
	}
	c.bus.emit(Event{Kind: EvJobSubmitted, Actor: by.String(), JobID: jobs[0].rec.ID,
		Detail: fmt.Sprintf("leave-one-site-out %s: %d folds (jobs %s to %s), one per site of %v", group, len(jobs), jobs[0].rec.ID, jobs[len(jobs)-1].rec.ID, spec.Sites)})
	return jobs[0], nil
}

// foldName names a fold within the spec's name limit.
func foldName(name string, k, n int, held string) string {
	return boundName(name, fmt.Sprintf(" [fold %d/%d, %s held out]", k, n, held))
}

// boundName is name with suffix, the name cut on a rune boundary to keep
// within the spec's name limit.
func boundName(name, suffix string) string {
	for len(name)+len(suffix) > maxNameBytes && len(name) > 0 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return name + suffix
}

// evaluateFoldLocked ends a fold once its final receipts are in (or the
// receipt deadline passed): it records what the held-out site measured
// and publishes nothing.
func (c *Coordinator) evaluateFoldLocked(j *job) {
	got, _ := finalValidations(j)
	g := &gateRecord{State: gateEvaluated, Decided: c.now().UTC(),
		Reasons: []string{fmt.Sprintf("leave-one-site-out fold of %s: evaluation only, nothing is published", j.rec.FoldGroup)}}
	for _, site := range j.spec.ValidationSites {
		switch v, ok := got[site]; {
		case !ok:
			g.Reasons = append(g.Reasons, fmt.Sprintf("no signed validation receipt from site %s", site))
		case v.Failed != "":
			g.Reasons = append(g.Reasons, fmt.Sprintf("site %s could not validate: %s", site, v.Failed))
		}
	}
	if !c.setGateLocked(j, g, "record fold evaluation") {
		return
	}
	held := ""
	if v, ok := got[j.rec.HeldOut]; ok && v.Failed == "" {
		held = formatEstimates(v.Metrics)
	}
	c.bus.emit(Event{Kind: EvJobCompleted, Actor: "coordinator", JobID: j.rec.ID, Round: len(j.rec.Rounds),
		Detail: fmt.Sprintf("fold %s held out %s: %s", j.rec.FoldGroup, j.rec.HeldOut, orNone(held))})
}

// setGateLocked records g as the job's gate; when it cannot be saved, the
// job keeps its old gate (so the next tick tries again) and the failure is
// logged as what.
func (c *Coordinator) setGateLocked(j *job, g *gateRecord, what string) bool {
	old := j.rec.Gate
	j.rec.Gate = g
	if err := c.saveJob(j, nil); err != nil {
		j.rec.Gate = old
		c.log.Error(what, "job", j.rec.ID, "err", err)
		return false
	}
	return true
}

func orNone(s string) string {
	if s == "" {
		return "no result from the held-out site"
	}
	return s
}
