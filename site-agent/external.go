package siteagent

import (
	"context"
	"errors"
	"fmt"

	"github.com/concord-fl/concord/extrainer"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
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
	s, err := externalSettings(req.Spec, req.Seed, t.Dataset)
	if err != nil {
		return TrainResult{}, err
	}
	m, err := learning.New(jobspec.ModelSpec(req.Spec), req.Spec.Seed)
	if err != nil {
		return TrainResult{}, err
	}
	res, err := t.c.Train(ctx, req.JobID, req.Round, m.Layout().JSON(), req.Global, s, nil)
	if err != nil {
		return TrainResult{}, err
	}
	return TrainResult{Weights: res.Weights, Samples: res.Samples, Metrics: res.Metrics}, nil
}

// ErrExternalUnsupported is returned (wrapped) for a job whose training
// settings the external trainer cannot carry out.
var ErrExternalUnsupported = errors.New("the external trainer cannot carry out this job's training settings")

// externalSettings converts the job's training settings for the external
// trainer, refusing those its protocol has no field for rather than
// training differently from what the job asked.
func externalSettings(spec *pb.JobSpec, seed int64, dataset string) (extrainer.Settings, error) {
	tc := jobspec.TrainConfig(spec, nil)
	switch {
	case tc.Steps > 0:
		return extrainer.Settings{}, fmt.Errorf("%w: training.local_steps (%d) is not supported by the external trainer, which trains whole epochs; "+
			"use training.local_epochs, or train this site with the built-in trainer", ErrExternalUnsupported, tc.Steps)
	case spec.GetTraining().GetClassWeighting() == "balanced":
		// The weights come from the labels the trainer reads on its own node,
		// which the agent does not see.
		return extrainer.Settings{}, fmt.Errorf("%w: training.class_weighting balanced is not supported by the external trainer; "+
			"use class_weighting none, or train this site with the built-in trainer", ErrExternalUnsupported)
	}
	return extrainer.Settings{Epochs: tc.Epochs, BatchSize: tc.BatchSize, Optimizer: tc.Optimizer, LR: tc.LR, Momentum: tc.Momentum,
		ProxMu: tc.ProxMu, Seed: seed, Augment: tc.Augment, Dataset: dataset}, nil
}
