package siteagent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/evaluation/receipt"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// A VALIDATE task scores a candidate model on the site's data and answers
// with a signed receipt of metrics: no prediction, score or per-example
// value leaves the site, and nothing is trained or uploaded. The receipt
// names the exact model (its SHA-256, checked here), the examples scored
// (the data manifest) and how they were prepared (the pipeline hash), so
// that the coordinator can hold the site to its statement.

// checkValidateTask refuses a VALIDATE task the agent cannot safely run.
func checkValidateTask(t *pb.Task) error {
	switch {
	case t.Spec.Model == nil:
		return errors.New("the job spec lacks its model section")
	case t.InputBlob == "":
		return errors.New("no model named to validate")
	case t.ModelRole == "" || len(t.ModelRole) > maxIDLen:
		return fmt.Errorf("model role of %d bytes (want 1 to %d)", len(t.ModelRole), maxIDLen)
	case !isSHA256Hex(t.ModelSha256):
		return errors.New("the task's model_sha256 is not 64 lower-case hex digits")
	}
	return nil
}

func isSHA256Hex(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size && hex.EncodeToString(b) == s
}

// refuseTrainingAtValidationSite is defence in depth: a site that a job
// names as a validation site holds data kept apart to judge the model,
// and must never train on it, whatever the coordinator asks.
func (a *Agent) refuseTrainingAtValidationSite(t *pb.Task) error {
	if site := a.siteName(); site != "" && slices.Contains(t.Spec.GetValidationSites(), site) {
		return permanentf("this site is a validation site of job %s: it never trains", t.JobId)
	}
	return nil
}

// validate runs a VALIDATE task: download the model, check it is the one
// named, score it on the site's data through the job's pipeline, sign the
// receipt and queue the report for the task stream.
func (a *Agent) validate(ctx context.Context, t *pb.Task) error {
	started := time.Now()
	if h := a.checkData(); h.problem != "" {
		return permanent(dataProblem(h.problem))
	}
	if err := customValidationRefuses(t); err != nil {
		return err
	}
	m, err := learning.New(jobspec.ModelSpec(t.Spec), t.Spec.Seed)
	if err != nil {
		return permanentf("the job's model cannot be built: %w", err)
	}
	if t.LayoutHash != "" && t.LayoutHash != m.Layout().Hash() {
		return permanentf("the model's layout %s is not the one the job's spec builds (%s): is this agent older than the coordinator?",
			bounded(t.LayoutHash, 16), m.Layout().Hash()[:16])
	}
	params := len(m.Weights())
	if t.InputParams != 0 && t.InputParams != uint64(params) {
		return permanentf("the task names a model of %d parameters, the job's spec builds %d", t.InputParams, params)
	}
	raw, err := a.download(ctx, t.InputBlob, int64(params)*4)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(raw)
	if got := hex.EncodeToString(sum[:]); got != t.ModelSha256 {
		return permanentf("the model downloaded for validation has SHA-256 %s…, the task names %s…: refusing to score a model other than the one named",
			got[:16], t.ModelSha256[:16])
	}
	if err := m.SetWeights(learning.DecodeWeightsInto(nil, raw)); err != nil {
		return permanentf("load the model to validate: %w", err)
	}
	data, err := a.cfg.Data.Dataset(ctx, t.Spec)
	if err != nil {
		return fmt.Errorf("load validation data: %w", err)
	}
	if data.N == 0 {
		return permanentf("no validation examples could be read for job %s: run `site-agent scan` on the data folder to see why", t.JobId)
	}
	as, err := assess(m, data, jobspec.AssessOptions(t.Spec))
	if err != nil {
		return err
	}
	key, err := a.receiptSigner()
	if err != nil {
		return permanent(err)
	}
	signed, err := receipt.Sign(receipt.Receipt{Site: a.siteName(), JobID: t.JobId, Round: int(t.Round), ModelRole: t.ModelRole,
		ModelSHA256: t.ModelSha256, DataManifest: DataManifest(data), PipelineHash: jobspec.PipelineConfig(t.Spec).Hash(),
		Assessment: as, Time: time.Now()}, key)
	if err != nil {
		return permanentf("sign the validation receipt: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err // the job was cancelled while scoring: send nothing
	}
	if t.PoolRound != 0 {
		if err := a.uploadPooled(ctx, t, m, data); linkDown(err) {
			return err // retried: the encrypted counts are kept and resent
		} else if err != nil {
			a.log.Warn("pooled subgroup counts not sent; the receipt is", "job", t.JobId, "round", t.Round, "err", a.detail(err))
		}
	}
	a.queueReport(&pb.ValidationReport{TaskId: t.TaskId, JobId: t.JobId, Round: t.Round, Nonce: bytes.Clone(t.Nonce), Receipt: signed})
	if t.ModelRole == "global" {
		// What the model was validated on is what arriving images are
		// compared with; the final model's scores too.
		var final []float32
		if t.Round == t.Spec.GetRounds() {
			final = m.Weights()
		}
		a.recordBaseline(t.JobId, t.Spec, data, final)
	}
	a.log.Info("validation done", "job", t.JobId, "round", t.Round, "model_role", bounded(t.ModelRole, maxIDLen),
		"examples", data.N, "seconds", time.Since(started).Seconds())
	return nil
}

// assess runs the model forward on every example and scores it: binary
// for two classes (the score is P(class 1)), multi-class above, Dice and
// IoU for a segmentation model.
func assess(m *learning.Model, data learning.Dataset, opt evaluation.AssessOptions) (evaluation.Assessment, error) {
	out, err := m.Predict(data)
	if err != nil {
		return evaluation.Assessment{}, permanentf("run the model on the site's data: %w", err)
	}
	for _, p := range out {
		if math.IsNaN(float64(p)) {
			return evaluation.Assessment{}, permanentf("the model gives NaN on the site's data: it cannot be scored")
		}
	}
	var as evaluation.Assessment
	switch spec := m.Spec(); {
	case m.Segments():
		px := data.H * data.W
		if len(data.Masks) != data.N*px {
			return evaluation.Assessment{}, permanentf("the site's data has no ground-truth masks to score a segmentation model against")
		}
		preds, truths := make([][]float32, data.N), make([][]float32, data.N)
		for i := range preds {
			preds[i], truths[i] = out[i*px:(i+1)*px], data.Masks[i*px:(i+1)*px]
		}
		as, err = evaluation.AssessSegmentation(preds, truths, 0.5, data.Groups, opt)
	case spec.Classes == 2:
		scores := make([]float64, data.N)
		for i := range scores {
			scores[i] = clamp01(out[2*i+1])
		}
		as, err = evaluation.AssessBinary(scores, data.Y, data.Groups, opt)
	default:
		k := spec.Classes
		probs := make([][]float64, data.N)
		for i := range probs {
			probs[i] = make([]float64, k)
			for c := range k {
				probs[i][c] = clamp01(out[i*k+c])
			}
		}
		as, err = evaluation.AssessMulticlass(probs, data.Y, data.Groups, opt)
	}
	if err != nil {
		return evaluation.Assessment{}, permanentf("score the model: %w", err)
	}
	return as, nil
}

// clamp01 absorbs float32 rounding at the ends of a probability.
func clamp01(p float32) float64 { return min(max(float64(p), 0), 1) }

// DataManifest identifies the exact examples a site scored, after the
// job's pipeline, without naming any: the SHA-256 of a version line, the
// tensor shape and count, and the sorted SHA-256s of each example's label,
// pixels (float32, little-endian) and mask. Sorting makes it independent
// of the order files were listed in; hashing the pipeline's output (not
// the files) makes it change whenever what the model saw changes.
func DataManifest(d learning.Dataset) string {
	px, mpx := d.C*d.H*d.W, 0
	if len(d.Masks) == d.N*d.H*d.W {
		mpx = d.H * d.W
	}
	per := make([][sha256.Size]byte, d.N)
	buf := make([]byte, 0, 4+4*(px+mpx))
	for i := range per {
		buf = buf[:0]
		label := 0
		if i < len(d.Y) {
			label = d.Y[i]
		}
		buf = binary.LittleEndian.AppendUint32(buf, uint32(label))
		for _, v := range d.X[i*px : (i+1)*px] {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		if mpx > 0 {
			for _, v := range d.Masks[i*mpx : (i+1)*mpx] {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			}
		}
		per[i] = sha256.Sum256(buf)
	}
	slices.SortFunc(per, func(a, b [sha256.Size]byte) int { return bytes.Compare(a[:], b[:]) })
	h := sha256.New()
	h.Write([]byte("concord validation data manifest v1\n"))
	for _, n := range []int{d.N, d.C, d.H, d.W} {
		h.Write(binary.LittleEndian.AppendUint32(nil, uint32(n)))
	}
	for _, p := range per {
		h.Write(p[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}
