package siteagent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"time"

	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/privacy/dp"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// LocalTrainer trains with the learning package on this machine's CPU.
type LocalTrainer struct{}

// Train implements Trainer.
func (LocalTrainer) Train(ctx context.Context, req TrainRequest) (TrainResult, error) {
	spec := req.Spec
	m, err := learning.New(jobspec.ModelSpec(spec), spec.Seed)
	if err != nil {
		return TrainResult{}, err
	}
	if err := m.SetWeights(req.Global); err != nil {
		return TrainResult{}, fmt.Errorf("load global model: %w", err)
	}
	cfg := jobspec.TrainConfig(spec, req.Data.Y)
	cfg.Seed = req.Seed
	if req.DP != nil {
		req.DP.Apply(&cfg, dp.NewSecureSource(), dp.NewSecureSource())
	}
	if req.Progress != nil {
		cfg.Progress = func(p learning.TrainProgress) {
			if p.Samples > 0 {
				req.Progress(float64(p.Samples))
			}
		}
	}
	res, err := m.Train(ctx, req.Data, cfg)
	if err != nil {
		return TrainResult{}, err
	}
	out := TrainResult{Weights: m.Weights(), Samples: req.Data.N, Steps: res.Steps, Drawn: res.Samples}
	if req.DP == nil {
		// The loss is computed on the records; with DP it is outside the
		// accounting and stays here.
		out.Metrics = map[string]float64{"train_loss": res.FinalLoss}
	}
	return out, nil
}

// TrainsRecordDP implements RecordDPTrainer.
func (LocalTrainer) TrainsRecordDP() {}

// TrainingSeed derives a site's seed for a round from the job seed, so a
// rerun of the same job trains identically, site by site, round by round.
func TrainingSeed(jobSeed int64, round int, site string) int64 {
	h := fnv.New64a()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(jobSeed))
	binary.LittleEndian.PutUint64(b[8:], uint64(round))
	h.Write(b[:])
	h.Write([]byte(site))
	return int64(h.Sum64() >> 1)
}

func submissionKey(t *pb.Task) string {
	return fmt.Sprintf("%s/%s/%d", t.JobId, t.Kind, t.Round)
}

// train runs a TRAIN task: unless this round's update is already prepared
// (then it only resumes the upload), download the global model, train,
// clip, encrypt when the job is secure, record, upload.
func (a *Agent) train(ctx context.Context, t *pb.Task) error {
	key := submissionKey(t)
	sub, err := a.st.submission(key)
	if err != nil {
		return err
	}
	if sub != nil && string(sub.Nonce) != string(t.Nonce) {
		sub = nil // a different task (e.g. the job was resubmitted): recompute
	}
	secure := t.Spec.GetPrivacy().GetSecureAggregation() == "mhe"
	kind := pb.UploadKind_UPLOAD_KIND_UPDATE
	if secure {
		kind = pb.UploadKind_UPLOAD_KIND_ENCRYPTED_UPDATE
	}
	if sub == nil {
		started := time.Now()
		// The data first: a site whose data cannot be trained on says so at
		// once instead of after a download, and nothing retries it.
		if h := a.checkData(); h.problem != "" {
			return permanent(dataProblem(h.problem))
		}
		if err := a.privacyPolicyRefuses(t); err != nil {
			return err // before the download: nothing this site has would change it
		}
		if err := a.customCodeRefuses(ctx, t); err != nil {
			return err
		}
		if err := a.modelLimitsRefuse(t); err != nil {
			return err
		}
		raw, err := a.download(ctx, t.InputBlob, int64(t.InputParams)*4)
		if err != nil {
			return err
		}
		global := learning.DecodeWeightsInto(nil, raw)
		if uint64(len(global)) != t.InputParams {
			return permanentf("global model has %d parameters, the task says %d", len(global), t.InputParams)
		}
		data, err := a.cfg.Data.Dataset(ctx, t.Spec)
		if err != nil {
			return fmt.Errorf("load training data: %w", err)
		}
		if data.N == 0 {
			return permanentf("no training examples could be read for job %s: run `site-agent scan` on the data folder to see why", t.JobId)
		}
		dpc, err := a.privacyGate(t, data.N)
		if err != nil {
			return err
		}
		sdp, err := a.siteGate(t)
		if err != nil {
			return err
		}
		site := a.siteName()
		res, err := a.cfg.Trainer.Train(ctx, TrainRequest{JobID: t.JobId, Round: int(t.Round), Spec: t.Spec, Global: global,
			Data: data, Seed: TrainingSeed(t.Spec.Seed, int(t.Round), site), DP: dpc})
		if err != nil {
			if errors.Is(err, learning.ErrBadSpec) || errors.Is(err, learning.ErrWeights) || errors.Is(err, learning.ErrData) {
				err = permanent(err) // the same job, data and model fail the same way again
			}
			return fmt.Errorf("local training: %w", err)
		}
		if len(res.Weights) != len(global) {
			return permanentf("trainer returned %d weights, the model has %d", len(res.Weights), len(global))
		}
		if dpc != nil {
			if err := dp.CheckSampling(res.Drawn, data.N, res.Steps, dpc.SampleRate); err != nil {
				return permanentf("local training did not sample as its privacy accounting assumes; nothing is released: %w", err)
			}
		}
		delta := make([]float32, len(global))
		for i := range delta {
			delta[i] = res.Weights[i] - global[i]
		}
		norm := ClipL2(delta, t.Spec.Training.ClipNorm)
		weight := float64(res.Samples)
		if sdp != nil {
			delta, norm = privatise(*sdp, delta, dp.NewSecureSource())
			// Every site counts once in a site-level aggregate: weighting by
			// examples would break the sensitivity bound of the sum.
			weight = 1
		}
		switch {
		case dpc != nil || sdp != nil:
			// Metrics are computed on the records (the loss, the norm before
			// clipping) and are outside the accounting: none leaves the site.
			res.Metrics = nil
		case res.Metrics == nil:
			res.Metrics = map[string]float64{"update_norm": norm}
		default:
			res.Metrics["update_norm"] = norm
		}
		var chunks [][]byte
		if secure {
			chunks, err = a.encryptUpdate(ctx, t, delta, weight)
			if err != nil {
				return err
			}
		} else {
			chunks = splitChunks(learning.EncodeWeights(delta))
		}
		sub, err = a.st.writeChunks(key, chunks)
		if err != nil {
			return fmt.Errorf("store pending update: %w", err)
		}
		sub.Nonce, sub.Samples, sub.Metrics = t.Nonce, uint64(res.Samples), res.Metrics
		sub.Params, sub.Layout = t.InputParams, t.LayoutHash
		switch {
		case dpc != nil:
			err = a.chargeAndRecord(t, sub, release{level: dp.Record, delta: dpc.Delta,
				mechanism: dp.Gaussian{NoiseMultiplier: dpc.NoiseMultiplier, SampleRate: dpc.SampleRate, Steps: res.Steps}})
		case sdp != nil:
			err = a.chargeAndRecord(t, sub, release{level: dp.Site, mechanism: sdp.Gaussian(), delta: sdp.Delta,
				clip: sdp.Clip, minContributors: sdp.MinSites})
		default:
			err = a.st.putSubmission(sub)
		}
		if err != nil {
			return err
		}
		a.log.Info("local training done", "job", t.JobId, "round", t.Round, "examples", res.Samples,
			"seconds", time.Since(started).Seconds(), "update_norm", norm)
		var final []float32
		if t.Round == t.Spec.GetRounds() {
			final = global // the last model this site receives for the job
		}
		a.recordBaseline(t.JobId, t.Spec, data, final)
	}
	if err := ctx.Err(); err != nil {
		return err // the job was cancelled after training: upload nothing
	}
	return a.upload(ctx, sub, &pb.UploadHeader{JobId: t.JobId, Round: t.Round, Kind: kind})
}

// ClipL2 scales v in place so its L2 norm is at most bound (bound <= 0:
// no clipping) and returns the norm before clipping.
func ClipL2(v []float32, bound float64) float64 {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	norm := math.Sqrt(ss)
	if bound > 0 && norm > bound {
		s := float32(bound / norm)
		for i := range v {
			v[i] *= s
		}
	}
	return norm
}

func (a *Agent) siteName() string {
	if len(a.cfg.TLS.Certificates) > 0 && a.cfg.TLS.Certificates[0].Leaf != nil {
		for _, u := range a.cfg.TLS.Certificates[0].Leaf.URIs {
			if u.Scheme == "concord" {
				return u.Path[1:]
			}
		}
		return a.cfg.TLS.Certificates[0].Leaf.Subject.CommonName
	}
	return ""
}
