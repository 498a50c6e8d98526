package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/concord-fl/concord/aggregation"
	"github.com/concord-fl/concord/coordinator/round"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// aggResult is a finished round aggregation, ready to commit.
type aggResult struct {
	global   []float32
	optState []byte
	samples  uint64
	metrics  map[string]float64
	nextClip float64 // site-level adaptive clipping: the next round's clip
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
	if siteLevel(spec) && len(contributors) < int(spec.GetMinSites()) {
		// The sites' noise shares add up to the charged noise only from
		// min_sites contributions on.
		return aggResult{}, fmt.Errorf("site-level DP: %d contributions, the noise needs at least min_sites %d", len(contributors), spec.GetMinSites())
	}
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
		if siteLevel(spec) {
			weights[site] = 1 // the unweighted mean: the sum's sensitivity is C only if each site counts once
		}
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
		var total float64
		meanDelta, total, err = c.secureMean(ctx, rec, r, decryptors)
		if err == nil && siteLevel(spec) {
			err = checkSiteWeight(total, len(contributors))
		}
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
		sum := aggregation.NewWeightedSum(updateValues(spec, len(global)))
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
	if adaptiveClip(spec) && len(meanDelta) == len(global)+1 {
		clip := rec.UpdateClip
		if clip == 0 {
			clip = spec.GetPrivacy().GetUpdateClip()
		}
		meanDelta, res.nextClip = adaptClip(spec, clip, meanDelta, len(contributors), res.metrics)
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
	prevOpt, prevRounds, prevClip := j.rec.OptState, len(j.rec.Rounds), j.rec.UpdateClip
	prevValidating := maps.Clone(j.rec.Validating)
	weights := learning.EncodeWeights(res.global)
	sum := sha256.Sum256(weights)
	validate, err := c.planValidationLocked(j, r, hex.EncodeToString(sum[:]))
	var locals []localModel
	if err == nil {
		var more []*validationTask
		locals, more, err = c.planLocalModelsLocked(j, r, contributors)
		validate = append(validate, more...)
	}
	prevPooled := j.rec.Pooled
	if err == nil {
		c.planPoolLocked(j, r, validate)
	}
	if err != nil {
		c.log.Error("plan validation tasks; the round will be aggregated again", "job", j.rec.ID, "round", r, "err", err)
		j.rec.Validating = prevValidating
		return
	}
	acts := j.m.Step(round.Event{Type: round.EvAggregated, Now: c.now(), Round: r})
	j.rec.State = j.m.State()
	j.rec.OptState = res.optState
	if res.nextClip > 0 {
		j.rec.UpdateClip = res.nextClip
	}
	j.rec.Rounds = append(j.rec.Rounds, roundSummary{Round: r, Participants: participants, Contributors: contributors,
		Samples: res.samples, Metrics: res.metrics, Started: started, Seconds: took.Seconds(), Model: modelBlob(j.rec.ID, r)})
	err = c.saveJob(j, func(tx *bolt.Tx) error {
		if _, err := putBlob(tx, modelBlob(j.rec.ID, r), weights); err != nil {
			return err
		}
		for _, lm := range locals {
			if _, err := putBlob(tx, lm.blob, lm.data); err != nil {
				return err
			}
		}
		return c.dropRoundUploads(tx, j.rec.ID, r)
	})
	if err == nil {
		c.pruneNoncesLocked(j, r)
	}
	if err != nil {
		// Put memory back as the database has it; the next tick aggregates
		// the round again.
		c.log.Error("commit round; it will be aggregated again", "job", j.rec.ID, "round", r, "err", err)
		j.m, _ = round.Restore(machineConfig(j.spec), st)
		j.rec.State, j.rec.OptState, j.rec.Rounds, j.rec.UpdateClip = st, prevOpt, j.rec.Rounds[:prevRounds], prevClip
		j.rec.Validating, j.rec.Pooled = prevValidating, prevPooled
		return
	}
	c.bus.emit(Event{Kind: EvRoundAggregate, Actor: "coordinator", JobID: j.rec.ID, Round: r,
		Detail: fmt.Sprintf("round %d aggregated: %d sites, %d samples, %s", r, len(contributors), res.samples, formatMetrics(res.metrics))})
	c.sendValidationLocked(j, validate)
	c.execute(j, acts)
}

// dropRoundUploads deletes a finished round's uploads. Key material
// uploads (round 0) stay for the job's life.
func (c *Coordinator) dropRoundUploads(tx *bolt.Tx, jobID string, r int) error {
	return dropUploads(tx, jobID, func(up uploadRecord) bool {
		return up.Round == r && (up.Kind == round.KindUpdate || up.Kind == round.KindDecryption)
	})
}

// dropUploads deletes a job's uploads that match, records and chunks.
func dropUploads(tx *bolt.Tx, jobID string, match func(uploadRecord) bool) error {
	prefix := fmt.Sprintf("upload/%s/", jobID)
	var names []string
	cur := tx.Bucket(bUploads).Cursor()
	for k, v := cur.Seek([]byte(prefix)); k != nil && len(k) >= len(prefix) && string(k[:len(prefix)]) == prefix; k, v = cur.Next() {
		var up uploadRecord
		if err := json.Unmarshal(v, &up); err != nil {
			return err
		}
		if match(up) {
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

// pruneNoncesLocked forgets the task nonces of rounds up to r (updates and
// decryption shares): uploads for a closed round are refused anyway, and
// the job record would otherwise grow with every round and site. Key
// setup nonces (round 0) stay. The record is written with the next step.
func (c *Coordinator) pruneNoncesLocked(j *job, r int) {
	for k := range j.rec.Nonces {
		kind, rest, _ := strings.Cut(k, "/")
		roundStr, _, _ := strings.Cut(rest, "/")
		roundStr, _, _ = strings.Cut(roundStr, ".")
		n, err := strconv.Atoi(roundStr)
		if err == nil && n >= 1 && n <= r && (round.Kind(kind) == round.KindUpdate || round.Kind(kind) == round.KindDecryption) {
			delete(j.rec.Nonces, k)
		}
	}
}
