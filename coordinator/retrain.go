package coordinator

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/concord-fl/concord/coordinator/registry"
	"github.com/concord-fl/concord/coordinator/round"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Drift and retraining. Sites report only statistics about the images
// arriving at them: the population stability index per feature against
// the data they last trained or validated on, and how many labelled
// corrections clinicians recorded (site-agent/drift.go). A published
// version whose job spec carries retrain triggers is retrained when a site
// of its job reports drift at or above retrain.drift_psi, when its sites
// together report retrain.min_feedback corrections, or retrain.every after
// its publication: the coordinator submits the same spec again, starting
// from that version's weights (init_version), with the same gates, and
// holds it for an admin's approval when retrain.require_approval says so.
// Each version is retrained at most once; the retraining job's own
// version, if the gates publish it, carries the triggers on, except that
// a version drift retrained is not retrained for drift again (the same
// sites' data would give the same report, and retrain forever).

// Bounds on what a site may say in a drift report.
const (
	maxDriftFeatures = 16
	maxFeatureName   = 32
)

// driftRecord is a site's last drift report.
type driftRecord struct {
	BaselineJob      string             `json:"baseline_job"`
	PipelineHash     string             `json:"pipeline_hash"`
	BaselineExamples uint64             `json:"baseline_examples"`
	Examples         uint64             `json:"examples"`
	PSI              map[string]float64 `json:"psi"`
	MaxPSI           float64            `json:"max_psi"`
	Feedback         uint64             `json:"feedback"`
	Time             time.Time          `json:"time"`
}

func (d *driftRecord) proto() *pb.DriftReport {
	if d == nil {
		return nil
	}
	return &pb.DriftReport{BaselineJob: d.BaselineJob, PipelineHash: d.PipelineHash, BaselineExamples: d.BaselineExamples,
		Examples: d.Examples, Psi: maps.Clone(d.PSI), MaxPsi: d.MaxPSI, Feedback: d.Feedback, UnixMillis: d.Time.UnixMilli()}
}

// maxFeature names the feature with the largest PSI.
func (d *driftRecord) maxFeature() string {
	best := ""
	for _, k := range slices.Sorted(maps.Keys(d.PSI)) {
		if best == "" || d.PSI[k] > d.PSI[best] {
			best = k
		}
	}
	return best
}

// checkDrift bounds a site's report: it is stored and shown to admins.
func checkDrift(d *pb.DriftReport) (*driftRecord, error) {
	if len(d.Psi) > maxDriftFeatures {
		return nil, fmt.Errorf("%d features: at most %d", len(d.Psi), maxDriftFeatures)
	}
	r := &driftRecord{BaselineJob: bound(d.BaselineJob, 64), PipelineHash: bound(d.PipelineHash, 128),
		BaselineExamples: d.BaselineExamples, Examples: d.Examples, PSI: map[string]float64{}, Feedback: d.Feedback}
	for k, v := range d.Psi {
		if k == "" || len(k) > maxFeatureName || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return nil, fmt.Errorf("feature %s: PSI %v", q(bound(k, maxFeatureName)), v)
		}
		r.PSI[k] = v
		r.MaxPSI = max(r.MaxPSI, v)
	}
	return r, nil
}

// driftReported records a site's drift report, then checks the
// retraining triggers.
func (c *Coordinator) driftReported(site string, d *pb.DriftReport) {
	r, err := checkDrift(d)
	c.mu.Lock()
	if err != nil {
		c.mu.Unlock()
		c.bus.emit(Event{Kind: EvSiteDrift, Actor: "site:" + site, Site: site, Detail: fmt.Sprintf("drift report from %s refused: %v", site, err)})
		return
	}
	r.Time = c.now().UTC()
	rec := c.siteLocked(site)
	rec.Drift = r
	c.saveSiteLocked(rec)
	c.mu.Unlock()
	c.bus.emit(Event{Kind: EvSiteDrift, Actor: "site:" + site, Site: site,
		Detail: fmt.Sprintf("site %s drift: largest PSI %.3f (%s) over %d arriving images against job %s's data; %d feedback examples",
			site, r.MaxPSI, r.maxFeature(), r.Examples, r.BaselineJob, r.Feedback)})
	c.checkRetrain()
}

// retrainCandidate is a published version whose triggers fired.
type retrainCandidate struct {
	version string
	spec    *pb.JobSpec
	reason  string
	kind    string
}

// checkRetrain submits a retraining job for every published version whose
// triggers fired and that was not retrained yet. It takes c.mu itself.
func (c *Coordinator) checkRetrain() {
	c.retrainMu.Lock()
	defer c.retrainMu.Unlock()
	c.mu.Lock()
	var due []retrainCandidate
	retrained := map[string]bool{}
	latest := map[string]*job{}
	for _, id := range c.order {
		j := c.jobs[id]
		if j.rec.RetrainOf != "" {
			retrained[j.rec.RetrainOf] = true
		}
		if j.rec.ModelVersion != "" {
			latest[j.spec.Name] = j
		}
	}
	for _, name := range slices.Sorted(maps.Keys(latest)) {
		j := latest[name]
		if retrained[j.rec.ModelVersion] {
			continue
		}
		if kind, reason := c.retrainReasonLocked(j); reason != "" {
			spec := proto.Clone(j.spec).(*pb.JobSpec)
			spec.InitVersion = j.rec.ModelVersion
			due = append(due, retrainCandidate{version: j.rec.ModelVersion, spec: spec, reason: reason, kind: kind})
		}
	}
	c.mu.Unlock()
	for _, d := range due {
		wait := d.spec.GetRetrain().GetRequireApproval()
		nj, err := c.submitJob(d.spec, Identity{Role: "coordinator", Name: "retrain"}, func(rec *jobRecord) {
			rec.RetrainOf, rec.RetrainReason, rec.RetrainKind, rec.AwaitingApproval = d.version, d.reason, d.kind, wait
		})
		if err != nil {
			c.bus.emit(Event{Kind: EvRetrain, Actor: "coordinator", Detail: fmt.Sprintf("retraining of %s (%s) could not be submitted: %v", d.version, d.reason, err)})
			continue
		}
		how := "started"
		if wait {
			how = "waiting for an admin's approval (concordctl jobs approve " + nj.rec.ID + ")"
		}
		c.bus.emit(Event{Kind: EvRetrain, Actor: "coordinator", JobID: nj.rec.ID,
			Detail: fmt.Sprintf("retraining of %s triggered: %s; job %s %s", d.version, d.reason, nj.rec.ID, how)})
	}
}

// Retraining triggers.
const (
	retrainDrift    = "drift"
	retrainFeedback = "feedback"
	retrainSchedule = "schedule"
)

// retrainReasonLocked says which trigger of a published job's spec fired
// and why, or "".
func (c *Coordinator) retrainReasonLocked(j *job) (kind, reason string) {
	r := j.spec.GetRetrain()
	g := j.rec.Gate
	if r == nil || g == nil || g.Decided.IsZero() {
		return "", ""
	}
	members := slices.Sorted(maps.Keys(j.rec.Sites))
	var feedback uint64
	for _, s := range members {
		rec := c.sites[s]
		if rec == nil || rec.Drift == nil || rec.Drift.Time.Before(g.Decided) {
			continue
		}
		d := rec.Drift
		// A version that drift already retrained is not retrained again
		// for drift: its sites' data did not change by being trained on
		// again, so the same report would retrain it forever. New feedback
		// or the schedule still do.
		if r.DriftPsi > 0 && d.MaxPSI >= r.DriftPsi && j.rec.RetrainKind != retrainDrift {
			return retrainDrift, fmt.Sprintf("site %s reports drift: PSI %.3f on %s >= retrain.drift_psi %.3f", s, d.MaxPSI, d.maxFeature(), r.DriftPsi)
		}
		feedback += d.Feedback
	}
	if r.MinFeedback > 0 && feedback >= r.MinFeedback {
		return retrainFeedback, fmt.Sprintf("the sites hold %d feedback examples >= retrain.min_feedback %d", feedback, r.MinFeedback)
	}
	if every := time.Duration(r.EverySeconds * float64(time.Second)); every > 0 && !c.now().Before(g.Decided.Add(every)) {
		return retrainSchedule, fmt.Sprintf("scheduled: %s since %s was published", every, j.rec.ModelVersion)
	}
	return "", ""
}

// initialWeights loads a published version's weights for a job that
// starts from it; its layout must be the new job's.
func (c *Coordinator) initialWeights(version, layoutHash string, params int) ([]float32, error) {
	mvs, recs, err := c.models("")
	if err != nil {
		return nil, err
	}
	for _, mv := range mvs {
		if mv.Version != version {
			continue
		}
		switch {
		case mv.Status == registry.StatusRejected:
			return nil, fmt.Errorf("%s was rejected by its gates: start from a published version", version)
		case mv.LayoutHash != layoutHash || int(mv.Params) != params:
			return nil, fmt.Errorf("%s has another weight layout (%d parameters, layout %s; this job's model has %d, layout %s): the model sections must match",
				version, mv.Params, mv.LayoutHash, params, layoutHash)
		}
		raw, err := c.st.readBlob(recs[version].Blob)
		if err != nil {
			return nil, err
		}
		return learning.DecodeWeightsInto(nil, raw), nil
	}
	return nil, fmt.Errorf("no published version %s (`concordctl models list` shows them)", q(version))
}

// ApproveJob starts a job held for approval.
func (a *adminService) ApproveJob(ctx context.Context, req *pb.ApproveJobRequest) (*pb.Job, error) {
	id, err := a.caller(ctx)
	if err != nil {
		return nil, err
	}
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	j, err := a.job(req.JobId)
	if err != nil {
		return nil, err
	}
	if !j.rec.AwaitingApproval || j.m.Done() {
		return nil, status.Errorf(codes.FailedPrecondition, "job %s does not wait for approval (state %s)", j.rec.ID, jobProto(j).State)
	}
	j.rec.AwaitingApproval = false
	if err := c.saveJob(j, nil); err != nil {
		j.rec.AwaitingApproval = true
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	c.bus.emit(Event{Kind: EvJobApproved, Actor: id.String(), JobID: j.rec.ID,
		Detail: fmt.Sprintf("job %s (retraining of %s) approved by %s", j.rec.ID, j.rec.RetrainOf, id)})
	c.stepLocked(j, round.Event{Type: round.EvStart, Now: c.now(), Sites: c.connectedLocked()})
	return jobProto(j), nil
}
