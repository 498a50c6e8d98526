package coordinator

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/concord-fl/concord/coordinator/registry"
	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/privacy/audit"
	"github.com/concord-fl/concord/privacy/dp"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// The model registry. At the end of a job the final aggregate becomes a
// candidate; the promotion gates (registry.Decide) judge it on the final
// round's signed validation receipts, against the currently published
// version of the same job name. A candidate that passes is published as
// the next version vN; one that fails is kept as candidate-JOB, marked
// rejected with the reasons, and publishes nothing. Either way its
// manifest (lineage, hashes, receipts, decision) is signed with the
// coordinator's audit key, recorded in the audit log and written with the
// weights and the model card under <state dir>/registry/VERSION.

// defaultReceiptDeadline is how long the gate waits for the final model's
// validation receipts when the spec does not say.
const defaultReceiptDeadline = 10 * time.Minute

// Gate states of a job.
const (
	gatePending   = "pending"
	gateEvaluated = "evaluated" // a leave-one-site-out fold: scored, never published
)

// gateRecord is a job's promotion decision, or the wait for it.
type gateRecord struct {
	State    string    `json:"state"`
	Reasons  []string  `json:"reasons,omitempty"`
	Version  string    `json:"version,omitempty"`
	Deadline time.Time `json:"deadline,omitempty"`
	Decided  time.Time `json:"decided,omitempty"`
}

// modelRecord is a model version, published or rejected.
type modelRecord struct {
	Info []byte `json:"info"` // proto-encoded pb.ModelVersion
	Blob string `json:"blob"`
}

// modelKey sorts published versions numerically in the bucket; rejected
// candidates sort after them.
func modelKey(n uint64) string { return fmt.Sprintf("%012d", n) }

func candidateKey(jobID string) string { return "candidate/" + jobID }

// publishLocked decides a completed job's candidate: at once when the job
// names no validation sites, otherwise when every validation site has
// answered for the final model or the receipt deadline has passed. It is
// called on completion, on every receipt and on every tick until decided.
func (c *Coordinator) publishLocked(j *job) {
	if j.rec.ModelVersion != "" || len(j.rec.Rounds) == 0 || (j.rec.Gate != nil && j.rec.Gate.State != gatePending) {
		return
	}
	if len(j.spec.ValidationSites) > 0 {
		if j.rec.Gate == nil {
			wait := time.Duration(j.spec.GetValidation().GetReceiptDeadlineSeconds() * float64(time.Second))
			if wait <= 0 {
				wait = defaultReceiptDeadline
			}
			if !c.setGateLocked(j, &gateRecord{State: gatePending, Deadline: c.now().Add(wait).UTC()}, "persist gate wait") {
				return
			}
			c.bus.emit(Event{Kind: EvJobCompleted, Actor: "coordinator", JobID: j.rec.ID, Round: j.rec.Rounds[len(j.rec.Rounds)-1].Round,
				Detail: fmt.Sprintf("training completed after %d rounds; waiting up to %s for validation receipts from %v", len(j.rec.Rounds), wait, j.spec.ValidationSites)})
		}
		c.advancePoolLocked(j)
		if _, all := finalValidations(j); (!all || !poolSettled(j)) && c.now().Before(j.rec.Gate.Deadline) {
			return
		}
		if !poolSettled(j) {
			c.settlePoolLocked(j, poolUnavailable, fmt.Sprintf("not complete by the receipt deadline (%s: %s)", j.rec.Pooled.State, orNone(j.rec.Pooled.Reason)))
		}
	}
	if j.rec.FoldGroup != "" {
		c.evaluateFoldLocked(j)
		return
	}
	if j.rec.TuneGroup != "" && !j.rec.TuneFinal {
		c.evaluateTrialLocked(j)
		return
	}
	c.decideLocked(j)
}

// decideLocked applies the gates, signs the manifest and registers the
// version, in one transaction with the job's record.
func (c *Coordinator) decideLocked(j *job) {
	last := j.rec.Rounds[len(j.rec.Rounds)-1]
	info, err := c.st.blobInfo(last.Model)
	if err != nil {
		c.log.Error("publish model", "job", j.rec.ID, "err", err)
		return
	}
	results, reasons := c.finalResultsLocked(j)
	prev, _, err := c.publishedOf(j.spec.Name)
	if err != nil {
		c.log.Error("read the published version to compare against", "job", j.rec.ID, "err", err)
		return
	}
	gate := registry.Decide(j.spec.GetValidation(), j.spec.ValidationSites, results, prev)
	gate.Reasons = append(reasons, gate.Reasons...)
	if len(reasons) > 0 {
		gate.State = registry.StatusRejected
	}
	m := c.manifestLocked(j, info.SHA256, results, gate)
	switch {
	case j.spec.InitVersion != "":
		m.Parent = j.spec.InitVersion // the weights it started from
	case prev != nil:
		m.Parent = prev.Version // the version it would replace
	}
	oldGate := j.rec.Gate
	var mv *pb.ModelVersion
	err = c.saveJob(j, func(tx *bolt.Tx) error {
		key := candidateKey(j.rec.ID)
		if gate.State == registry.GatePassed {
			n, err := nextSeq(tx, "model")
			if err != nil {
				return err
			}
			m.Version, m.Status, key = "v"+strconv.FormatUint(n, 10), registry.StatusPublished, modelKey(n)
		} else {
			m.Version, m.Status = "candidate-"+j.rec.ID, registry.StatusRejected
		}
		signed, err := registry.Sign(m, c.cfg.AuditKey)
		if err != nil {
			return err
		}
		mv = &pb.ModelVersion{Version: m.Version, JobId: j.rec.ID, Round: uint32(last.Round), Params: uint64(j.rec.Params),
			LayoutHash: j.rec.LayoutHash, Sha256: info.SHA256, CreatedUnix: m.Created.Unix(), Metrics: last.Metrics,
			Parent: m.Parent, Lineage: lineage(j), Status: m.Status, GateReasons: gate.Reasons, DeviceUid: m.DeviceUID, Manifest: signed}
		for _, v := range j.rec.Validated {
			if v.Round == last.Round && v.Failed == "" {
				mv.Validation = append(mv.Validation, v.proto())
			}
		}
		data, err := proto.Marshal(mv)
		if err != nil {
			return err
		}
		j.rec.Gate = &gateRecord{State: gate.State, Reasons: gate.Reasons, Version: m.Version, Decided: m.Created}
		if m.Status == registry.StatusPublished {
			j.rec.ModelVersion = m.Version
		}
		return putJSON(tx, bModels, key, modelRecord{Info: data, Blob: last.Model})
	})
	if err != nil {
		j.rec.ModelVersion, j.rec.Gate = "", oldGate
		c.log.Error("register model version", "job", j.rec.ID, "err", err)
		return
	}
	if len(j.spec.ValidationSites) == 0 {
		c.bus.emit(Event{Kind: EvJobCompleted, Actor: "coordinator", JobID: j.rec.ID, Round: last.Round,
			Detail: fmt.Sprintf("job completed after %d rounds", last.Round)})
	}
	if m.Status == registry.StatusPublished {
		c.bus.emit(Event{Kind: EvModelPublished, Actor: "coordinator", JobID: j.rec.ID, Round: last.Round,
			Detail: fmt.Sprintf("model %s published (sha256 %s, device uid %s)", m.Version, info.SHA256, m.DeviceUID)})
	} else {
		c.bus.emit(Event{Kind: EvModelRejected, Actor: "coordinator", JobID: j.rec.ID, Round: last.Round,
			Detail: fmt.Sprintf("candidate %s rejected, nothing published: %v", m.Version, gate.Reasons)})
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		c.writeRegistryDir(mv, last.Model, j.rec.Layout)
	}()
}

// finalResultsLocked loads the final round's receipts for the global
// model; reasons names the validation sites that failed to validate.
func (c *Coordinator) finalResultsLocked(j *job) ([]registry.Validation, []string) {
	got, _ := finalValidations(j)
	var out []registry.Validation
	var reasons []string
	for _, site := range j.spec.ValidationSites {
		v, ok := got[site]
		switch {
		case !ok:
			continue // registry.Decide names sites without a receipt
		case v.Failed != "":
			reasons = append(reasons, fmt.Sprintf("site %s could not validate: %s", site, v.Failed))
			continue
		}
		sv, err := c.loadValidation(j.rec.ID, v.Round, v.Role, site)
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("site %s: its receipt could not be read back: %v", site, err))
			continue
		}
		out = append(out, registry.Validation{Site: site, ModelRole: v.Role, Round: v.Round, Receipt: sv.Receipt, Assessment: sv.Assessment})
	}
	return out, reasons
}

// publishedOf returns the newest published version of a job name.
func (c *Coordinator) publishedOf(name string) (*registry.Manifest, []byte, error) {
	mvs, _, err := c.models("")
	if err != nil {
		return nil, nil, err
	}
	t, err := c.registryTrust()
	if err != nil {
		return nil, nil, err
	}
	for i := len(mvs) - 1; i >= 0; i-- {
		mv := mvs[i]
		if mv.Status != registry.StatusPublished || len(mv.Manifest) == 0 {
			continue
		}
		m, err := registry.Open(mv.Manifest, t)
		if err != nil {
			return nil, nil, fmt.Errorf("version %s: %w", mv.Version, err)
		}
		if m.Name == name {
			return &m, mv.Manifest, nil
		}
	}
	return nil, nil, nil
}

// manifestLocked gathers a candidate's lineage.
func (c *Coordinator) manifestLocked(j *job, weightsSHA string, results []registry.Validation, gate registry.Gate) registry.Manifest {
	specJSON, _ := protojson.MarshalOptions{UseProtoNames: true}.Marshal(j.spec)
	specSum := sha256.Sum256(j.rec.Spec)
	m := registry.Manifest{Format: 1, Name: j.spec.Name, JobID: j.rec.ID, Purpose: j.spec.GetPurpose(), LegalBasis: j.spec.GetLegalBasis(),
		Created: c.now().UTC().Truncate(time.Second), Coordinator: Version, Params: j.rec.Params, LayoutHash: j.rec.LayoutHash,
		WeightsSHA256: weightsSHA, DeviceUID: registry.DeviceUID(weightsSHA), PipelineHash: pipelineHash(j.spec),
		SpecSHA256: hex.EncodeToString(specSum[:]), Spec: specJSON, ValidationSites: slices.Clone(j.spec.ValidationSites),
		Validation: results, Gate: gate, Records: map[string]uint64{}}
	trained := map[string]bool{}
	for _, r := range j.rec.Rounds {
		m.Rounds = append(m.Rounds, registry.Round{Round: r.Round, Contributors: r.Contributors, Samples: r.Samples})
		for _, s := range r.Contributors {
			trained[s] = true
		}
	}
	for s := range trained {
		m.TrainingSites = append(m.TrainingSites, s)
		if r := c.sites[s]; r != nil {
			m.Records[s] = r.Examples
			if r.Drift != nil && r.Drift.Feedback > 0 {
				if m.Feedback == nil {
					m.Feedback = map[string]uint64{}
				}
				m.Feedback[s] = r.Drift.Feedback
			}
		}
	}
	slices.Sort(m.TrainingSites)
	if p := j.spec.GetPrivacy(); p.GetLevel() != "" && p.GetLevel() != "none" {
		m.Privacy = &registry.Privacy{Level: p.GetLevel(), NoiseMultiplier: p.GetNoiseMultiplier(), Delta: p.GetDelta(),
			EpsilonBySite: c.epsilonBySite(j.rec.ID)}
	}
	sa := &registry.SecureAggregation{Scheme: "none"}
	if s := j.rec.Secure; s != nil {
		sa = &registry.SecureAggregation{Scheme: "mhe", Params: s.ParamSet, Threshold: s.heJob(j.rec.ID).Threshold, Parties: len(s.Points)}
	}
	m.SecureAggregation = sa
	if p := j.rec.Pooled; p != nil {
		m.Pooled = &registry.Pooled{State: p.State, Sites: slices.Clone(p.Contributors), Reason: p.Reason,
			Note: evaluation.PooledNote, Cells: slices.Clone(p.Cells)}
	}
	return m
}

func pipelineHash(spec *pb.JobSpec) string {
	pl := jobspec.PipelineConfig(spec)
	if err := pl.Validate(); err != nil {
		return ""
	}
	return pl.Hash()
}

// registryTrust trusts the coordinator's own key: what verifies the
// manifests it signed. It takes no lock.
func (c *Coordinator) registryTrust() (*audit.Trust, error) {
	return audit.NewTrust(c.bus.alog.Origin(), []string{c.cfg.AuditKey.Verifier()}, nil, nil, 0)
}

// epsilonBySite is the cumulative epsilon each site's receipts declare for
// a job.
func (c *Coordinator) epsilonBySite(jobID string) map[string]float64 {
	all, err := c.receipts(jobID)
	if err != nil {
		return nil
	}
	out := map[string]float64{}
	for _, data := range all {
		if rc, err := dp.ParseReceipt(data); err == nil {
			out[rc.Site] = max(out[rc.Site], rc.EpsilonSpent)
		}
	}
	return out
}

// writeRegistryDir exports a registered version's artefacts under the
// state directory. The store remains the record; a failed export is logged
// and `concordctl models download` rebuilds the same directory.
func (c *Coordinator) writeRegistryDir(mv *pb.ModelVersion, blob string, layout []byte) {
	weights, err := c.st.readBlob(blob)
	if err == nil {
		dir := filepath.Join(filepath.Dir(c.cfg.StatePath), "registry", mv.Version)
		err = registry.WriteDir(dir, mv.Manifest, weights, layout)
	}
	if err != nil {
		c.log.Error("write the registry directory", "version", mv.Version, "err", err)
	}
}

// lineage records what produced a model: the job spec (pipeline included),
// the weight layout and the code version.
func lineage(j *job) string {
	return fmt.Sprintf("job=%s spec-sha256=%s layout=%s coordinator=%s", j.rec.ID, shortHash(j.rec.Spec), j.rec.LayoutHash, Version)
}
