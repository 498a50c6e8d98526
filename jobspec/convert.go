package jobspec

import (
	"time"

	"github.com/concord-fl/concord/aggregation"
	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// This file is the one place where a job spec's fields are copied into
// other packages' types; conversion_test.go checks that every field of the
// proto is carried somewhere or refused, so a new field cannot be forgotten.

// spec converts the YAML layout into the wire form, field for field,
// without defaults.
func (f *File) spec() *pb.JobSpec {
	agg, t, p, pl := f.Aggregation, &f.Training, &f.Privacy, &f.Pipeline
	return &pb.JobSpec{
		Name: f.Name, Purpose: f.Purpose, LegalBasis: f.LegalBasis,
		Model: &pb.ModelSpec{Arch: f.Model.Arch, Channels: f.Model.Channels, Height: f.Model.Height,
			Width: f.Model.Width, Classes: f.Model.Classes, BaseWidth: f.Model.BaseWidth, Norm: f.Model.Norm},
		Rounds:                 f.Rounds,
		MinSites:               f.MinSites,
		RoundDeadlineSeconds:   time.Duration(f.RoundDeadline).Seconds(),
		StragglerCutoffSeconds: time.Duration(f.StragglerCutoff).Seconds(),
		Aggregation: &pb.AggregationSpec{Strategy: agg.Strategy, ServerLr: agg.ServerLR, Beta1: agg.Beta1,
			Beta2: agg.Beta2, Tau: agg.Tau, TrimFraction: agg.TrimFraction, ProxMu: agg.ProxMu},
		Training: &pb.TrainingSpec{LocalEpochs: t.LocalEpochs, LocalSteps: t.LocalSteps, BatchSize: t.BatchSize,
			Optimizer: t.Optimizer, LearningRate: t.LearningRate, Momentum: t.Momentum, Augment: t.Augment,
			ClipNorm: t.ClipNorm, ClassWeighting: t.ClassWeighting},
		Privacy: &pb.PrivacySpec{SecureAggregation: p.SecureAggregation, Threshold: p.Threshold, HeParams: p.HEParams,
			Epsilon: p.Epsilon, Delta: p.Delta, NoiseMultiplier: p.NoiseMultiplier},
		ValidationSites: f.ValidationSites,
		Sites:           f.Sites,
		Seed:            f.Seed,
		Pipeline: &pb.PipelineSpec{Width: pl.Width, Height: pl.Height, Channels: pl.Channels, Resample: pl.Resample,
			Normalise: pl.Normalise, Denoise: pl.Denoise, Contrast: pl.Contrast},
	}
}

// ModelSpec converts the spec's model section, after Defaults, for package
// learning; the model's initial weights are drawn from the job's seed
// (learning.New(ModelSpec(s), s.Seed)). Defaults always names the cnn's
// normalisation, so a cnn spec without one is a job stored before
// model.norm existed: it gets the network it was created with
// (concord.cnn/1, no normalisation), so that such a job resumes on its own
// checkpoints after an upgrade.
func ModelSpec(s *pb.JobSpec) learning.Spec {
	m := s.GetModel()
	norm := m.GetNorm()
	if norm == "" && (m.GetArch() == "cnn" || m.GetArch() == "") {
		norm = "none"
	}
	return learning.Spec{Arch: m.GetArch(), Channels: int(m.GetChannels()), Height: int(m.GetHeight()), Width: int(m.GetWidth()),
		Classes: int(m.GetClasses()), BaseWidth: int(m.GetBaseWidth()), Norm: norm}
}

// AggregationConfig converts the spec's aggregation settings, with defaults.
func AggregationConfig(s *pb.JobSpec) aggregation.Config {
	a := s.GetAggregation()
	return aggregation.Config{Strategy: a.GetStrategy(), ServerLR: a.GetServerLr(), Beta1: a.GetBeta1(), Beta2: a.GetBeta2(),
		Tau: a.GetTau(), TrimFraction: a.GetTrimFraction(), ProxMu: a.GetProxMu()}.WithDefaults()
}

// TrainConfig converts the spec's training section for a site's local
// training. labels are the site's training labels: with class_weighting
// balanced they give the class weights. FedProx's μ, which is an
// aggregation setting, is applied here because only local training uses
// it. The caller sets what the spec does not decide: Seed (per site and
// round), Progress and the other hooks.
func TrainConfig(s *pb.JobSpec, labels []int) learning.TrainConfig {
	t := s.GetTraining()
	cfg := learning.TrainConfig{
		Epochs: int(t.GetLocalEpochs()), Steps: int(t.GetLocalSteps()), BatchSize: int(t.GetBatchSize()), Optimizer: t.GetOptimizer(),
		LR: t.GetLearningRate(), Momentum: t.GetMomentum(), Augment: t.GetAugment(),
	}
	if t.GetClassWeighting() == "balanced" {
		cfg.ClassWeights = learning.BalancedClassWeights(labels, int(s.GetModel().GetClasses()))
	}
	if a := AggregationConfig(s); a.Strategy == aggregation.StrategyFedProx {
		cfg.ProxMu = a.ProxMu
	}
	return cfg
}

// PipelineConfig converts the spec's pipeline section: how a site turns
// its images into the model's input.
func PipelineConfig(s *pb.JobSpec) imaging.Pipeline {
	p := s.GetPipeline()
	return imaging.Pipeline{Width: int(p.GetWidth()), Height: int(p.GetHeight()), Channels: int(p.GetChannels()),
		Resample: p.GetResample(), Normalise: p.GetNormalise(), Denoise: p.GetDenoise(), Contrast: p.GetContrast()}
}
