// Package jobspec converts a job file (YAML, written by a consortium admin)
// into the wire form concord.v1.JobSpec, fills defaults and validates it.
// It is the edge where YAML ends: the coordinator sees only the proto and
// calls Validate again, since a spec can also arrive from other clients.
package jobspec

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/concord-fl/concord/aggregation"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// File is the YAML layout of a job file. See the README's job spec reference.
type File struct {
	Name  string `yaml:"name"`
	Model struct {
		Arch      string `yaml:"arch"`
		Channels  uint32 `yaml:"channels"`
		Height    uint32 `yaml:"height"`
		Width     uint32 `yaml:"width"`
		Classes   uint32 `yaml:"classes"`
		BaseWidth uint32 `yaml:"base_width"`
		Norm      string `yaml:"norm"`
	} `yaml:"model"`
	Rounds          uint32             `yaml:"rounds"`
	MinSites        uint32             `yaml:"min_sites"`
	RoundDeadline   duration           `yaml:"round_deadline"`
	StragglerCutoff duration           `yaml:"straggler_cutoff"`
	Aggregation     aggregation.Config `yaml:"aggregation"`
	Training        struct {
		LocalEpochs    uint32  `yaml:"local_epochs"`
		LocalSteps     uint32  `yaml:"local_steps"`
		BatchSize      uint32  `yaml:"batch_size"`
		Optimizer      string  `yaml:"optimizer"`
		LearningRate   float64 `yaml:"learning_rate"`
		Momentum       float64 `yaml:"momentum"`
		Augment        bool    `yaml:"augment"`
		ClipNorm       float64 `yaml:"clip_norm"`
		ClassWeighting string  `yaml:"class_weighting"`
	} `yaml:"training"`
	Privacy struct {
		SecureAggregation string  `yaml:"secure_aggregation"`
		Threshold         uint32  `yaml:"threshold"`
		HEParams          string  `yaml:"he_params"`
		Epsilon           float64 `yaml:"epsilon"`
		Delta             float64 `yaml:"delta"`
		NoiseMultiplier   float64 `yaml:"noise_multiplier"`
	} `yaml:"privacy"`
	ValidationSites []string `yaml:"validation_sites"`
	Sites           []string `yaml:"sites"`
	Seed            int64    `yaml:"seed"`
	Pipeline        struct {
		Width     uint32 `yaml:"width"`
		Height    uint32 `yaml:"height"`
		Channels  uint32 `yaml:"channels"`
		Resample  string `yaml:"resample"`
		Normalise string `yaml:"normalise"`
		Denoise   string `yaml:"denoise"`
		Contrast  string `yaml:"contrast"`
	} `yaml:"pipeline"`
}

type duration time.Duration

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (write e.g. 90s, 10m, 1h)", n.Line, n.Value)
	}
	*d = duration(v)
	return nil
}

// Parse reads a job file, rejecting unknown fields so that a typo is an
// error rather than a silently ignored setting, then applies defaults and
// validates.
func Parse(data []byte) (*pb.JobSpec, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("job file: %w", err)
	}
	agg := f.Aggregation
	spec := &pb.JobSpec{
		Name: f.Name,
		Model: &pb.ModelSpec{Arch: f.Model.Arch, Channels: f.Model.Channels, Height: f.Model.Height,
			Width: f.Model.Width, Classes: f.Model.Classes, BaseWidth: f.Model.BaseWidth, Norm: f.Model.Norm},
		Rounds:                 f.Rounds,
		MinSites:               f.MinSites,
		RoundDeadlineSeconds:   time.Duration(f.RoundDeadline).Seconds(),
		StragglerCutoffSeconds: time.Duration(f.StragglerCutoff).Seconds(),
		Aggregation: &pb.AggregationSpec{Strategy: agg.Strategy, ServerLr: agg.ServerLR, Beta1: agg.Beta1,
			Beta2: agg.Beta2, Tau: agg.Tau, TrimFraction: agg.TrimFraction, ProxMu: agg.ProxMu},
		Training: &pb.TrainingSpec{LocalEpochs: f.Training.LocalEpochs, LocalSteps: f.Training.LocalSteps,
			BatchSize: f.Training.BatchSize, Optimizer: f.Training.Optimizer, LearningRate: f.Training.LearningRate,
			Momentum: f.Training.Momentum, Augment: f.Training.Augment, ClipNorm: f.Training.ClipNorm,
			ClassWeighting: f.Training.ClassWeighting},
		Privacy: &pb.PrivacySpec{SecureAggregation: f.Privacy.SecureAggregation, Threshold: f.Privacy.Threshold,
			HeParams: f.Privacy.HEParams, Epsilon: f.Privacy.Epsilon, Delta: f.Privacy.Delta, NoiseMultiplier: f.Privacy.NoiseMultiplier},
		ValidationSites: f.ValidationSites,
		Sites:           f.Sites,
		Seed:            f.Seed,
		Pipeline: &pb.PipelineSpec{Width: f.Pipeline.Width, Height: f.Pipeline.Height, Channels: f.Pipeline.Channels,
			Resample: f.Pipeline.Resample, Normalise: f.Pipeline.Normalise, Denoise: f.Pipeline.Denoise, Contrast: f.Pipeline.Contrast},
	}
	Defaults(spec)
	if err := Validate(spec); err != nil {
		return nil, err
	}
	return spec, nil
}

// Defaults fills every zero field with the documented default. Secure
// aggregation defaults to "mhe": turning it off must be explicit ("none").
func Defaults(s *pb.JobSpec) {
	if s.Model == nil {
		s.Model = &pb.ModelSpec{}
	}
	m := s.Model
	m.Arch = orDefault(m.Arch, "cnn")
	m.Channels = orU(m.Channels, 1)
	m.Height = orU(m.Height, 28)
	m.Width = orU(m.Width, 28)
	m.Classes = orU(m.Classes, 2)
	m.BaseWidth = orU(m.BaseWidth, 16)
	if m.Arch == "cnn" {
		m.Norm = orDefault(m.Norm, "group")
	}
	s.Rounds = orU(s.Rounds, 10)
	s.MinSites = orU(s.MinSites, 2)
	if s.RoundDeadlineSeconds == 0 {
		s.RoundDeadlineSeconds = 600
	}
	if s.StragglerCutoffSeconds == 0 {
		s.StragglerCutoffSeconds = s.RoundDeadlineSeconds / 2
	}
	if s.Aggregation == nil {
		s.Aggregation = &pb.AggregationSpec{}
	}
	a := AggregationConfig(s)
	s.Aggregation = &pb.AggregationSpec{Strategy: a.Strategy, ServerLr: a.ServerLR, Beta1: a.Beta1, Beta2: a.Beta2,
		Tau: a.Tau, TrimFraction: a.TrimFraction, ProxMu: a.ProxMu}
	if s.Training == nil {
		s.Training = &pb.TrainingSpec{}
	}
	t := s.Training
	if t.LocalEpochs == 0 && t.LocalSteps == 0 {
		t.LocalEpochs = 1
	}
	t.BatchSize = orU(t.BatchSize, 32)
	t.Optimizer = orDefault(t.Optimizer, "adam")
	if t.LearningRate == 0 {
		if t.Optimizer == "sgd" {
			t.LearningRate = 0.01
		} else {
			t.LearningRate = 1e-3
		}
	}
	t.ClassWeighting = orDefault(t.ClassWeighting, "none")
	if t.Momentum == 0 && t.Optimizer == "sgd" {
		t.Momentum = 0.9
	}
	if s.Privacy == nil {
		s.Privacy = &pb.PrivacySpec{}
	}
	s.Privacy.SecureAggregation = orDefault(s.Privacy.SecureAggregation, "mhe")
	if s.Pipeline == nil {
		s.Pipeline = &pb.PipelineSpec{}
	}
	p := s.Pipeline
	p.Width = orU(p.Width, m.Width)
	p.Height = orU(p.Height, m.Height)
	p.Channels = orU(p.Channels, m.Channels)
	p.Resample = orDefault(p.Resample, "area")
	p.Normalise = orDefault(p.Normalise, "auto")
}

// ModelSpec converts the spec's model section, after Defaults, for package
// learning. Defaults always names the cnn's normalisation, so a cnn spec
// without one is a job stored before model.norm existed: it gets the
// network it was created with (concord.cnn/1, no normalisation), so that
// such a job resumes on its own checkpoints after an upgrade.
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

// Validate reports everything wrong with a spec at once, each with what to do.
func Validate(s *pb.JobSpec) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.GetModel() == nil || s.GetTraining() == nil || s.GetPrivacy() == nil || s.GetPipeline() == nil {
		return errors.New("job spec is incomplete: apply defaults before validating")
	}
	m := s.Model
	if m.Arch != "cnn" {
		bad("model.arch %q is not supported: use cnn", m.Arch)
	}
	if m.Channels != 1 && m.Channels != 3 {
		bad("model.channels must be 1 (grey) or 3 (RGB), got %d", m.Channels)
	}
	if m.Norm != "group" && m.Norm != "none" {
		bad("model.norm %q is not supported: use group (GroupNorm) or none", m.Norm)
	}
	if m.Height < 28 || m.Width < 28 || m.Height > 224 || m.Width > 224 || m.Height%4 != 0 || m.Width%4 != 0 {
		bad("model input %dx%d: height and width must be multiples of 4 between 28 and 224", m.Height, m.Width)
	}
	if m.Classes < 2 {
		bad("model.classes must be at least 2, got %d", m.Classes)
	}
	if s.Rounds > 10000 {
		bad("rounds %d is more than 10000", s.Rounds)
	}
	if s.MinSites < 1 {
		bad("min_sites must be at least 1")
	}
	if s.StragglerCutoffSeconds > s.RoundDeadlineSeconds {
		bad("straggler_cutoff (%gs) must not exceed round_deadline (%gs)", s.StragglerCutoffSeconds, s.RoundDeadlineSeconds)
	}
	if err := AggregationConfig(s).Validate(); err != nil {
		bad("aggregation: %w", err)
	}
	t := s.Training
	if t.Optimizer != "sgd" && t.Optimizer != "adam" {
		bad("training.optimizer %q: use sgd or adam", t.Optimizer)
	}
	if t.LearningRate <= 0 || t.LearningRate > 10 {
		bad("training.learning_rate %g must be in (0, 10]", t.LearningRate)
	}
	if t.ClassWeighting != "none" && t.ClassWeighting != "balanced" {
		bad("training.class_weighting %q: use none or balanced", t.ClassWeighting)
	}
	if t.ClipNorm < 0 {
		bad("training.clip_norm must not be negative")
	}
	p := s.Privacy
	switch p.SecureAggregation {
	case "mhe":
		if AggregationConfig(s).Robust() {
			bad("aggregation.strategy %q needs every site's update in the clear; it cannot run with secure_aggregation mhe (use fedavg, fedprox, fedadam, fedyogi or fedadagrad, or set secure_aggregation: none explicitly)", s.Aggregation.Strategy)
		}
		if p.Threshold == 1 {
			bad("privacy.threshold 1 would let any single site decrypt: use at least 2, or 0 for all key holders")
		}
		if p.Threshold > 0 && s.MinSites < p.Threshold {
			bad("privacy.threshold %d exceeds min_sites %d: rounds could close with fewer sites than can decrypt", p.Threshold, s.MinSites)
		}
	case "none":
	default:
		bad("privacy.secure_aggregation %q: use mhe (default) or none", p.SecureAggregation)
	}
	if p.Epsilon < 0 || p.Delta < 0 || p.Delta >= 1 || p.NoiseMultiplier < 0 {
		bad("privacy: epsilon, delta and noise_multiplier must be non-negative and delta below 1")
	}
	for _, v := range s.ValidationSites {
		if slices.Contains(s.Sites, v) {
			bad("site %q is listed both for training and for validation", v)
		}
	}
	if len(s.Sites) > 0 && uint32(len(s.Sites)) < s.MinSites {
		bad("%d sites listed but min_sites is %d", len(s.Sites), s.MinSites)
	}
	if pl := s.Pipeline; pl.Width != m.Width || pl.Height != m.Height || pl.Channels != m.Channels {
		bad("pipeline output %dx%dx%d must match the model input %dx%dx%d", pl.Channels, pl.Height, pl.Width, m.Channels, m.Height, m.Width)
	}
	return errors.Join(errs...)
}

func orDefault(v, d string) string {
	if strings.TrimSpace(v) == "" {
		return d
	}
	return v
}

func orU(v, d uint32) uint32 {
	if v == 0 {
		return d
	}
	return v
}
