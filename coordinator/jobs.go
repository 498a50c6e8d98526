package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/concord-fl/concord/aggregation"
	"github.com/concord-fl/concord/coordinator/round"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
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

func nonceKey(kind round.Kind, r int, site string) string {
	return fmt.Sprintf("%s/%d/%s", kind, r, site)
}

func modelBlob(jobID string, r int) string { return fmt.Sprintf("model/%s/%d", jobID, r) }

func uploadBlob(jobID string, kind round.Kind, r int, site string) string {
	return fmt.Sprintf("upload/%s/%s/%d/%s", jobID, kind, r, site)
}

func machineConfig(spec *pb.JobSpec) round.Config {
	return round.Config{
		Rounds:          int(spec.Rounds),
		MinSites:        int(spec.MinSites),
		RoundDeadline:   time.Duration(spec.RoundDeadlineSeconds * float64(time.Second)),
		StragglerCutoff: time.Duration(spec.StragglerCutoffSeconds * float64(time.Second)),
		Sites:           spec.Sites,
		Secure:          spec.GetPrivacy().GetSecureAggregation() == "mhe",
		Threshold:       int(spec.GetPrivacy().GetThreshold()),
	}
}

// submit validates a spec, creates the job with its initial model and starts it.
func (c *Coordinator) submit(spec *pb.JobSpec, by Identity) (*job, error) {
	jobspec.Defaults(spec)
	if err := jobspec.Validate(spec); err != nil {
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
	c.stepLocked(j, round.Event{Type: round.EvStart, Now: c.now(), Sites: c.connectedLocked()})
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
	c.runCtx = ctx
}

func (c *Coordinator) tick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range c.order {
		if j := c.jobs[id]; !j.m.Done() {
			c.stepLocked(j, round.Event{Type: round.EvTick, Now: c.now()})
		}
	}
}

// stepLocked feeds one event to a job's machine, persists the new state,
// then executes the actions. Callers hold c.mu.
func (c *Coordinator) stepLocked(j *job, ev round.Event) {
	acts := j.m.Step(ev)
	if len(acts) == 0 && ev.Type == round.EvTick {
		return
	}
	j.rec.State = j.m.State()
	if err := c.saveJob(j, nil); err != nil {
		c.log.Error("persist job state", "job", j.rec.ID, "err", err)
		return
	}
	c.execute(j, acts)
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
			for _, s := range c.sessions {
				s.send(&pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Cancel{Cancel: &pb.Cancel{JobId: j.rec.ID, Reason: a.Reason}}})
			}
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

var kindToTask = map[round.Kind]pb.TaskKind{
	round.KindKeyShare:     pb.TaskKind_TASK_KIND_KEY_SETUP,
	round.KindShamirShares: pb.TaskKind_TASK_KIND_KEY_SHARES,
	round.KindUpdate:       pb.TaskKind_TASK_KIND_TRAIN,
	round.KindDecryption:   pb.TaskKind_TASK_KIND_DECRYPT,
}

var uploadToKind = map[pb.UploadKind]round.Kind{
	pb.UploadKind_UPLOAD_KIND_UPDATE:           round.KindUpdate,
	pb.UploadKind_UPLOAD_KIND_ENCRYPTED_UPDATE: round.KindUpdate,
	pb.UploadKind_UPLOAD_KIND_KEY_SHARE:        round.KindKeyShare,
	pb.UploadKind_UPLOAD_KIND_SHAMIR_SHARES:    round.KindShamirShares,
	pb.UploadKind_UPLOAD_KIND_DECRYPTION_SHARE: round.KindDecryption,
}

func taskKindName(k pb.TaskKind) string {
	switch k {
	case pb.TaskKind_TASK_KIND_KEY_SETUP:
		return "key setup"
	case pb.TaskKind_TASK_KIND_KEY_SHARES:
		return "key shares"
	case pb.TaskKind_TASK_KIND_TRAIN:
		return "training"
	case pb.TaskKind_TASK_KIND_DECRYPT:
		return "decryption"
	}
	return k.String()
}

// taskNonceKey distinguishes decryption attempts: shares computed for an
// earlier active set must not be accepted for a later one.
func taskNonceKey(kind round.Kind, r, attempt int, site string) string {
	if kind == round.KindDecryption {
		return fmt.Sprintf("%s/%d.%d/%s", kind, r, attempt, site)
	}
	return nonceKey(kind, r, site)
}

func (c *Coordinator) buildTaskLocked(j *job, a round.Action) (*pb.Task, error) {
	key := taskNonceKey(a.Kind, a.Round, a.Attempt, a.Site)
	nonceHex, ok := j.rec.Nonces[key]
	if !ok {
		var n [16]byte
		if _, err := rand.Read(n[:]); err != nil {
			return nil, err
		}
		nonceHex = hex.EncodeToString(n[:])
		j.rec.Nonces[key] = nonceHex
	}
	nonce, _ := hex.DecodeString(nonceHex)
	t := &pb.Task{
		TaskId:      j.rec.ID + "/" + key,
		Kind:        kindToTask[a.Kind],
		JobId:       j.rec.ID,
		Round:       uint32(a.Round),
		Spec:        j.spec,
		Nonce:       nonce,
		InputParams: uint64(j.rec.Params),
		LayoutHash:  j.rec.LayoutHash,
	}
	if a.Kind == round.KindUpdate {
		t.InputBlob = modelBlob(j.rec.ID, a.Round-1)
	}
	if j.rec.Secure != nil {
		if err := c.secureTaskFields(j, a, t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// uploadRecord tracks one chunked upload. It is written in the same
// transaction as each chunk, before the chunk is acknowledged.
type uploadRecord struct {
	Site        string             `json:"site"`
	Kind        round.Kind         `json:"kind"`
	Round       int                `json:"round"`
	Nonce       string             `json:"nonce"`
	TotalChunks int                `json:"total_chunks"`
	TotalBytes  int64              `json:"total_bytes"`
	SHA256      string             `json:"sha256"`
	HashState   []byte             `json:"hash_state"`
	Received    int                `json:"received"`
	Bytes       int64              `json:"bytes"`
	Complete    bool               `json:"complete"`
	Samples     uint64             `json:"samples"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
	Recipients  []string           `json:"recipients,omitempty"`
}

func (c *Coordinator) uploadRecord(name string) (*uploadRecord, error) {
	rec := &uploadRecord{}
	err := c.st.db.View(func(tx *bolt.Tx) error { return getJSON(tx, bUploads, name, rec) })
	return rec, err
}

// aggResult is a finished round aggregation, ready to commit.
type aggResult struct {
	global   []float32
	optState []byte
	samples  uint64
	metrics  map[string]float64
}

func (c *Coordinator) startAggregation(ctx context.Context, j *job, r int, contributors []string) {
	if j.busy {
		return
	}
	if ctx == nil {
		ctx = context.Background()
	}
	j.busy = true
	rec := *j.rec
	spec := j.spec
	decryptors := j.m.State().Members
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		started := time.Now()
		res, err := c.aggregate(ctx, &rec, spec, r, contributors, decryptors)
		c.mu.Lock()
		defer c.mu.Unlock()
		j.busy = false
		if ctx.Err() != nil {
			return // resumed after restart
		}
		if err != nil {
			c.log.Error("aggregation failed", "job", rec.ID, "round", r, "err", err)
			c.stepLocked(j, round.Event{Type: round.EvFailed, Now: c.now(), Reason: fmt.Sprintf("round %d aggregation failed: %v", r, err)})
			return
		}
		c.finishRoundLocked(j, r, contributors, res, time.Since(started))
	}()
}

// aggregate computes the next global model of round r. Updates are read
// back from the store one chunk at a time in site order, so memory holds
// the running sum, never N updates, and the result does not depend on the
// order in which updates arrived.
func (c *Coordinator) aggregate(ctx context.Context, rec *jobRecord, spec *pb.JobSpec, r int, contributors, decryptors []string) (aggResult, error) {
	raw, err := c.st.readBlob(modelBlob(rec.ID, r-1))
	if err != nil {
		return aggResult{}, fmt.Errorf("read global model: %w", err)
	}
	global := learning.DecodeWeightsInto(nil, raw)
	acfg := jobspec.AggregationConfig(spec)
	var meanDelta []float32
	res := aggResult{metrics: map[string]float64{}}
	weights := map[string]float64{}
	var uploadBytes int64
	for _, site := range contributors {
		up, err := c.uploadRecord(uploadBlob(rec.ID, round.KindUpdate, r, site))
		if err != nil {
			return aggResult{}, err
		}
		res.samples += up.Samples
		uploadBytes += up.TotalBytes
		weights[site] = float64(up.Samples)
		for k, v := range up.Metrics {
			res.metrics[k] += v * float64(up.Samples)
		}
	}
	for k := range res.metrics {
		res.metrics[k] /= float64(max(res.samples, 1))
	}
	res.metrics["upload_bytes_per_param"] = float64(uploadBytes) / float64(len(contributors)) / float64(rec.Params)
	switch {
	case rec.Secure != nil:
		meanDelta, err = c.secureMean(ctx, rec, r, decryptors)
	case acfg.Robust():
		var all [][]float32
		for _, site := range contributors {
			data, err := c.st.readBlob(uploadBlob(rec.ID, round.KindUpdate, r, site))
			if err != nil {
				return aggResult{}, err
			}
			all = append(all, learning.DecodeWeightsInto(nil, data))
		}
		meanDelta, err = acfg.RobustMean(all)
	default:
		sum := aggregation.NewWeightedSum(len(global))
		scratch := make([]float32, ChunkSize/4)
		for _, site := range contributors {
			w := weights[site]
			off := 0
			err = c.st.eachChunk(uploadBlob(rec.ID, round.KindUpdate, r, site), 0, func(_ int, data []byte) error {
				vals := learning.DecodeWeightsInto(scratch, data)
				if err := sum.AddChunk(off, vals, w); err != nil {
					return fmt.Errorf("site %s: %w", site, err)
				}
				off += len(vals)
				return ctx.Err()
			})
			if err != nil {
				return aggResult{}, err
			}
			if err := sum.AddWeight(w); err != nil {
				return aggResult{}, err
			}
		}
		meanDelta, err = sum.Mean()
	}
	if err != nil {
		return aggResult{}, err
	}
	if len(meanDelta) != len(global) {
		return aggResult{}, fmt.Errorf("aggregate has %d values, model has %d", len(meanDelta), len(global))
	}
	clientMean := make([]float32, len(global))
	for i := range global {
		clientMean[i] = global[i] + meanDelta[i]
	}
	opt, err := aggregation.New(acfg)
	if err != nil {
		return aggResult{}, err
	}
	if len(rec.OptState) > 0 {
		if err := opt.UnmarshalState(rec.OptState); err != nil {
			return aggResult{}, fmt.Errorf("restore server optimiser: %w", err)
		}
	}
	if res.global, err = opt.Step(global, clientMean); err != nil {
		return aggResult{}, err
	}
	res.optState, err = opt.MarshalState()
	return res, err
}

// finishRoundLocked commits a round: the new global model, the optimiser
// state, the summary and the machine's move to the next round, atomically;
// then it drops the round's uploads.
func (c *Coordinator) finishRoundLocked(j *job, r int, contributors []string, res aggResult, took time.Duration) {
	st := j.m.State()
	participants, started := st.Participants, st.RoundStart
	res.metrics["aggregation_seconds"] = took.Seconds()
	if !started.IsZero() {
		took = c.now().Sub(started)
	}
	acts := j.m.Step(round.Event{Type: round.EvAggregated, Now: c.now(), Round: r})
	j.rec.State = j.m.State()
	j.rec.OptState = res.optState
	j.rec.Rounds = append(j.rec.Rounds, roundSummary{Round: r, Participants: participants, Contributors: contributors,
		Samples: res.samples, Metrics: res.metrics, Started: started, Seconds: took.Seconds(), Model: modelBlob(j.rec.ID, r)})
	err := c.saveJob(j, func(tx *bolt.Tx) error {
		if _, err := putBlob(tx, modelBlob(j.rec.ID, r), learning.EncodeWeights(res.global)); err != nil {
			return err
		}
		return c.dropRoundUploads(tx, j.rec.ID, r)
	})
	if err != nil {
		c.log.Error("commit round", "job", j.rec.ID, "round", r, "err", err)
		return
	}
	c.bus.emit(Event{Kind: EvRoundAggregate, Actor: "coordinator", JobID: j.rec.ID, Round: r,
		Detail: fmt.Sprintf("round %d aggregated: %d sites, %d samples, %s", r, len(contributors), res.samples, formatMetrics(res.metrics))})
	c.execute(j, acts)
}

// dropRoundUploads deletes a finished round's uploads. Key material
// uploads (round 0) stay for the job's life.
func (c *Coordinator) dropRoundUploads(tx *bolt.Tx, jobID string, r int) error {
	prefix := fmt.Sprintf("upload/%s/", jobID)
	var names []string
	cur := tx.Bucket(bUploads).Cursor()
	for k, v := cur.Seek([]byte(prefix)); k != nil && len(k) >= len(prefix) && string(k[:len(prefix)]) == prefix; k, v = cur.Next() {
		var up uploadRecord
		if err := json.Unmarshal(v, &up); err != nil {
			return err
		}
		if up.Round == r && (up.Kind == round.KindUpdate || up.Kind == round.KindDecryption) {
			names = append(names, string(k))
		}
	}
	for _, n := range names {
		if err := deleteBlob(tx, n); err != nil {
			return err
		}
		if err := tx.Bucket(bUploads).Delete([]byte(n)); err != nil {
			return err
		}
	}
	return nil
}

func formatMetrics(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf("%s=%.4f ", k, m[k])
	}
	return s
}

// modelRecord is a published model version.
type modelRecord struct {
	Info []byte `json:"info"` // proto-encoded pb.ModelVersion
	Blob string `json:"blob"`
}

// publishLocked registers the job's final model as a new model version.
func (c *Coordinator) publishLocked(j *job) {
	if j.rec.ModelVersion != "" || len(j.rec.Rounds) == 0 {
		return
	}
	last := j.rec.Rounds[len(j.rec.Rounds)-1]
	info, err := c.st.blobInfo(last.Model)
	if err != nil {
		c.log.Error("publish model", "job", j.rec.ID, "err", err)
		return
	}
	err = c.saveJob(j, func(tx *bolt.Tx) error {
		n, err := nextSeq(tx, "model")
		if err != nil {
			return err
		}
		version := "v" + strconv.FormatUint(n, 10)
		mv := &pb.ModelVersion{Version: version, JobId: j.rec.ID, Round: uint32(last.Round), Params: uint64(j.rec.Params),
			LayoutHash: j.rec.LayoutHash, Sha256: info.SHA256, CreatedUnix: c.now().Unix(), Metrics: last.Metrics,
			Lineage: lineage(j)}
		data, err := proto.Marshal(mv)
		if err != nil {
			return err
		}
		j.rec.ModelVersion = version
		return putJSON(tx, bModels, modelKey(n), modelRecord{Info: data, Blob: last.Model})
	})
	if err != nil {
		j.rec.ModelVersion = ""
		c.log.Error("publish model", "job", j.rec.ID, "err", err)
		return
	}
	c.bus.emit(Event{Kind: EvJobCompleted, Actor: "coordinator", JobID: j.rec.ID, Round: last.Round,
		Detail: fmt.Sprintf("job completed after %d rounds", last.Round)})
	c.bus.emit(Event{Kind: EvModelPublished, Actor: "coordinator", JobID: j.rec.ID, Round: last.Round,
		Detail: fmt.Sprintf("model %s published (sha256 %s)", j.rec.ModelVersion, info.SHA256)})
}

// modelKey sorts versions numerically in the bucket.
func modelKey(n uint64) string { return fmt.Sprintf("%012d", n) }

// lineage records what produced a model: the job spec (pipeline included),
// the weight layout and the code version.
func lineage(j *job) string {
	return fmt.Sprintf("job=%s spec-sha256=%s layout=%s coordinator=%s", j.rec.ID, shortHash(j.rec.Spec), j.rec.LayoutHash, Version)
}
