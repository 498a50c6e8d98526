package jobspec

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/concord-fl/concord/aggregation"
	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/privacy/dp"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// This file is the one place where a job spec's fields are copied into
// other packages' types; conversion_test.go checks that every field of the
// proto is carried somewhere or refused, so a new field cannot be forgotten.

// spec converts the YAML layout into the wire form, field for field,
// without defaults.
func (f *File) spec() *pb.JobSpec {
	agg, t, p, pl := f.Aggregation, &f.Training, &f.Privacy, &f.Pipeline
	var tuning *pb.TuningSpec
	if tu := f.Tuning; tu != nil {
		tuning = &pb.TuningSpec{ServerLr: tu.ServerLR, LocalEpochs: tu.LocalEpochs, Rounds: tu.Rounds, Eta: tu.Eta}
	}
	return &pb.JobSpec{
		Tuning: tuning,
		Name:   f.Name, Purpose: f.Purpose, LegalBasis: f.LegalBasis,
		Model: &pb.ModelSpec{Arch: f.Model.Arch, Channels: f.Model.Channels, Height: f.Model.Height,
			Width: f.Model.Width, Classes: f.Model.Classes, BaseWidth: f.Model.BaseWidth, Norm: f.Model.Norm,
			Layers: layersToWire(f.Model.Layers), CodeFile: f.Model.Code.File, CodeSha256: f.Model.Code.SHA256,
			CustomLayout: customToWire(f.Model.Layout)},
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
			Epsilon: p.Epsilon, Delta: p.Delta, NoiseMultiplier: p.NoiseMultiplier, Level: p.Level, ExampleClip: p.ExampleClip,
			UpdateClip: p.UpdateClip, AdaptiveClipQuantile: p.AdaptiveClip.Quantile, AdaptiveClipLr: p.AdaptiveClip.LR,
			AdaptiveClipCountNoise: p.AdaptiveClip.CountNoise},
		ValidationSites: f.ValidationSites,
		Validation: &pb.ValidationSpec{MinAuc: f.Validation.MinAUC, MinSensitivity: f.Validation.MinSensitivity,
			AtSpecificity: f.Validation.AtSpecificity, MaxAucRegression: f.Validation.MaxAUCRegression,
			MaxSubgroupGap: f.Validation.MaxSubgroupGap, MinSubgroupCount: f.Validation.MinSubgroupCount,
			ReceiptDeadlineSeconds: time.Duration(f.Validation.ReceiptDeadline).Seconds(), MinDice: f.Validation.MinDice,
			FinalOnly: f.Validation.FinalOnly, ScoreLocalModels: f.Validation.ScoreLocalModels},
		Mode:        f.Mode,
		InitVersion: f.InitVersion,
		Retrain: &pb.RetrainSpec{DriftPsi: f.Retrain.DriftPSI, MinFeedback: f.Retrain.MinFeedback,
			EverySeconds: time.Duration(f.Retrain.Every).Seconds(), RequireApproval: f.Retrain.RequireApproval},
		Sites: f.Sites,
		Seed:  f.Seed,
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
		Classes: int(m.GetClasses()), BaseWidth: int(m.GetBaseWidth()), Norm: norm, Layers: layersToLearning(m.GetLayers()),
		Custom: customToLearning(m.GetCustomLayout()), CodeSHA256: m.GetCodeSha256()}
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

// RecordDP is one site's record-level DP-SGD for a job: the spec's
// settings and what they come to for a site with a given number of
// training examples.
type RecordDP struct {
	Clip            float64 // privacy.example_clip
	NoiseMultiplier float64 // privacy.noise_multiplier, or planned from Epsilon
	Planned         bool    // NoiseMultiplier was planned from Epsilon
	Epsilon         float64 // privacy.epsilon: the whole job's target; 0 when the noise is given
	Delta           float64 // privacy.delta
	Examples        int
	SampleRate      float64 // q = batch_size / examples, at most 1
	StepsPerRound   int     // local_steps, or local_epochs × round(1/q)
	Rounds          int
}

// Gaussian is the mechanism of one round.
func (d RecordDP) Gaussian() dp.Gaussian {
	return dp.Gaussian{NoiseMultiplier: d.NoiseMultiplier, SampleRate: d.SampleRate, Steps: d.StepsPerRound}
}

// Apply sets cfg's DP-SGD fields: per-example clipping and noise drawn from
// noise, Poisson batches at SampleRate drawn by sampler. A deployment
// passes dp.NewSecureSource() for both. The epochs or steps stay as
// TrainConfig set them; learning's epoch of round(1/q) steps is the one
// StepsPerRound counts.
func (d RecordDP) Apply(cfg *learning.TrainConfig, noise, sampler dp.Source) {
	cfg.PerExample = &dp.SGD{Clip: d.Clip, NoiseMultiplier: d.NoiseMultiplier, Source: noise}
	cfg.SampleRate = d.SampleRate
	cfg.Sampler = sampler
}

// DPConfig converts the spec's record-level differential privacy for a
// site with examples training examples, after Defaults and Validate. It
// returns nil when privacy.level is not record. With privacy.epsilon and
// no noise multiplier it plans the noise (dp.Plan) so that the whole job,
// rounds × StepsPerRound steps at this site's rate, spends at most
// epsilon at delta; sites with different data sizes plan different noise.
func DPConfig(s *pb.JobSpec, examples int) (*RecordDP, error) {
	p := s.GetPrivacy()
	if p.GetLevel() != levelRecord {
		return nil, nil
	}
	if examples < 1 {
		return nil, errors.New("record-level DP: the site has no training examples")
	}
	t := s.GetTraining()
	q := min(1, float64(t.GetBatchSize())/float64(examples))
	if !(q > 0) {
		return nil, fmt.Errorf("record-level DP: training.batch_size %d gives no sample rate", t.GetBatchSize())
	}
	steps := int(t.GetLocalSteps())
	if steps == 0 {
		steps = int(t.GetLocalEpochs()) * max(1, int(math.Round(1/q)))
	}
	d := &RecordDP{Clip: p.GetExampleClip(), NoiseMultiplier: p.GetNoiseMultiplier(), Epsilon: p.GetEpsilon(), Delta: p.GetDelta(),
		Examples: examples, SampleRate: q, StepsPerRound: steps, Rounds: int(s.GetRounds())}
	if d.NoiseMultiplier == 0 {
		sigma, err := dp.Plan(d.Epsilon, d.Delta, q, d.Rounds*steps)
		if err != nil {
			return nil, fmt.Errorf("record-level DP: plan the noise for epsilon %g over %d rounds of %d steps: %w", d.Epsilon, d.Rounds, steps, err)
		}
		d.NoiseMultiplier, d.Planned = sigma, true
	}
	return d, nil
}

// AssessOptions converts how a validation site scores a model: the
// specificity at which sensitivity is also reported and the smallest
// subgroup reported. The gates' thresholds (min_auc and the rest) are
// the coordinator's, which compares them with the receipts.
func AssessOptions(s *pb.JobSpec) evaluation.AssessOptions {
	v := s.GetValidation()
	return evaluation.AssessOptions{AtSpecificity: v.GetAtSpecificity(), MinSubgroup: int(v.GetMinSubgroupCount())}
}

// SiteDP is a job's site-level differential privacy on the updates
// (privacy/dp doc, "Site level"): each site clips its update to Clip and
// adds its share of the noise, and the aggregate is the unweighted mean.
type SiteDP struct {
	Clip            float64 // C of the round: privacy.update_clip, or the coordinator's adapted clip (WithClip)
	NoiseMultiplier float64 // z of one round: privacy.noise_multiplier, or planned from Epsilon over Rounds
	Planned         bool    // NoiseMultiplier was planned from Epsilon
	Epsilon         float64 // privacy.epsilon: the whole job's target; 0 when the noise is given
	Delta           float64 // privacy.delta
	MinSites        int     // m: the fewest contributions a round aggregates
	Rounds          int
	// Adaptive clipping (Quantile 0: off): the target quantile γ, the
	// clip's learning rate η and the count's noise σ_b.
	Quantile, ClipLR, CountNoise float64
	// UpdateNoiseMultiplier is the update's share of z: z itself, or
	// (z⁻² − (2σ_b)⁻²)^(−1/2) with adaptive clipping.
	UpdateNoiseMultiplier float64
}

// Adaptive reports whether the clip adapts (privacy.adaptive_clip).
func (d SiteDP) Adaptive() bool { return d.Quantile > 0 }

// Gaussian is the mechanism of one round, as the accountant charges it.
func (d SiteDP) Gaussian() dp.Gaussian { return dp.SiteRound(d.NoiseMultiplier) }

// UpdateStd is the standard deviation of one site's noise per coordinate
// of its clipped update.
func (d SiteDP) UpdateStd() float64 {
	return dp.SiteNoiseStd(d.UpdateNoiseMultiplier, d.Clip, d.MinSites)
}

// CountStd is the standard deviation of one site's noise on its centred
// count bit: the count's sum carries at least σ_b.
func (d SiteDP) CountStd() float64 { return dp.SiteNoiseStd(d.CountNoise, 1, d.MinSites) }

// ExtraValues is the number of values appended to each site's update: one
// for the count bit under adaptive clipping, none otherwise.
func (d SiteDP) ExtraValues() int {
	if d.Adaptive() {
		return 1
	}
	return 0
}

// WithClip returns d with the round's clip c, which the coordinator sent
// with the task (0: keep the spec's). A clip that is not a positive finite
// number is refused: it would void the sensitivity bound.
func (d SiteDP) WithClip(c float64) (SiteDP, error) {
	switch {
	case c == 0:
		return d, nil
	case !(c > 0) || math.IsInf(c, 0) || c > maxUpdateClip:
		return d, fmt.Errorf("site-level DP: the task's update clip %v is not a positive finite number at most %g", c, float64(maxUpdateClip))
	case !d.Adaptive() && c != d.Clip:
		return d, fmt.Errorf("site-level DP: the task's update clip %v differs from the job's %v, and the job does not adapt its clip", c, d.Clip)
	}
	d.Clip = c
	return d, nil
}

// SiteDPConfig converts the spec's site-level differential privacy, after
// Defaults and Validate; nil when privacy.level is not site. With
// privacy.epsilon and no noise multiplier it plans z (dp.PlanSite) so that
// the job's rounds spend at most epsilon at delta: every site and the
// coordinator compute the same z from the same spec.
func SiteDPConfig(s *pb.JobSpec) (*SiteDP, error) {
	p := s.GetPrivacy()
	if p.GetLevel() != levelSite {
		return nil, nil
	}
	d := &SiteDP{Clip: p.GetUpdateClip(), NoiseMultiplier: p.GetNoiseMultiplier(), Epsilon: p.GetEpsilon(), Delta: p.GetDelta(),
		MinSites: int(s.GetMinSites()), Rounds: int(s.GetRounds()), Quantile: p.GetAdaptiveClipQuantile(), ClipLR: p.GetAdaptiveClipLr(),
		CountNoise: p.GetAdaptiveClipCountNoise()}
	if d.MinSites < 1 || d.Rounds < 1 || !(d.Clip > 0) {
		return nil, fmt.Errorf("site-level DP: min_sites %d, rounds %d, update_clip %v: validate the spec first", d.MinSites, d.Rounds, d.Clip)
	}
	if d.NoiseMultiplier == 0 {
		z, err := dp.PlanSite(d.Epsilon, d.Delta, d.Rounds)
		if err != nil {
			return nil, fmt.Errorf("site-level DP: plan the noise for epsilon %g over %d rounds: %w", d.Epsilon, d.Rounds, err)
		}
		d.NoiseMultiplier, d.Planned = z, true
	}
	d.UpdateNoiseMultiplier = d.NoiseMultiplier
	if d.Adaptive() {
		zu, err := dp.AdaptiveSplit(d.NoiseMultiplier, d.CountNoise)
		if err != nil {
			return nil, fmt.Errorf("site-level DP with adaptive clipping: %w", err)
		}
		d.UpdateNoiseMultiplier = zu
	}
	return d, nil
}
