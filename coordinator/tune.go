package coordinator

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/concord-fl/concord/coordinator/round"
	"github.com/concord-fl/concord/jobspec"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Federated tuning. A spec with a tuning section becomes a tuning group:
// rung 0 is one ordinary federated job (a trial) per candidate of
// jobspec.TuneCandidates, tuning.rounds rounds long, scored by the spec's
// validation sites on its last round through the usual signed receipts,
// publishing nothing. When every trial of a rung has ended (scored, failed
// or aborted), the best 1/eta by score (the examples-weighted mean AUC, or
// Dice for a segmentation job, over the validation sites) run again from
// the start eta times longer, while that is shorter than the spec's rounds
// and more than one survives; then the spec itself is submitted as the
// group's final job with the best candidate's settings, publishing as any
// job does. A trial with no score (it failed, was aborted, or no site
// could validate it) ranks last; a group in which no trial was scored
// ends without a final job, with an event that says so.
//
// Everything the group needs is in its jobs' records (the tuned spec, each
// trial's rung and candidate), so a coordinator that restarts mid-search
// advances it from there (resumeWork); advancing is idempotent.

// submitTuning submits rung 0 of a tuning spec and returns its first trial;
// all or none are created.
func (c *Coordinator) submitTuning(spec *pb.JobSpec, by Identity) (*job, error) {
	jobspec.Defaults(spec)
	if err := jobspec.ValidateWithLimits(spec, c.limits()); err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalid, err)
	}
	if err := c.checkSiteNames(spec); err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalid, err)
	}
	tuned, err := proto.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cands := jobspec.TuneCandidates(spec)
	all := make([]int, len(cands))
	for i := range all {
		all[i] = i
	}
	jobs, err := c.submitRung(spec, tuned, "", 0, all, by)
	if err != nil {
		return nil, err
	}
	group := jobs[0].rec.TuneGroup
	c.bus.emit(Event{Kind: EvJobSubmitted, Actor: by.String(), JobID: jobs[0].rec.ID,
		Detail: fmt.Sprintf("tuning %s: %d candidates (jobs %s to %s) at %d rounds each, keeping the best 1/%d by the validation sites' score",
			group, len(jobs), jobs[0].rec.ID, jobs[len(jobs)-1].rec.ID, spec.Tuning.Rounds, spec.Tuning.Eta)})
	return jobs[0], nil
}

// rungRounds is the length of a rung's trials.
func rungRounds(tu *pb.TuningSpec, rung int) uint32 {
	return tu.Rounds * uint32(math.Pow(float64(tu.Eta), float64(rung)))
}

// submitRung submits one trial per candidate index; group "" starts a new
// group named after the first trial. On an error the rung's trials already
// submitted are aborted.
func (c *Coordinator) submitRung(spec *pb.JobSpec, tuned []byte, group string, rung int, cands []int, by Identity) ([]*job, error) {
	all := jobspec.TuneCandidates(spec)
	rounds := rungRounds(spec.Tuning, rung)
	var jobs []*job
	undo := func(why string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, j := range jobs {
			c.stepLocked(j, round.Event{Type: round.EvAbort, Now: c.now(), Actor: by.String(), Reason: why})
		}
	}
	for n, k := range cands {
		cand := all[k]
		child := proto.Clone(spec).(*pb.JobSpec)
		child.Tuning, child.Retrain, child.Rounds = nil, nil, rounds
		cand.Apply(child)
		if child.Validation == nil {
			child.Validation = &pb.ValidationSpec{}
		}
		child.Validation.FinalOnly, child.Validation.ScoreLocalModels = true, false
		note := fmt.Sprintf("trial %d/%d of rung %d: %s, %d rounds", n+1, len(cands), rung, candidateText(cand), rounds)
		child.Name = boundName(spec.Name, " [tune "+note+"]")
		j, err := c.submitJob(child, by, func(rec *jobRecord) {
			if group == "" {
				group = "tune-" + rec.ID
			}
			rec.TuneGroup, rec.TuneRung, rec.TuneCandidate, rec.TuneSpec, rec.TuneNote = group, rung, k, tuned, note
		})
		if err != nil {
			undo("another trial of the same tuning rung could not be submitted")
			return nil, fmt.Errorf("tuning trial %d (%s): %w", n+1, candidateText(cand), err)
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

func candidateText(c jobspec.TuneCandidate) string {
	return fmt.Sprintf("server_lr %g, local_epochs %d", c.ServerLR, c.LocalEpochs)
}

// submitter is the identity a job record names as its submitter.
func submitter(s string) Identity {
	role, name, _ := strings.Cut(s, ":")
	return Identity{Role: role, Name: name}
}

// submitLater runs submit (which takes c.mu) outside the caller's lock,
// with the group marked busy so that no other advance submits the same
// step meanwhile; a failure is logged and told in an event.
func (c *Coordinator) submitLater(submit func() error, group string) {
	err := submit()
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.tuneBusy, group)
	if err != nil {
		c.log.Error("tuning: submit the next step", "group", group, "err", err)
		c.bus.emit(Event{Kind: EvJobAborted, Actor: "coordinator", Detail: fmt.Sprintf("tuning %s stopped: the next step could not be submitted: %v", group, err)})
	}
}

// evaluateTrialLocked ends a scored trial once its final receipts are in
// (or the receipt deadline passed): it records the score, publishes
// nothing and advances the group.
func (c *Coordinator) evaluateTrialLocked(j *job) {
	score := trialScore(j)
	g := &gateRecord{State: gateEvaluated, Decided: c.now().UTC(),
		Reasons: []string{fmt.Sprintf("tuning trial of %s: scored, nothing is published", j.rec.TuneGroup)}}
	if math.IsNaN(score) {
		g.Reasons = append(g.Reasons, "no validation site scored this trial's final model")
	}
	if !c.setGateLocked(j, g, "record tuning trial") {
		return
	}
	c.bus.emit(Event{Kind: EvJobCompleted, Actor: "coordinator", JobID: j.rec.ID, Round: len(j.rec.Rounds),
		Detail: fmt.Sprintf("tuning %s, %s: validation %s %s", j.rec.TuneGroup, j.rec.TuneNote, scoreMetric(j.spec), scoreText(score))})
	c.advanceTuningLocked(j.rec.TuneGroup)
}

// scoreMetric is the validation metric trials are ranked by.
func scoreMetric(spec *pb.JobSpec) string {
	if jobspec.Segments(spec) {
		return "dice"
	}
	return "auc"
}

// trialScore is the examples-weighted mean over the validation sites of
// the trial's final scoreMetric; NaN when none scored it.
func trialScore(j *job) float64 {
	metric := scoreMetric(j.spec)
	got, _ := finalValidations(j)
	var sum, n float64
	for _, v := range got {
		e, ok := v.Metrics[metric]
		if v.Failed != "" || !ok || v.Examples <= 0 || math.IsNaN(e.Value) {
			continue
		}
		sum += e.Value * float64(v.Examples)
		n += float64(v.Examples)
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / n
}

func scoreText(s float64) string {
	if math.IsNaN(s) {
		return "none"
	}
	return fmt.Sprintf("%.4f", s)
}

// trialEnded reports whether a trial has a result to rank: scored, or
// ended without completing.
func trialEnded(j *job) bool {
	if !j.m.Done() {
		return false
	}
	return j.m.State().Phase != round.PhaseCompleted || j.rec.Gate != nil && j.rec.Gate.State != gatePending
}

// advanceTuningLocked moves a group on once every trial of its latest rung
// has ended: the next rung, or the final job. It does nothing when the
// group already has its final job, or a later rung.
func (c *Coordinator) advanceTuningLocked(group string) {
	var rung []*job
	latest := -1
	for _, id := range c.order {
		j := c.jobs[id]
		switch {
		case j.rec.TuneGroup != group:
			continue
		case j.rec.TuneFinal || j.rec.TuneEnded || c.tuneBusy[group]:
			return
		case j.rec.TuneRung > latest:
			latest, rung = j.rec.TuneRung, nil
		case j.rec.TuneRung < latest:
			continue
		}
		if !trialEnded(j) {
			return
		}
		rung = append(rung, j)
	}
	if len(rung) == 0 {
		return
	}
	spec := &pb.JobSpec{}
	if err := proto.Unmarshal(rung[0].rec.TuneSpec, spec); err != nil {
		c.log.Error("tuning: read the tuned spec", "group", group, "err", err)
		return
	}
	type ranked struct {
		j     *job
		score float64
	}
	rs := make([]ranked, len(rung))
	for i, j := range rung {
		rs[i].j = j
		if j.m.State().Phase == round.PhaseCompleted {
			rs[i].score = trialScore(j)
		} else {
			rs[i].score = math.NaN()
		}
	}
	slices.SortStableFunc(rs, func(a, b ranked) int {
		switch an, bn := math.IsNaN(a.score), math.IsNaN(b.score); {
		case an != bn:
			if an {
				return 1
			}
			return -1
		case !an && a.score != b.score:
			return cmp.Compare(b.score, a.score)
		}
		return cmp.Compare(a.j.rec.TuneCandidate, b.j.rec.TuneCandidate)
	})
	by := submitter(rung[0].rec.SubmittedBy)
	best := rs[0]
	if math.IsNaN(best.score) {
		c.bus.emit(Event{Kind: EvJobAborted, Actor: "coordinator", JobID: best.j.rec.ID,
			Detail: fmt.Sprintf("tuning %s ended without a final job: no trial of rung %d was scored by a validation site (see each trial's failures)", group, latest)})
		best.j.rec.TuneEnded = true
		if err := c.saveJob(best.j, nil); err != nil {
			c.log.Error("tuning: record the end of the search", "group", group, "err", err)
		}
		return
	}
	keep := max(1, len(rs)/int(spec.Tuning.Eta))
	var scored int
	for _, r := range rs {
		if !math.IsNaN(r.score) {
			scored++
		}
	}
	keep = min(keep, scored)
	if next := rungRounds(spec.Tuning, latest+1); keep > 1 && next < spec.Rounds {
		var cands []int
		var kept []string
		for _, r := range rs[:keep] {
			cands = append(cands, r.j.rec.TuneCandidate)
			kept = append(kept, fmt.Sprintf("job %s (%s)", r.j.rec.ID, scoreText(r.score)))
		}
		tuned := rung[0].rec.TuneSpec
		c.tuneBusy[group] = true
		go c.submitLater(func() error {
			jobs, err := c.submitRung(spec, tuned, group, latest+1, cands, by)
			if err == nil {
				c.bus.emit(Event{Kind: EvJobSubmitted, Actor: "coordinator", JobID: jobs[0].rec.ID,
					Detail: fmt.Sprintf("tuning %s: rung %d kept %s; rung %d trains them %d rounds", group, latest, strings.Join(kept, ", "), latest+1, next)})
			}
			return err
		}, group)
		return
	}
	cand := jobspec.TuneCandidates(spec)[best.j.rec.TuneCandidate]
	final := proto.Clone(spec).(*pb.JobSpec)
	final.Tuning = nil
	cand.Apply(final)
	note := fmt.Sprintf("tuned by %s: %s (validation %s %.4f at rung %d, job %s)", group, candidateText(cand), scoreMetric(spec), best.score, latest, best.j.rec.ID)
	c.tuneBusy[group] = true
	go c.submitLater(func() error {
		j, err := c.submitJob(final, by, func(rec *jobRecord) {
			rec.TuneGroup, rec.TuneFinal, rec.TuneNote = group, true, note
		})
		if err == nil {
			c.bus.emit(Event{Kind: EvJobSubmitted, Actor: "coordinator", JobID: j.rec.ID, Detail: note})
		}
		return err
	}, group)
}
