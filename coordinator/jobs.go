package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/concord-fl/concord/coordinator/round"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/pki"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// jobRecord is a job as persisted.
type jobRecord struct {
	ID          string          `json:"id"`
	Spec        []byte          `json:"spec"` // proto-encoded pb.JobSpec
	State       round.State     `json:"state"`
	Created     time.Time       `json:"created"`
	SubmittedBy string          `json:"submitted_by"`
	Params      int             `json:"params"`
	LayoutHash  string          `json:"layout_hash"`
	Layout      json.RawMessage `json:"layout"`
	OptState    []byte          `json:"opt_state,omitempty"`
	// Nonces issued with tasks, by nonceKey; an upload must present the
	// nonce of the task it answers.
	Nonces       map[string]string `json:"nonces"`
	Rounds       []roundSummary    `json:"rounds,omitempty"`
	ModelVersion string            `json:"model_version,omitempty"`
	Secure       *secureState      `json:"secure,omitempty"`
	// Sites lists every site sent a task of this job: the job's members,
	// who may read its models.
	Sites map[string]bool `json:"sites,omitempty"`
	// Failures are the task failures sites reported, newest last (at most
	// maxFailures).
	Failures []siteFailure `json:"failures,omitempty"`
	// Validation (validate.go): VALIDATE tasks sent and not answered, by
	// validationKey; the answers (figures only: the signed receipts are in
	// bValidation); the promotion gate (models.go).
	Validating map[string]*validationTask `json:"validating,omitempty"`
	Validated  []validationSummary        `json:"validated,omitempty"`
	Gate       *gateRecord                `json:"gate,omitempty"`
	// AwaitingApproval holds a retraining job until an admin approves it.
	AwaitingApproval bool `json:"awaiting_approval,omitempty"`
	// RetrainOf is the version a retraining job retrains, and why.
	RetrainOf     string `json:"retrain_of,omitempty"`
	RetrainReason string `json:"retrain_reason,omitempty"`
	RetrainKind   string `json:"retrain_kind,omitempty"` // drift | feedback | schedule
	// FoldGroup and HeldOut mark a leave-one-site-out fold (folds.go).
	FoldGroup string `json:"fold_group,omitempty"`
	HeldOut   string `json:"held_out,omitempty"`
	// Federated tuning (tune.go): the group; a trial's rung, candidate
	// index and the tuned spec (proto-encoded); the final job; the job that
	// records a search that ended without one; what the job is in it.
	TuneGroup     string `json:"tune_group,omitempty"`
	TuneRung      int    `json:"tune_rung,omitempty"`
	TuneCandidate int    `json:"tune_candidate,omitempty"`
	TuneSpec      []byte `json:"tune_spec,omitempty"`
	TuneFinal     bool   `json:"tune_final,omitempty"`
	TuneEnded     bool   `json:"tune_ended,omitempty"`
	TuneNote      string `json:"tune_note,omitempty"`
	// UpdateClip is the site-level clip of the current round under
	// adaptive clipping (sitedp.go); 0 before the first adaptation.
	UpdateClip float64 `json:"update_clip,omitempty"`
	// Pooled is a secure job's pool of validation counts (pooled.go).
	Pooled *pooledState `json:"pooled,omitempty"`
}

type roundSummary struct {
	Round        int                `json:"round"`
	Participants []string           `json:"participants"`
	Contributors []string           `json:"contributors"`
	Samples      uint64             `json:"samples"`
	Metrics      map[string]float64 `json:"metrics,omitempty"`
	Started      time.Time          `json:"started"`
	Seconds      float64            `json:"seconds"`
	Model        string             `json:"model"` // blob name of the global model after this round
}

// job is a job in memory. Fields are guarded by Coordinator.mu.
type job struct {
	rec  *jobRecord
	spec *pb.JobSpec
	m    *round.Machine
	// busy is set while an aggregation or key combination runs in the
	// background, so a restart or a repeated action never starts a second.
	busy bool
}

func modelBlob(jobID string, r int) string { return fmt.Sprintf("model/%s/%d", jobID, r) }

func uploadBlob(jobID string, kind round.Kind, r int, site string) string {
	return fmt.Sprintf("upload/%s/%s/%d/%s", jobID, kind, r, site)
}

func machineConfig(spec *pb.JobSpec) round.Config {
	secure := spec.GetPrivacy().GetSecureAggregation() == "mhe"
	exclude, validateOnly := spec.ValidationSites, []string(nil)
	if secure {
		// Validation sites of a secure job hold key shares so that their
		// counts can be pooled under the job's key (pooled.go).
		exclude, validateOnly = nil, spec.ValidationSites
	}
	return round.Config{
		Rounds:          int(spec.Rounds),
		MinSites:        int(spec.MinSites),
		RoundDeadline:   time.Duration(spec.RoundDeadlineSeconds * float64(time.Second)),
		StragglerCutoff: time.Duration(spec.StragglerCutoffSeconds * float64(time.Second)),
		Sites:           spec.Sites,
		Exclude:         exclude,
		ValidateOnly:    validateOnly,
		Secure:          secure,
		Threshold:       int(spec.GetPrivacy().GetThreshold()),
	}
}

// limits are the job limits this coordinator's operator set.
func (c *Coordinator) limits() jobspec.Limits { return c.cfg.Limits.WithDefaults() }

// submit validates a spec, creates the job with its initial model and
// starts it.
func (c *Coordinator) submit(spec *pb.JobSpec, by Identity) (*job, error) {
	return c.submitJob(spec, by, nil)
}

// submitJob is submit with mark, when not nil, filling in the new record
// (its ID assigned) in the transaction that creates it: what a job is part
// of (a fold group, a tuning group, a retraining) is never missing from a
// job a crash left behind. A record marked AwaitingApproval is kept until
// an admin approves it instead of starting.
func (c *Coordinator) submitJob(spec *pb.JobSpec, by Identity, mark func(*jobRecord)) (*job, error) {
	if spec.Mode == jobspec.ModeLeaveOneSiteOut {
		return nil, fmt.Errorf("%w: a leave-one-site-out spec is submitted as its folds (submitFolds)", errInvalid)
	}
	if spec.Tuning != nil {
		return nil, fmt.Errorf("%w: a spec with tuning is submitted as its trials (submitTuning)", errInvalid)
	}
	jobspec.Defaults(spec)
	if err := jobspec.ValidateWithLimits(spec, c.limits()); err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalid, err)
	}
	if err := c.checkSiteNames(spec); err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalid, err)
	}
	mcfg := machineConfig(spec)
	m, err := round.New(mcfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalid, err)
	}
	model, err := learning.New(jobspec.ModelSpec(spec), spec.Seed)
	if err != nil {
		return nil, fmt.Errorf("%w: model: %w", errInvalid, err)
	}
	layout := model.Layout()
	weights := model.Weights()
	if spec.InitVersion != "" {
		if weights, err = c.initialWeights(spec.InitVersion, layout.Hash(), len(weights)); err != nil {
			return nil, fmt.Errorf("%w: init_version: %w", errInvalid, err)
		}
	}
	specBytes, err := proto.Marshal(spec)
	if err != nil {
		return nil, err
	}
	rec := &jobRecord{Spec: specBytes, Created: c.now().UTC(), SubmittedBy: by.String(), Params: len(weights),
		LayoutHash: layout.Hash(), Layout: layout.JSON(), Nonces: map[string]string{}}
	if mcfg.Secure {
		if rec.Secure, err = newSecureState(spec, len(weights), c.cfg.Rand); err != nil {
			return nil, fmt.Errorf("%w: %w", errInvalid, err)
		}
	}
	j := &job{rec: rec, spec: spec, m: m}
	c.mu.Lock()
	defer c.mu.Unlock()
	err = c.st.db.Update(func(tx *bolt.Tx) error {
		n, err := nextSeq(tx, "job")
		if err != nil {
			return err
		}
		rec.ID = strconv.FormatUint(n, 10)
		if _, err := putBlob(tx, modelBlob(rec.ID, 0), learning.EncodeWeights(weights)); err != nil {
			return err
		}
		rec.State = m.State()
		if mark != nil {
			mark(rec)
		}
		return putJSON(tx, bJobs, rec.ID, rec)
	})
	if err != nil {
		return nil, fmt.Errorf("store job: %w", err)
	}
	c.jobs[rec.ID] = j
	c.order = append(c.order, rec.ID)
	c.bus.emit(Event{Kind: EvJobSubmitted, Actor: by.String(), JobID: rec.ID,
		Detail: fmt.Sprintf("job %q submitted: %d rounds, min %d sites, strategy %s, secure aggregation %s, %d parameters",
			spec.Name, spec.Rounds, spec.MinSites, spec.Aggregation.Strategy, spec.Privacy.SecureAggregation, len(weights))})
	if !rec.AwaitingApproval {
		c.stepLocked(j, round.Event{Type: round.EvStart, Now: c.now(), Sites: c.connectedLocked()})
	}
	return j, nil
}

func (c *Coordinator) connectedLocked() []string {
	out := make([]string, 0, len(c.sessions))
	for s := range c.sessions {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// restoreJobs loads every job from the database; unfinished ones resume
// where the persisted state machine left them.
func (c *Coordinator) restoreJobs() error {
	return c.st.db.View(func(tx *bolt.Tx) error {
		var ids []string
		err := tx.Bucket(bJobs).ForEach(func(k, v []byte) error {
			rec := &jobRecord{}
			if err := json.Unmarshal(v, rec); err != nil {
				return fmt.Errorf("job %s: %w", k, err)
			}
			spec := &pb.JobSpec{}
			if err := proto.Unmarshal(rec.Spec, spec); err != nil {
				return fmt.Errorf("job %s spec: %w", k, err)
			}
			m, err := round.Restore(machineConfig(spec), rec.State)
			if err != nil {
				return fmt.Errorf("job %s: %w", k, err)
			}
			if rec.Nonces == nil {
				rec.Nonces = map[string]string{}
			}
			c.jobs[rec.ID] = &job{rec: rec, spec: spec, m: m}
			ids = append(ids, rec.ID)
			return nil
		})
		sort.Slice(ids, func(a, b int) bool {
			x, _ := strconv.Atoi(ids[a])
			y, _ := strconv.Atoi(ids[b])
			return x < y
		})
		c.order = ids
		return err
	})
}

// resumeWork restarts background work a crash interrupted: an aggregation
// or key combination in progress, a publication not yet written.
func (c *Coordinator) resumeWork(ctx context.Context) {
	for _, id := range c.order {
		j := c.jobs[id]
		st := j.m.State()
		switch {
		case st.Phase == round.PhaseAggregate:
			c.startAggregation(ctx, j, st.Round, st.Contributors)
		case st.Phase == round.PhaseKeyCombine:
			c.startKeyCombine(ctx, j)
		case st.Phase == round.PhaseCompleted && j.rec.ModelVersion == "":
			c.publishLocked(j)
		}
	}
	for _, id := range c.order {
		if j := c.jobs[id]; j.rec.TuneGroup != "" && !j.rec.TuneFinal {
			c.advanceTuningLocked(j.rec.TuneGroup) // a step a crash interrupted
		}
	}
	c.runCtx = ctx
}

func (c *Coordinator) tick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range c.order {
		j := c.jobs[id]
		if j.m.Done() {
			if g := j.rec.Gate; g != nil && g.State == gatePending {
				c.publishLocked(j)
			}
			continue
		}
		c.stepLocked(j, round.Event{Type: round.EvTick, Now: c.now()})
		// Background work whose result could not be committed is redone.
		if st := j.m.State(); st.Phase == round.PhaseAggregate && !j.busy {
			c.startAggregation(c.runCtx, j, st.Round, st.Contributors)
		}
	}
}

// stepLocked feeds one event to a job's machine, persists the new state
// (with the deliveries the step discards, in the same transaction), then
// executes the actions. When the state cannot be saved the machine is put
// back as it was, so memory never runs ahead of the database. Callers hold
// c.mu.
func (c *Coordinator) stepLocked(j *job, ev round.Event) {
	if j.rec.AwaitingApproval && ev.Type != round.EvAbort {
		return // nothing happens to a job before it is approved, except an abort
	}
	prev := j.m.State()
	prevFailures := len(j.rec.Failures)
	acts := j.m.Step(ev)
	if len(acts) == 0 && ev.Type == round.EvTick {
		return
	}
	j.rec.State = j.m.State()
	if err := c.saveJob(j, func(tx *bolt.Tx) error { return c.applyDiscards(tx, j, acts) }); err != nil {
		c.log.Error("persist job state; step rolled back", "job", j.rec.ID, "err", err)
		j.m, _ = round.Restore(machineConfig(j.spec), prev)
		j.rec.State = prev
		j.rec.Failures = j.rec.Failures[:min(prevFailures, len(j.rec.Failures))]
		return
	}
	c.execute(j, acts)
	if j.rec.TuneGroup != "" && !j.rec.TuneFinal && j.m.Done() && j.m.State().Phase != round.PhaseCompleted {
		c.advanceTuningLocked(j.rec.TuneGroup) // a trial that will not be scored
	}
}

// applyDiscards drops the deliveries a step discarded (a revoked site's
// update in a round not yet closed). With secure aggregation the round's
// encrypted sum is rebuilt from the updates that still count.
func (c *Coordinator) applyDiscards(tx *bolt.Tx, j *job, acts []round.Action) error {
	for _, a := range acts {
		if a.Type != round.ActDiscard {
			continue
		}
		name := uploadBlob(j.rec.ID, a.Kind, a.Round, a.Site)
		if err := deleteBlob(tx, name); err != nil {
			return err
		}
		if err := tx.Bucket(bUploads).Delete([]byte(name)); err != nil {
			return err
		}
		if j.rec.Secure != nil && a.Kind == round.KindUpdate {
			if err := c.rebuildSecureSum(tx, j, a.Round); err != nil {
				return fmt.Errorf("rebuild encrypted sum without %s: %w", a.Site, err)
			}
		}
	}
	return nil
}

// taskFailed records a site's report that it could not do a task: the job
// and the site's record keep it, an event with the job's id says it, and
// the job's machine decides whether the round can still complete.
func (c *Coordinator) taskFailed(site, taskID, detail string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if detail == "" {
		detail = "no reason given"
	}
	jobID, key, _ := strings.Cut(taskID, "/")
	j := c.jobs[jobID]
	if j != nil && strings.HasPrefix(key, "validate/") && c.validationFailedLocked(j, site, key, detail) {
		return
	}
	parts := strings.Split(key, "/") // kind/round[.attempt]/site
	if j == nil || len(parts) != 3 || parts[2] != site || j.rec.Nonces[key] == "" {
		c.bus.emit(Event{Kind: EvTaskFailed, Actor: "site:" + site, Site: site,
			Detail: fmt.Sprintf("site %s reported a failure for a task it was not given (%s): %s", site, q(taskID), detail)})
		return
	}
	kind := round.Kind(parts[0])
	roundStr, _, _ := strings.Cut(parts[1], ".")
	r, _ := strconv.Atoi(roundStr)
	f := siteFailure{Site: site, JobID: jobID, Round: r, Task: string(kind), Reason: detail, Time: c.now().UTC()}
	j.rec.Failures = append(j.rec.Failures, f)
	if n := len(j.rec.Failures); n > maxFailures {
		j.rec.Failures = slices.Delete(j.rec.Failures, 0, n-maxFailures)
	}
	rec := c.siteLocked(site)
	rec.LastFailure = &f
	c.saveSiteLocked(rec)
	c.bus.emit(Event{Kind: EvTaskFailed, Actor: "site:" + site, JobID: jobID, Round: r, Site: site,
		Detail: fmt.Sprintf("%s task failed at %s: %s", kind, site, detail)})
	if isPoolRound(r) {
		c.poolMemberFailedLocked(j, site, detail)
		return
	}
	c.stepLocked(j, round.Event{Type: round.EvSiteFailed, Now: c.now(), Site: site, Kind: kind, Round: r, Reason: detail})
}

// checkSiteNames refuses a job naming a site the consortium CA never
// issued a certificate to: it would wait for it forever.
func (c *Coordinator) checkSiteNames(spec *pb.JobSpec) error {
	inv := c.inventory()
	if inv == nil {
		return nil
	}
	known := map[string]bool{}
	for _, e := range inv.Certificates {
		if e.Role == pki.RoleSite {
			known[e.Name] = true
		}
	}
	var unknown []string
	for _, list := range [][]string{spec.Sites, spec.ValidationSites} {
		for _, s := range list {
			if !known[s] {
				unknown = append(unknown, q(s))
			}
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("no site certificate was ever issued to %s: check the names (`concordctl pki list` shows them) or issue a kit first", strings.Join(unknown, ", "))
	}
	return nil
}

// saveJob persists the job record, plus whatever extra writes must commit
// in the same transaction.
func (c *Coordinator) saveJob(j *job, extra func(tx *bolt.Tx) error) error {
	return c.st.db.Update(func(tx *bolt.Tx) error {
		if extra != nil {
			if err := extra(tx); err != nil {
				return err
			}
		}
		return putJSON(tx, bJobs, j.rec.ID, j.rec)
	})
}

// execute carries out a step's actions. Nonces for new tasks are persisted
// before any task is sent.
func (c *Coordinator) execute(j *job, acts []round.Action) {
	var tasks []*pb.Task
	var sites []string
	for _, a := range acts {
		switch a.Type {
		case round.ActSendTask:
			t, err := c.buildTaskLocked(j, a)
			if err != nil {
				c.log.Error("build task", "job", j.rec.ID, "site", a.Site, "err", err)
				continue
			}
			tasks = append(tasks, t)
			sites = append(sites, a.Site)
		case round.ActCombineKey:
			c.startKeyCombine(c.runCtx, j)
		case round.ActAggregate:
			c.startAggregation(c.runCtx, j, a.Round, a.Sites)
		case round.ActRoundClosed:
			c.bus.emit(Event{Kind: EvRoundClosed, Actor: "coordinator", JobID: j.rec.ID, Round: a.Round, Detail: a.Reason})
		case round.ActCompleted:
			c.publishLocked(j)
		case round.ActAborted:
			c.bus.emit(Event{Kind: EvJobAborted, Actor: "coordinator", JobID: j.rec.ID, Round: a.Round, Detail: a.Reason})
			for site, s := range c.sessions {
				if c.jobMemberLocked(j, site) {
					s.send(&pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Cancel{Cancel: &pb.Cancel{JobId: j.rec.ID, Reason: a.Reason}}})
				}
			}
		case round.ActDiscard:
			c.bus.emit(Event{Kind: EvRoundNote, Actor: "coordinator", JobID: j.rec.ID, Round: a.Round, Site: a.Site,
				Detail: fmt.Sprintf("%s from %s discarded: %s", a.Kind, a.Site, a.Reason)})
		case round.ActNote:
			c.bus.emit(Event{Kind: EvRoundNote, Actor: "coordinator", JobID: j.rec.ID, Round: a.Round, Site: a.Site, Detail: a.Reason})
		}
	}
	if len(tasks) == 0 {
		return
	}
	if err := c.saveJob(j, nil); err != nil {
		c.log.Error("persist task nonces; tasks not sent", "job", j.rec.ID, "err", err)
		return
	}
	for i, t := range tasks {
		sess := c.sessions[sites[i]]
		if sess == nil {
			continue // sent again when the site reconnects
		}
		sess.send(&pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: t}})
		c.bus.emit(Event{Kind: EvTaskSent, Actor: "coordinator", JobID: j.rec.ID, Round: int(t.Round), Site: sites[i],
			Detail: fmt.Sprintf("%s task sent to %s", taskKindName(t.Kind), sites[i])})
	}
}

func (c *Coordinator) uploadRecord(name string) (*uploadRecord, error) {
	rec := &uploadRecord{}
	err := c.st.db.View(func(tx *bolt.Tx) error { return getJSON(tx, bUploads, name, rec) })
	return rec, err
}
