package siteagent

import (
	"context"
	"sync/atomic"

	"github.com/concord-fl/concord/extrainer"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// ExternalTrainer hands local training to a trainer process on a GPU node
// (deploy/trainer). The agent keeps clipping, encryption and all
// communication, and is the only reader of patient data: it runs the job's
// pipeline as for the built-in trainer and sends the trainer the resulting
// pixels and labels as content-addressed shards (extrainer.Shards), only
// those the trainer's cache lacks. It carries out record-level DP-SGD (a RecordDPTrainer): the trainer draws
// the batches and the noise itself and reports the steps and draws, which
// the agent checks and charges as it does for the LocalTrainer.
type ExternalTrainer struct {
	c *extrainer.Client
	// sent counts the shards sent to the trainer, for tests and logs.
	sent atomic.Int64
	// AllowCPUCustom lets custom models (custom.go) train on a trainer
	// that reports device cpu; by default such a site refuses them.
	AllowCPUCustom bool
}

// NewExternalTrainer connects to a trainer.
func NewExternalTrainer(ctx context.Context, cfg extrainer.Config) (*ExternalTrainer, error) {
	c, err := extrainer.Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &ExternalTrainer{c: c}, nil
}

// ShardsSent is the number of shards sent to the trainer so far.
func (t *ExternalTrainer) ShardsSent() int { return int(t.sent.Load()) }

// Close closes the connection.
func (t *ExternalTrainer) Close() error { return t.c.Close() }

// Train implements Trainer.
func (t *ExternalTrainer) Train(ctx context.Context, req TrainRequest) (TrainResult, error) {
	s := externalSettings(req.Spec, req.Seed, req.Data.Y, req.DP)
	if req.DP != nil && req.Data.N != req.DP.Examples {
		// q and the steps were computed for DP.Examples examples.
		return TrainResult{}, permanentf("external trainer: the data has %d examples, but the DP sampling rate and privacy accounting are for %d",
			req.Data.N, req.DP.Examples)
	}
	shards, err := extrainer.Shards(req.Data)
	if err != nil {
		return TrainResult{}, permanentf("external trainer: %v", err)
	}
	n, err := t.c.SyncShards(ctx, shards)
	if err != nil {
		return TrainResult{}, err
	}
	t.sent.Add(int64(n))
	for _, sh := range shards {
		s.Shards = append(s.Shards, sh.ID)
	}
	m, err := learning.New(jobspec.ModelSpec(req.Spec), req.Spec.Seed)
	if err != nil {
		return TrainResult{}, err
	}
	if mo := req.Spec.GetModel(); mo.GetArch() == jobspec.ArchCustom {
		// The agent checked the hash and the hospital's approval
		// (Agent.customCodeRefuses) before downloading the global model.
		s.Code, s.CodeSHA256 = mo.GetCode(), mo.GetCodeSha256()
	}
	res, err := t.c.Train(ctx, req.JobID, req.Round, m.Layout().JSON(), req.Global, s, nil)
	if err != nil {
		return TrainResult{}, err
	}
	if req.DP != nil {
		// q and the steps were computed for the agent's count of the
		// site's examples; on another count the accounting would be wrong.
		if res.Samples != req.DP.Examples {
			return TrainResult{}, permanentf("the external trainer trained on %d examples, but the agent sent %d, for which it set "+
				"the DP sampling rate and accounts the privacy", res.Samples, req.DP.Examples)
		}
		// The loss and accuracy are computed on the records, outside the
		// accounting: they stay with the trainer.
		return TrainResult{Weights: res.Weights, Samples: res.Samples, Steps: res.Steps, Drawn: res.Drawn}, nil
	}
	return TrainResult{Weights: res.Weights, Samples: res.Samples, Metrics: res.Metrics}, nil
}

// TrainsRecordDP implements RecordDPTrainer.
func (*ExternalTrainer) TrainsRecordDP() {}

// externalSettings converts the job's training settings (and its DP-SGD,
// when d is set) for the external trainer. Every setting of
// jobspec.TrainConfig has a field in the protocol; a setting added there
// must be added here too (TestExternalSettings lists them).
func externalSettings(spec *pb.JobSpec, seed int64, labels []int, d *jobspec.RecordDP) extrainer.Settings {
	// The balanced class weights come from the labels the agent sends, as
	// for the built-in trainer.
	tc := jobspec.TrainConfig(spec, labels)
	s := extrainer.Settings{Epochs: tc.Epochs, Steps: tc.Steps, BatchSize: tc.BatchSize, Optimizer: tc.Optimizer, LR: tc.LR, Momentum: tc.Momentum,
		ProxMu: tc.ProxMu, Seed: seed, Augment: tc.Augment}
	for _, w := range tc.ClassWeights {
		s.ClassWeights = append(s.ClassWeights, float64(w))
	}
	if d != nil {
		s.Steps = 0 // DP-SGD runs d.StepsPerRound steps
		s.DP = &extrainer.DPSettings{SampleRate: d.SampleRate, Clip: d.Clip, NoiseMultiplier: d.NoiseMultiplier, Steps: d.StepsPerRound}
	}
	return s
}
