// Package jobspec owns the job spec: it converts a job file (YAML, written
// by a consortium admin) into the wire form concord.v1.JobSpec, fills
// defaults, validates, and converts the spec into the types of the packages
// that run it (ModelSpec, TrainConfig, AggregationConfig, PipelineConfig).
// It is the edge where YAML ends: the coordinator sees only the proto and
// calls Defaults and Validate again, since a spec can also arrive from
// other clients.
//
// The caller's duties, in order: Defaults, then Validate (or
// ValidateWithLimits with the operator's Limits), and only then anything
// that allocates from the spec, such as learning.New. Validate checks every
// field, finite and in range, and computes the model's size without
// building it, so a hostile spec is refused before it costs memory. Options
// that nothing would act on are refused rather than silently ignored.
//
// A custom model (model.arch custom, custom.go) carries its module's bytes
// in the spec: ParseFile reads them from model.code.file next to the job
// file, and Validate checks them against model.code.sha256 wherever the
// spec arrives, so a file changed after it was pinned is refused at
// submission, by the coordinator and at every site.
//
// DefaultLimits, and why:
//
//   - MaxModelParams 50 million: the coordinator holds the model several
//     times over (the global weights, their encoded blob, a checkpoint per
//     round, and in plaintext mode one update per site), 200 MB each at
//     this size. A cnn of base_width 512 (about 21.5 million parameters)
//     fits; base_width 1024 (about 86 million) does not.
//   - MaxSites 256: the largest federation the default homomorphic
//     encryption parameter set's error bound is documented for
//     (privacy/he, n12-q60).
//   - MaxRounds 10000 and MaxRoundDeadline 7 days: far beyond any real job,
//     small enough that a typo (an extra zero or two) is caught.
//
// Bounds that do not depend on the coordinator are constants: model.classes
// at most 1000, base_width 1..1024, batch_size 1..1024, local_epochs at most
// 100, local_steps at most 100000, learning rates in (0, 10], name at most
// 128 bytes, he_params and pipeline strings at most 64 bytes, site names as
// the CA issues them (pki.ValidateName).
package jobspec

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"

	"github.com/concord-fl/concord/aggregation"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// File is the YAML layout of a job file. See the README's job spec reference.
type File struct {
	Name string `yaml:"name"`
	// Purpose and LegalBasis go into the compliance reports.
	Purpose    string `yaml:"purpose"`
	LegalBasis string `yaml:"legal_basis"`
	Model      struct {
		Arch      string      `yaml:"arch"`
		Channels  uint32      `yaml:"channels"`
		Height    uint32      `yaml:"height"`
		Width     uint32      `yaml:"width"`
		Classes   uint32      `yaml:"classes"`
		BaseWidth uint32      `yaml:"base_width"`
		Norm      string      `yaml:"norm"`
		Layers    []layerFile `yaml:"layers"`
		// Code and Layout are arch custom's module and its parameters
		// (custom.go).
		Code   codeFile          `yaml:"code"`
		Layout []customParamFile `yaml:"layout"`
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
		Level             string  `yaml:"level"`
		ExampleClip       float64 `yaml:"example_clip"`
		Epsilon           float64 `yaml:"epsilon"`
		Delta             float64 `yaml:"delta"`
		NoiseMultiplier   float64 `yaml:"noise_multiplier"`
		UpdateClip        float64 `yaml:"update_clip"`
		AdaptiveClip      struct {
			Quantile   float64 `yaml:"quantile"`
			LR         float64 `yaml:"lr"`
			CountNoise float64 `yaml:"count_noise"`
		} `yaml:"adaptive_clip"`
	} `yaml:"privacy"`
	ValidationSites []string `yaml:"validation_sites"`
	Validation      struct {
		MinAUC           float64  `yaml:"min_auc"`
		MinSensitivity   float64  `yaml:"min_sensitivity"`
		AtSpecificity    float64  `yaml:"at_specificity"`
		MaxAUCRegression float64  `yaml:"max_auc_regression"`
		MaxSubgroupGap   float64  `yaml:"max_subgroup_gap"`
		MinSubgroupCount uint32   `yaml:"min_subgroup_count"`
		ReceiptDeadline  duration `yaml:"receipt_deadline"`
		MinDice          float64  `yaml:"min_dice"`
		FinalOnly        bool     `yaml:"final_only"`
		ScoreLocalModels bool     `yaml:"score_local_models"`
	} `yaml:"validation"`
	Mode        string `yaml:"mode"`
	InitVersion string `yaml:"init_version"`
	Retrain     struct {
		DriftPSI        float64  `yaml:"drift_psi"`
		MinFeedback     uint64   `yaml:"min_feedback"`
		Every           duration `yaml:"every"`
		RequireApproval bool     `yaml:"require_approval"`
	} `yaml:"retrain"`
	// Tuning, when present, asks the coordinator to tune before training
	// (validate_tuning.go).
	Tuning *struct {
		ServerLR    []float64 `yaml:"server_lr"`
		LocalEpochs []uint32  `yaml:"local_epochs"`
		Rounds      uint32    `yaml:"rounds"`
		Eta         uint32    `yaml:"eta"`
	} `yaml:"tuning"`
	Sites    []string `yaml:"sites"`
	Seed     int64    `yaml:"seed"`
	Pipeline struct {
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
		return fmt.Errorf("line %d: %s is not a duration (write e.g. 90s, 10m, 1h)", n.Line, quote(n.Value))
	}
	*d = duration(v)
	return nil
}

// Parse reads a job file, rejecting unknown fields so that a typo is an
// error rather than a silently ignored setting, then applies defaults and
// validates.
func Parse(data []byte) (*pb.JobSpec, error) {
	spec, err := decode(data)
	if err != nil {
		return nil, err
	}
	Defaults(spec)
	if err := Validate(spec); err != nil {
		return nil, err
	}
	return spec, nil
}

// ParseModel reads the model: section of a job file (the file's other
// sections are checked for unknown keys but not used): no defaults, no
// validation, which the job the model goes into gets.
func ParseModel(data []byte) (*pb.ModelSpec, error) {
	spec, err := decode(data)
	if err != nil {
		return nil, err
	}
	if spec.Model == nil || proto.Equal(spec.Model, &pb.ModelSpec{}) {
		return nil, errors.New("job file: no model: section")
	}
	return spec.Model, nil
}

// decode converts a job file into the wire form as written: no defaults,
// no validation.
func decode(data []byte) (*pb.JobSpec, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("job file: %w", err)
	}
	return f.spec(), nil
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
	if m.Arch == ArchUNet {
		unetDefaults(m)
	}
	if graphArch(m.Arch) {
		graphDefaults(m)
	} else if m.Arch != ArchCustom {
		m.BaseWidth = orU(m.BaseWidth, 16)
	}
	m.Classes = orU(m.Classes, 2)
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
	if pr := s.Privacy; pr.AdaptiveClipQuantile != 0 {
		// Andrew et al.'s defaults: clip learning rate 0.2, count noise
		// expected sites / 20.
		if pr.AdaptiveClipLr == 0 {
			pr.AdaptiveClipLr = 0.2
		}
		if pr.AdaptiveClipCountNoise == 0 {
			pr.AdaptiveClipCountNoise = float64(s.MinSites) / 20
		}
	}
	if s.Pipeline == nil {
		s.Pipeline = &pb.PipelineSpec{}
	}
	p := s.Pipeline
	p.Width = orU(p.Width, m.Width)
	p.Height = orU(p.Height, m.Height)
	p.Channels = orU(p.Channels, m.Channels)
	p.Resample = orDefault(p.Resample, "area")
	p.Normalise = orDefault(p.Normalise, "auto")
	if s.Tuning != nil {
		s.Tuning.Eta = orU(s.Tuning.Eta, DefaultTuneEta)
	}
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
