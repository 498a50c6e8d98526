package siteagent

import (
	"context"

	"github.com/concord-fl/concord/extrainer"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
)

// ExternalTrainer hands local training to a trainer process on a GPU node
// (deploy/trainer). The agent keeps clipping, encryption and all
// communication; the trainer reads the site's data on its own node.
type ExternalTrainer struct {
	c *extrainer.Client
	// Dataset is the trainer-side dataset to train on.
	Dataset string
}

// NewExternalTrainer connects to a trainer.
func NewExternalTrainer(ctx context.Context, cfg extrainer.Config, dataset string) (*ExternalTrainer, error) {
	c, err := extrainer.Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &ExternalTrainer{c: c, Dataset: dataset}, nil
}

// Close closes the connection.
func (t *ExternalTrainer) Close() error { return t.c.Close() }

// Train implements Trainer.
func (t *ExternalTrainer) Train(ctx context.Context, req TrainRequest) (TrainResult, error) {
	m, err := learning.New(jobspec.ModelSpec(req.Spec), req.Spec.Seed)
	if err != nil {
		return TrainResult{}, err
	}
	tr := req.Spec.Training
	s := extrainer.Settings{Epochs: int(tr.LocalEpochs), BatchSize: int(tr.BatchSize), Optimizer: tr.Optimizer,
		LR: tr.LearningRate, Momentum: tr.Momentum, Seed: req.Seed, Augment: tr.Augment, Dataset: t.Dataset}
	if req.Spec.Aggregation.Strategy == "fedprox" {
		s.ProxMu = req.Spec.Aggregation.ProxMu
	}
	res, err := t.c.Train(ctx, req.JobID, req.Round, m.Layout().JSON(), req.Global, s, nil)
	if err != nil {
		return TrainResult{}, err
	}
	return TrainResult{Weights: res.Weights, Samples: res.Samples, Metrics: res.Metrics}, nil
}
