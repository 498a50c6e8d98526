package coordinator

import (
	"cmp"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/concord-fl/concord/coordinator/registry"
	"github.com/concord-fl/concord/coordinator/round"
	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/evaluation/receipt"
	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/privacy/audit"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Validation. The sites a job names in validation_sites never train (the
// round machine excludes them); after each round the coordinator sends
// each of them a VALIDATE task for the new aggregate, and the site answers
// with a receipt signed by its certificate's key: metrics with intervals
// and confusion counts, never predictions or data. Only receipts that
// verify against the site's certificate and name exactly the task's job,
// round, model and model digest count. The final round's receipts feed the
// promotion gates (gate.go).
//
// A validation site that is slower than the federation does not hold it
// back: a newer round's task supersedes an older round's unanswered one,
// except the final round's, which the gate waits for (up to
// validation.receipt_deadline_seconds).
//
// Under secure aggregation the validation sites are also key holders that
// never train, and the final round's tasks ask them for their
// per-subgroup confusion counts encrypted under the job's key; only the
// sum over sites is decrypted (pooled.go), and the gate waits for it too.

// maxValidationReceipt bounds a receipt on the task stream.
const maxValidationReceipt = 1 << 20

// validationTask is a VALIDATE task sent and not yet answered.
type validationTask struct {
	Site   string `json:"site"`
	Round  int    `json:"round"`
	Role   string `json:"role"`
	Blob   string `json:"blob"`
	SHA256 string `json:"sha256"`
	Nonce  string `json:"nonce"`
}

// validationSummary is an accepted receipt's figures (the receipt itself
// is kept in bValidation), or a site's reason for not validating.
type validationSummary struct {
	Site      string                         `json:"site"`
	Round     int                            `json:"round"`
	Role      string                         `json:"role"`
	Examples  int                            `json:"examples,omitempty"`
	Metrics   map[string]evaluation.Estimate `json:"metrics,omitempty"`
	Confusion map[string]int                 `json:"confusion,omitempty"`
	Failed    string                         `json:"failed,omitempty"`
}

// storedValidation is the bValidation record: the signed receipt and what
// it says.
type storedValidation struct {
	Receipt    []byte                `json:"receipt"`
	Assessment evaluation.Assessment `json:"assessment"`
}

func validationKey(r int, role, site string) string {
	return fmt.Sprintf("validate/%d/%s/%s", r, role, site)
}

func validationRecordKey(jobID string, r int, role, site string) string {
	return fmt.Sprintf("%s/%06d/%s/%s", jobID, r, role, site)
}

// validatesRound says whether round r's aggregate is scored.
func validatesRound(spec *pb.JobSpec, r int) bool {
	if len(spec.ValidationSites) == 0 {
		return false
	}
	return !spec.GetValidation().GetFinalOnly() || r == int(spec.Rounds)
}

// planValidationLocked adds the VALIDATE tasks for round r's aggregate
// (model digest sha) to the job record; the caller persists the record
// and then sends them with sendValidationLocked. An unanswered task of an
// earlier, non-final round at the same site is superseded.
func (c *Coordinator) planValidationLocked(j *job, r int, sha string) ([]*validationTask, error) {
	if !validatesRound(j.spec, r) {
		return nil, nil
	}
	if j.rec.Validating == nil {
		j.rec.Validating = map[string]*validationTask{}
	}
	var out []*validationTask
	for _, site := range j.spec.ValidationSites {
		for k, vt := range j.rec.Validating {
			if vt.Site == site && vt.Role == registry.RoleGlobal && vt.Round < r && vt.Round != int(j.spec.Rounds) {
				delete(j.rec.Validating, k)
			}
		}
		nonce, err := newNonce()
		if err != nil {
			return nil, err
		}
		vt := &validationTask{Site: site, Round: r, Role: registry.RoleGlobal, Blob: modelBlob(j.rec.ID, r), SHA256: sha, Nonce: nonce}
		j.rec.Validating[validationKey(r, registry.RoleGlobal, site)] = vt
		out = append(out, vt)
	}
	return out, nil
}

func (c *Coordinator) validationTaskProto(j *job, vt *validationTask) *pb.Task {
	nonce, _ := hex.DecodeString(vt.Nonce)
	t := &pb.Task{TaskId: j.rec.ID + "/" + validationKey(vt.Round, vt.Role, vt.Site), Kind: pb.TaskKind_TASK_KIND_VALIDATE,
		JobId: j.rec.ID, Round: uint32(vt.Round), Spec: j.spec, Nonce: nonce, InputBlob: vt.Blob,
		InputParams: uint64(j.rec.Params), LayoutHash: j.rec.LayoutHash, ModelRole: vt.Role, ModelSha256: vt.SHA256}
	c.poolTaskFields(j, vt, t)
	return t
}

// sendValidationLocked sends persisted VALIDATE tasks to the sites that
// are connected; the others get them when they connect (resendValidationLocked).
func (c *Coordinator) sendValidationLocked(j *job, tasks []*validationTask) {
	for _, vt := range tasks {
		if j.rec.Sites == nil {
			j.rec.Sites = map[string]bool{}
		}
		j.rec.Sites[vt.Site] = true
		sess := c.sessions[vt.Site]
		if sess == nil {
			continue
		}
		sess.send(&pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: c.validationTaskProto(j, vt)}})
		c.bus.emit(Event{Kind: EvTaskSent, Actor: "coordinator", JobID: j.rec.ID, Round: vt.Round, Site: vt.Site,
			Detail: fmt.Sprintf("validation task sent to %s (%s model of round %d)", vt.Site, vt.Role, vt.Round)})
	}
}

// resendValidationLocked sends a reconnecting site its unanswered VALIDATE
// tasks.
func (c *Coordinator) resendValidationLocked(site string) {
	for _, id := range c.order {
		j := c.jobs[id]
		var tasks []*validationTask
		for _, vt := range j.rec.Validating {
			if vt.Site == site {
				tasks = append(tasks, vt)
			}
		}
		sort.Slice(tasks, func(a, b int) bool { return tasks[a].Round < tasks[b].Round })
		c.sendValidationLocked(j, tasks)
		c.resendPoolLocked(j, site)
	}
}

// validationReported accepts a site's answer to a VALIDATE task: the
// receipt must verify against the site's certificate key (pub) and state
// exactly what the task asked for.
func (c *Coordinator) validationReported(site string, pub crypto.PublicKey, rep *pb.ValidationReport) {
	c.mu.Lock()
	defer c.mu.Unlock()
	jobID, key, _ := strings.Cut(bound(rep.TaskId, 256), "/")
	j := c.jobs[jobID]
	var vt *validationTask
	if j != nil && jobID == rep.JobId {
		vt = j.rec.Validating[key]
	}
	reject := func(why string) {
		c.bus.emit(Event{Kind: EvValidationRejected, Actor: "site:" + site, JobID: bound(rep.JobId, 256), Round: int(rep.Round), Site: site,
			Detail: fmt.Sprintf("validation report from %s refused: %s", site, why)})
	}
	switch {
	case vt == nil && j != nil && answered(j, key, site):
		// An agent that reconnected, or ran a resent task again, repeats
		// an answer the coordinator already holds: nothing to record.
		c.log.Debug("validation report repeated", "job", j.rec.ID, "site", site, "task", key)
		return
	case vt == nil:
		reject(fmt.Sprintf("no unanswered validation task %s (superseded by a newer round, or never sent)", q(rep.TaskId)))
		return
	case vt.Site != site:
		reject("the task was sent to another site")
		return
	case hex.EncodeToString(rep.Nonce) != vt.Nonce:
		reject("the nonce is not the task's")
		return
	case len(rep.Receipt) > maxValidationReceipt:
		reject(fmt.Sprintf("a receipt of %d bytes; at most %d", len(rep.Receipt), maxValidationReceipt))
		return
	case pub == nil:
		reject("no client certificate to check the receipt against")
		return
	}
	r, err := receipt.Verify(rep.Receipt, pub)
	if err != nil {
		reject(bound(err.Error(), maxReasonBytes))
		return
	}
	var problems []string
	if r.Site != site {
		problems = append(problems, "names site "+q(r.Site))
	}
	if r.JobID != j.rec.ID || r.Round != vt.Round {
		problems = append(problems, fmt.Sprintf("is for job %s round %d", q(r.JobID), r.Round))
	}
	if r.ModelRole != vt.Role || r.ModelSHA256 != vt.SHA256 {
		problems = append(problems, "names another model")
	}
	if len(problems) > 0 {
		reject("the receipt " + strings.Join(problems, ", "))
		return
	}
	sum := validationSummary{Site: site, Round: vt.Round, Role: vt.Role, Examples: r.Assessment.Examples,
		Metrics: r.Assessment.Metrics, Confusion: r.Assessment.Confusion}
	prev := j.rec.Validated
	j.rec.Validated = append(slices.Clone(prev), sum)
	delete(j.rec.Validating, key)
	err = c.saveJob(j, func(tx *bolt.Tx) error {
		return putJSON(tx, bValidation, validationRecordKey(j.rec.ID, vt.Round, vt.Role, site),
			storedValidation{Receipt: rep.Receipt, Assessment: r.Assessment})
	})
	if err != nil {
		j.rec.Validated = prev
		j.rec.Validating[key] = vt
		c.log.Error("persist validation receipt; the site will be asked again", "job", j.rec.ID, "site", site, "err", err)
		return
	}
	c.bus.emit(Event{Kind: EvValidation, Actor: "site:" + site, JobID: j.rec.ID, Round: vt.Round, Site: site,
		Detail: fmt.Sprintf("site %s validated the %s model of round %d on %d examples: %s", site, vt.Role, vt.Round,
			r.Assessment.Examples, formatEstimates(r.Assessment.Metrics)),
		Data: []audit.DataField{{Name: "validation-receipt", Size: uint64(len(rep.Receipt)), SHA256: sha256.Sum256(rep.Receipt)}}})
	if j.m.Done() {
		c.publishLocked(j)
	}
}

// validationFailedLocked records a site's reason for not answering a
// VALIDATE task; a failed final-round task fails the gate with that reason.
func (c *Coordinator) validationFailedLocked(j *job, site, key, detail string) bool {
	vt := j.rec.Validating[key]
	if vt == nil || vt.Site != site {
		return false
	}
	delete(j.rec.Validating, key)
	j.rec.Validated = append(j.rec.Validated, validationSummary{Site: site, Round: vt.Round, Role: vt.Role, Failed: detail})
	f := siteFailure{Site: site, JobID: j.rec.ID, Round: vt.Round, Task: "validate", Reason: detail, Time: c.now().UTC()}
	j.rec.Failures = append(j.rec.Failures, f)
	if n := len(j.rec.Failures); n > maxFailures {
		j.rec.Failures = slices.Delete(j.rec.Failures, 0, n-maxFailures)
	}
	rec := c.siteLocked(site)
	rec.LastFailure = &f
	c.saveSiteLocked(rec)
	if err := c.saveJob(j, nil); err != nil {
		c.log.Error("persist validation failure", "job", j.rec.ID, "site", site, "err", err)
	}
	c.bus.emit(Event{Kind: EvTaskFailed, Actor: "site:" + site, JobID: j.rec.ID, Round: vt.Round, Site: site,
		Detail: fmt.Sprintf("validation task failed at %s: %s", site, detail)})
	if j.m.Done() {
		c.publishLocked(j)
	}
	return true
}

// finalValidations returns the final round's results for the global model
// by validation site, and whether every validation site has answered
// (with a receipt or a failure).
func finalValidations(j *job) (map[string]validationSummary, bool) {
	last := int(j.spec.Rounds)
	if n := len(j.rec.Rounds); n > 0 {
		last = j.rec.Rounds[n-1].Round
	}
	got := map[string]validationSummary{}
	for _, v := range j.rec.Validated {
		if v.Round == last && v.Role == registry.RoleGlobal {
			got[v.Site] = v
		}
	}
	// The cross-site rows (local models) are waited for too, so the
	// matrix is complete when the job ends.
	for _, vt := range j.rec.Validating {
		if vt.Round == last {
			return got, false
		}
	}
	return got, len(got) == len(j.spec.ValidationSites)
}

// loadValidation reads an accepted receipt back.
func (c *Coordinator) loadValidation(jobID string, r int, role, site string) (storedValidation, error) {
	var sv storedValidation
	err := c.st.db.View(func(tx *bolt.Tx) error {
		return getJSON(tx, bValidation, validationRecordKey(jobID, r, role, site), &sv)
	})
	return sv, err
}

func (s validationSummary) proto() *pb.SiteValidation {
	v := &pb.SiteValidation{Site: s.Site, ModelRole: s.Role, Round: uint32(s.Round), Examples: uint64(s.Examples),
		Metrics: map[string]float64{}, Lower: map[string]float64{}, Upper: map[string]float64{}, Confusion: map[string]uint64{}}
	for k, e := range s.Metrics {
		v.Metrics[k], v.Lower[k], v.Upper[k] = e.Value, e.Lower, e.Upper
	}
	for k, n := range s.Confusion {
		v.Confusion[k] = uint64(max(n, 0))
	}
	if s.Failed != "" {
		v.Metrics = nil
	}
	return v
}

// formatEstimates renders the headline metrics with their intervals.
func formatEstimates(m map[string]evaluation.Estimate) string {
	var parts []string
	for _, k := range []string{"auc", "sensitivity", "specificity", "f1", "dice"} {
		if e, ok := m[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.3f [%.3f, %.3f]", k, e.Value, e.Lower, e.Upper))
		}
	}
	if len(parts) == 0 {
		return "no metrics"
	}
	return strings.Join(parts, ", ")
}

// validationProtoLocked fills a job's validation results into its proto:
// per round and, for the final round, the cross-site matrix.
func validationProtoLocked(j *job, p *pb.Job) {
	byRound := map[int][]*pb.SiteValidation{}
	for _, v := range j.rec.Validated {
		if v.Role == registry.RoleGlobal && v.Failed == "" {
			byRound[v.Round] = append(byRound[v.Round], v.proto())
		}
	}
	for _, rs := range p.Rounds {
		rs.Validation = byRound[int(rs.Round)]
		slices.SortFunc(rs.Validation, func(a, b *pb.SiteValidation) int { return strings.Compare(a.Site, b.Site) })
	}
	if len(j.spec.ValidationSites) == 0 || len(j.rec.Rounds) == 0 {
		return
	}
	last := j.rec.Rounds[len(j.rec.Rounds)-1].Round
	m := &pb.CrossSiteMatrix{Sites: slices.Clone(j.spec.ValidationSites)}
	roles := map[string]bool{}
	for _, v := range j.rec.Validated {
		if v.Round == last && v.Failed == "" {
			m.Cells = append(m.Cells, v.proto())
			roles[v.Role] = true
		}
	}
	slices.SortFunc(m.Cells, func(a, b *pb.SiteValidation) int {
		return cmp.Or(strings.Compare(a.ModelRole, b.ModelRole), strings.Compare(a.Site, b.Site))
	})
	m.Models = append(m.Models, registry.RoleGlobal)
	for _, r := range slices.Sorted(maps.Keys(roles)) {
		if r != registry.RoleGlobal {
			m.Models = append(m.Models, r)
		}
	}
	m.Note = crossSiteNote(j.spec)
	p.CrossSite = m
	p.Pooled = j.rec.Pooled.proto()
	if g := j.rec.Gate; g != nil {
		p.Gate = &pb.GateDecision{State: g.State, Reasons: g.Reasons, Version: g.Version}
	}
}

// crossSiteNote says why rows of the matrix may be missing.
func crossSiteNote(spec *pb.JobSpec) string {
	if spec.GetPrivacy().GetSecureAggregation() != "none" {
		return "under secure aggregation no site's local model ever leaves it unencrypted, so only the global model is scored across sites"
	}
	return ""
}

// parseValidationKey splits "validate/ROUND/ROLE/SITE".
func parseValidationKey(key string) (r int, role, site string, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 4 || parts[0] != "validate" {
		return 0, "", "", false
	}
	n, err := strconv.Atoi(parts[1])
	return n, parts[2], parts[3], err == nil
}

// localModel is a training site's last local model, kept for the
// cross-site matrix.
type localModel struct {
	blob string
	data []byte
}

func localBlob(jobID, site string) string { return fmt.Sprintf("local/%s/%s", jobID, site) }

// planLocalModelsLocked rebuilds each contributor's local model of the
// final round (the previous global model plus its plaintext update) when
// the job asks for the cross-site matrix, and adds VALIDATE tasks for them
// at every validation site. The caller stores the blobs with the round's
// commit.
func (c *Coordinator) planLocalModelsLocked(j *job, r int, contributors []string) ([]localModel, []*validationTask, error) {
	if !j.spec.GetValidation().GetScoreLocalModels() || j.rec.Secure != nil || r != int(j.spec.Rounds) {
		return nil, nil, nil
	}
	raw, err := c.st.readBlob(modelBlob(j.rec.ID, r-1))
	if err != nil {
		return nil, nil, err
	}
	global := learning.DecodeWeightsInto(nil, raw)
	var models []localModel
	var tasks []*validationTask
	delta := make([]float32, len(global))
	for _, site := range contributors {
		data, err := c.st.readBlob(uploadBlob(j.rec.ID, round.KindUpdate, r, site))
		if err != nil {
			return nil, nil, err
		}
		delta = learning.DecodeWeightsInto(delta[:0], data)
		if len(delta) != len(global) {
			return nil, nil, fmt.Errorf("site %s's update has %d values, the model %d", site, len(delta), len(global))
		}
		for i := range delta {
			delta[i] += global[i]
		}
		enc := learning.EncodeWeights(delta)
		sum := sha256.Sum256(enc)
		lm := localModel{blob: localBlob(j.rec.ID, site), data: enc}
		models = append(models, lm)
		for _, v := range j.spec.ValidationSites {
			nonce, err := newNonce()
			if err != nil {
				return nil, nil, err
			}
			vt := &validationTask{Site: v, Round: r, Role: "site:" + site, Blob: lm.blob, SHA256: hex.EncodeToString(sum[:]), Nonce: nonce}
			tasks = append(tasks, vt)
		}
	}
	if j.rec.Validating == nil {
		j.rec.Validating = map[string]*validationTask{}
	}
	for _, vt := range tasks {
		j.rec.Validating[validationKey(vt.Round, vt.Role, vt.Site)] = vt
	}
	return models, tasks, nil
}

// localModelReadable says whether site may download a local model blob:
// the site it came from, or a validation site of the job asked to score it.
func (c *Coordinator) localModelReadable(name, site string) bool {
	parts := strings.Split(name, "/")
	if len(parts) != 3 || parts[0] != "local" {
		return true // not a local model
	}
	if parts[2] == site {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	j := c.jobs[parts[1]]
	return j != nil && slices.Contains(j.spec.ValidationSites, site)
}

// answered says whether site already answered the VALIDATE task key.
func answered(j *job, key, site string) bool {
	r, role, s, ok := parseValidationKey(key)
	if !ok || s != site {
		return false
	}
	for _, v := range j.rec.Validated {
		if v.Round == r && v.Role == role && v.Site == site {
			return true
		}
	}
	return false
}
