package jobspec

import (
	"math"
	"strings"
	"testing"
	"time"

	pb "github.com/concord-fl/concord/proto/concordpb"
)

// valid is a spec that passes Validate; each case below breaks one field.
func valid(t *testing.T) *pb.JobSpec {
	t.Helper()
	s, err := Parse([]byte("name: valid\nsites: [st-marys, city-general]\nvalidation_sites: [north]\n"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestValidateFields sets one field of a valid spec (as a client other than
// concordctl could send it, bypassing YAML) to a bad value and expects an
// error naming that field and its rule.
func TestValidateFields(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	cases := []struct {
		name string
		edit func(*pb.JobSpec)
		want string
	}{
		{"name too long", func(s *pb.JobSpec) { s.Name = strings.Repeat("n", 129) }, "is 129 bytes: at most 128"},
		{"name with a line break", func(s *pb.JobSpec) { s.Name = "a\nb" }, "only printable characters"},
		{"name not UTF-8", func(s *pb.JobSpec) { s.Name = "\xff" }, "not valid UTF-8"},
		{"arch", func(s *pb.JobSpec) { s.Model.Arch = "vit" }, `model.arch is "vit": use cnn, unet, graph, resnet18, resnet34 or custom`},
		{"channels", func(s *pb.JobSpec) { s.Model.Channels = 4; s.Pipeline.Channels = 4 }, "model.channels is 4: use 1 (grey) or 3 (RGB)"},
		{"height", func(s *pb.JobSpec) { s.Model.Height = 1 << 30; s.Pipeline.Height = 1 << 30 }, "model.height is 1073741824"},
		{"width", func(s *pb.JobSpec) { s.Model.Width = 226; s.Pipeline.Width = 226 }, "model.width is 226: a multiple of 4 between 28 and 224"},
		{"classes attack", func(s *pb.JobSpec) { s.Model.Classes = math.MaxUint32 }, "model.classes is 4294967295: at most 1000"},
		{"one class", func(s *pb.JobSpec) { s.Model.Classes = 1 }, "model.classes is 1: at least 2"},
		{"base width zero", func(s *pb.JobSpec) { s.Model.BaseWidth = 0 }, "model.base_width is 0: at least 1"},
		{"base width", func(s *pb.JobSpec) { s.Model.BaseWidth = 4096 }, "model.base_width is 4096: at most 1024"},
		{"model size attack", func(s *pb.JobSpec) {
			s.Model.BaseWidth, s.Model.Height, s.Model.Width, s.Model.Channels = 1024, 224, 224, 3
			s.Pipeline.Height, s.Pipeline.Width, s.Pipeline.Channels = 224, 224, 3
		}, "model has 86046722 parameters (model.base_width 1024, model.classes 2): at most 50000000; " +
			"make base_width or classes smaller, or ask the coordinator's operator to raise limits.max_model_params in coordinator.yaml"},
		{"norm", func(s *pb.JobSpec) { s.Model.Norm = "batch" }, `model.norm is "batch"`},
		{"rounds zero", func(s *pb.JobSpec) { s.Rounds = 0 }, "rounds is 0: at least 1"},
		{"gate NaN", func(s *pb.JobSpec) { s.Validation = &pb.ValidationSpec{MinAuc: nan} }, "validation.min_auc is NaN: want a number from 0 to 1"},
		{"gate above 1", func(s *pb.JobSpec) { s.Validation = &pb.ValidationSpec{MaxSubgroupGap: 2} }, "validation.max_subgroup_gap is 2"},
		{"gate without validation sites", func(s *pb.JobSpec) { s.ValidationSites = nil; s.Validation = &pb.ValidationSpec{MinAuc: 0.8} },
			"validation gates are set but validation_sites is empty"},
		{"operating point without its gate", func(s *pb.JobSpec) { s.Validation = &pb.ValidationSpec{AtSpecificity: 0.9} },
			"validation.at_specificity is set but validation.min_sensitivity is not"},
		{"local models under encryption", func(s *pb.JobSpec) { s.Validation = &pb.ValidationSpec{ScoreLocalModels: true} },
			"validation.score_local_models needs privacy.secure_aggregation none"},
		{"dice gate on a classifier", func(s *pb.JobSpec) { s.Validation = &pb.ValidationSpec{MinDice: 0.7} }, "validation.min_dice is a segmentation gate"},
		{"receipt deadline", func(s *pb.JobSpec) { s.Validation = &pb.ValidationSpec{ReceiptDeadlineSeconds: inf} }, "validation.receipt_deadline is +Infs"},
		{"leave-one-site-out min sites", func(s *pb.JobSpec) { s.Mode, s.MinSites = "leave-one-site-out", 2 }, "each fold trains on 1 sites, but min_sites is 2"},
		{"leave-one-site-out gates", func(s *pb.JobSpec) {
			s.Mode, s.MinSites, s.Validation = "leave-one-site-out", 1, &pb.ValidationSpec{MinAuc: 0.8}
		}, "publishes nothing, so validation gates do not apply"},
		{"mode", func(s *pb.JobSpec) { s.Mode = "swarm" }, `mode is "swarm": want federated or leave-one-site-out`},
		{"init version", func(s *pb.JobSpec) { s.InitVersion = "../v1" }, `init_version is "../v1": a published version`},
		{"drift trigger", func(s *pb.JobSpec) { s.Retrain = &pb.RetrainSpec{DriftPsi: nan} }, "retrain.drift_psi is NaN"},
		{"schedule too often", func(s *pb.JobSpec) { s.Retrain = &pb.RetrainSpec{EverySeconds: 60} }, "retrain.every is 60s: at least 1h"},
		{"approval without trigger", func(s *pb.JobSpec) { s.Retrain = &pb.RetrainSpec{RequireApproval: true} }, "no retraining trigger is"},
		{"rounds", func(s *pb.JobSpec) { s.Rounds = math.MaxUint32 }, "rounds is 4294967295: at most 10000"},
		{"min sites zero", func(s *pb.JobSpec) { s.MinSites = 0 }, "min_sites is 0: at least 1"},
		{"min sites", func(s *pb.JobSpec) { s.MinSites = 257 }, "min_sites is 257: at most 256"},
		{"deadline NaN", func(s *pb.JobSpec) { s.RoundDeadlineSeconds = nan }, "round_deadline (seconds) is NaN"},
		{"deadline Inf", func(s *pb.JobSpec) { s.RoundDeadlineSeconds = inf }, "round_deadline (seconds) is +Inf"},
		{"deadline tiny", func(s *pb.JobSpec) { s.RoundDeadlineSeconds, s.StragglerCutoffSeconds = 1e-9, 0 }, "round_deadline (seconds) is 1e-09: it must be a finite number in [1, 604800]"},
		{"cutoff NaN", func(s *pb.JobSpec) { s.StragglerCutoffSeconds = nan }, "straggler_cutoff (seconds) is NaN"},
		{"cutoff negative", func(s *pb.JobSpec) { s.StragglerCutoffSeconds = -1 }, "straggler_cutoff (seconds) is -1"},
		{"cutoff after deadline", func(s *pb.JobSpec) { s.StragglerCutoffSeconds = 601 }, "straggler_cutoff (601s) must not exceed round_deadline (600s)"},
		{"strategy", func(s *pb.JobSpec) { s.Aggregation.Strategy = "fedsgd" }, `aggregation.strategy is "fedsgd": use fedavg, fedprox`},
		{"server lr unused", func(s *pb.JobSpec) { s.Aggregation.ServerLr = 0.1 }, "aggregation.server_lr is 0.1 but strategy fedavg does not use it"},
		{"server lr NaN", func(s *pb.JobSpec) { s.Aggregation.Strategy, s.Aggregation.ServerLr = "fedadam", nan }, "aggregation.server_lr is NaN: it must be a finite number in (0, 10]"},
		{"server lr", func(s *pb.JobSpec) { s.Aggregation.Strategy, s.Aggregation.ServerLr = "fedadam", 11 }, "aggregation.server_lr is 11"},
		{"beta1", func(s *pb.JobSpec) {
			s.Aggregation.Strategy, s.Aggregation.ServerLr, s.Aggregation.Beta1 = "fedyogi", 0.1, 1
		}, "aggregation.beta1 is 1: it must be a finite number in [0, 1)"},
		{"beta2", func(s *pb.JobSpec) {
			s.Aggregation.Strategy, s.Aggregation.ServerLr, s.Aggregation.Beta2 = "fedyogi", 0.1, inf
		}, "aggregation.beta2 is +Inf"},
		{"beta2 with adagrad", func(s *pb.JobSpec) { s.Aggregation.Strategy, s.Aggregation.Beta2 = "fedadagrad", 0.99 }, "aggregation.beta2 is 0.99 but strategy fedadagrad does not use it"},
		{"tau", func(s *pb.JobSpec) { s.Aggregation.Strategy, s.Aggregation.Tau = "fedadam", nan }, "aggregation.tau is NaN"},
		{"tau unused", func(s *pb.JobSpec) { s.Aggregation.Tau = 1e-3 }, "aggregation.tau is 0.001 but strategy fedavg does not use it"},
		{"trim fraction", func(s *pb.JobSpec) {
			s.Aggregation.Strategy, s.Aggregation.TrimFraction, s.Privacy.SecureAggregation = "trimmed-mean", 0.5, "none"
		}, "aggregation.trim_fraction is 0.5: it must be a finite number in (0, 0.5)"},
		{"prox mu", func(s *pb.JobSpec) { s.Aggregation.Strategy, s.Aggregation.ProxMu = "fedprox", nan }, "aggregation.prox_mu is NaN"},
		{"prox mu unused", func(s *pb.JobSpec) { s.Aggregation.ProxMu = 0.01 }, "aggregation.prox_mu is 0.01 but strategy fedavg does not use it"},
		{"local epochs", func(s *pb.JobSpec) { s.Training.LocalEpochs = 1 << 31 }, "training.local_epochs is 2147483648: at most 100"},
		{"local steps", func(s *pb.JobSpec) { s.Training.LocalEpochs, s.Training.LocalSteps = 0, 1<<31 }, "training.local_steps is 2147483648: at most 100000"},
		{"epochs and steps", func(s *pb.JobSpec) { s.Training.LocalSteps = 5 }, "training.local_epochs is 1 and training.local_steps is 5: set one of them"},
		{"neither epochs nor steps", func(s *pb.JobSpec) { s.Training.LocalEpochs = 0 }, "both 0"},
		{"batch size zero", func(s *pb.JobSpec) { s.Training.BatchSize = 0 }, "training.batch_size is 0: at least 1"},
		{"batch size", func(s *pb.JobSpec) { s.Training.BatchSize = math.MaxUint32 }, "training.batch_size is 4294967295: at most 1024"},
		{"optimizer", func(s *pb.JobSpec) { s.Training.Optimizer = "lion" }, `training.optimizer is "lion"`},
		{"learning rate NaN", func(s *pb.JobSpec) { s.Training.LearningRate = nan }, "training.learning_rate is NaN: it must be a finite number in (0, 10]"},
		{"learning rate zero", func(s *pb.JobSpec) { s.Training.LearningRate = 0 }, "training.learning_rate is 0"},
		{"momentum NaN", func(s *pb.JobSpec) { s.Training.Optimizer, s.Training.Momentum = "sgd", nan }, "training.momentum is NaN: it must be a finite number in [0, 1)"},
		{"momentum with adam", func(s *pb.JobSpec) { s.Training.Momentum = 0.9 }, `training.momentum is 0.9 but optimizer "adam" does not use it`},
		{"clip norm NaN", func(s *pb.JobSpec) { s.Training.ClipNorm = nan }, "training.clip_norm is NaN: it must be a finite number in [0, 1e+06]"},
		{"clip norm negative", func(s *pb.JobSpec) { s.Training.ClipNorm = -1 }, "training.clip_norm is -1"},
		{"class weighting", func(s *pb.JobSpec) { s.Training.ClassWeighting = "inverse" }, `training.class_weighting is "inverse"`},
		{"epsilon without a level", func(s *pb.JobSpec) { s.Privacy.Epsilon = 8 }, `privacy.epsilon is 8 but privacy.level is "" (differential privacy off): ` +
			"set privacy.level: record (DP-SGD at every site) or site (noise on each site's update), or remove privacy.example_clip/update_clip/adaptive_clip/epsilon/delta/noise_multiplier"},
		{"example clip with level none", func(s *pb.JobSpec) { s.Privacy.Level, s.Privacy.ExampleClip = "none", 1 }, `privacy.example_clip is 1 but privacy.level is "none"`},
		{"delta NaN without a level", func(s *pb.JobSpec) { s.Privacy.Delta = nan }, "privacy.delta is NaN but privacy.level"},
		{"noise multiplier without a level", func(s *pb.JobSpec) { s.Privacy.NoiseMultiplier = -1 }, "privacy.noise_multiplier is -1 but privacy.level"},
		{"level", func(s *pb.JobSpec) { s.Privacy.Level = "sites" }, `privacy.level is "sites": use record (DP-SGD at every site), site (noise on each site's update) or none`},
		{"update clip without a level", func(s *pb.JobSpec) { s.Privacy.UpdateClip = 1 }, "privacy.update_clip is 1 but privacy.level"},
		{"quantile without a level", func(s *pb.JobSpec) { s.Privacy.AdaptiveClipQuantile = 0.5 }, "privacy.adaptive_clip.quantile is 0.5 but privacy.level"},
		{"update clip with record", func(s *pb.JobSpec) { recordDP(s); s.Privacy.UpdateClip = 1 }, "privacy.update_clip is 1 but privacy.level is record"},
		{"example clip with site", func(s *pb.JobSpec) { siteDP(s); s.Privacy.ExampleClip = 1 }, "privacy.example_clip is 1 but privacy.level is site"},
		{"site without clip", func(s *pb.JobSpec) { siteDP(s); s.Privacy.UpdateClip = 0 }, "privacy.update_clip is 0: it must be a finite number in (0, 1e+06]"},
		{"site clip NaN", func(s *pb.JobSpec) { siteDP(s); s.Privacy.UpdateClip = nan }, "privacy.update_clip is NaN"},
		{"site without delta", func(s *pb.JobSpec) { siteDP(s); s.Privacy.Delta = 0 }, "privacy.delta is 0"},
		{"site without noise", func(s *pb.JobSpec) { siteDP(s); s.Privacy.Epsilon = 0 }, "privacy.level is site but neither privacy.noise_multiplier nor privacy.epsilon"},
		{"site with median", func(s *pb.JobSpec) {
			siteDP(s)
			s.Privacy.SecureAggregation, s.Aggregation.Strategy = "none", "median"
		}, `aggregation.strategy "median" with privacy.level site`},
		{"site with trimmed mean", func(s *pb.JobSpec) {
			siteDP(s)
			s.Privacy.SecureAggregation, s.Aggregation.Strategy, s.Aggregation.TrimFraction = "none", "trimmed-mean", 0.2
		}, `aggregation.strategy "trimmed-mean" with privacy.level site`},
		{"adaptive lr without quantile", func(s *pb.JobSpec) { siteDP(s); s.Privacy.AdaptiveClipLr = 0.2 }, "privacy.adaptive_clip.quantile is not"},
		{"adaptive quantile 1", func(s *pb.JobSpec) { adaptiveDP(s); s.Privacy.AdaptiveClipQuantile = 1 }, "privacy.adaptive_clip.quantile is 1: it must be a finite number in (0, 1)"},
		{"adaptive lr negative", func(s *pb.JobSpec) { adaptiveDP(s); s.Privacy.AdaptiveClipLr = -0.2 }, "privacy.adaptive_clip.lr is -0.2"},
		{"adaptive count noise too small", func(s *pb.JobSpec) {
			adaptiveDP(s)
			s.Privacy.Epsilon, s.Privacy.NoiseMultiplier, s.Privacy.AdaptiveClipCountNoise = 0, 1, 0.5
		}, "privacy.adaptive_clip.count_noise 0.5 leaves no noise for the update: the count's noise must exceed half the round's noise multiplier 1"},
		{"adaptive count noise too small for the planned noise", func(s *pb.JobSpec) {
			adaptiveDP(s)
			s.Privacy.AdaptiveClipCountNoise = 0.1
		}, "privacy.adaptive_clip.count_noise 0.1 leaves no noise for the update"},
		{"record without clip", func(s *pb.JobSpec) { recordDP(s); s.Privacy.ExampleClip = 0 }, "privacy.example_clip is 0: it must be a finite number in (0, 1e+06]"},
		{"record clip NaN", func(s *pb.JobSpec) { recordDP(s); s.Privacy.ExampleClip = nan }, "privacy.example_clip is NaN"},
		{"record clip Inf", func(s *pb.JobSpec) { recordDP(s); s.Privacy.ExampleClip = inf }, "privacy.example_clip is +Inf"},
		{"record without delta", func(s *pb.JobSpec) { recordDP(s); s.Privacy.Delta = 0 }, "privacy.delta is 0: it must be a finite number in (0, 0.001]"},
		{"record delta too large", func(s *pb.JobSpec) { recordDP(s); s.Privacy.Delta = 0.01 }, "privacy.delta is 0.01: it must be a finite number in (0, 0.001]"},
		{"record without noise or epsilon", func(s *pb.JobSpec) { recordDP(s); s.Privacy.Epsilon = 0 }, "neither privacy.noise_multiplier nor privacy.epsilon is set"},
		{"record with noise and epsilon", func(s *pb.JobSpec) { recordDP(s); s.Privacy.NoiseMultiplier = 1 }, "privacy.noise_multiplier is 1 and privacy.epsilon is 2: set one of them"},
		{"record epsilon negative", func(s *pb.JobSpec) { recordDP(s); s.Privacy.Epsilon = -1 }, "privacy.epsilon is -1: it must be a finite number in (0, 100]"},
		{"record epsilon too large", func(s *pb.JobSpec) { recordDP(s); s.Privacy.Epsilon = 101 }, "privacy.epsilon is 101"},
		{"record epsilon NaN", func(s *pb.JobSpec) { recordDP(s); s.Privacy.Epsilon = nan }, "privacy.epsilon is NaN"},
		{"record noise too large", func(s *pb.JobSpec) { recordDP(s); s.Privacy.Epsilon, s.Privacy.NoiseMultiplier = 0, 101 }, "privacy.noise_multiplier is 101: it must be a finite number in (0, 100]"},
		{"record noise negative", func(s *pb.JobSpec) { recordDP(s); s.Privacy.Epsilon, s.Privacy.NoiseMultiplier = 0, -1 }, "privacy.noise_multiplier is -1"},
		{"record noise Inf", func(s *pb.JobSpec) { recordDP(s); s.Privacy.Epsilon, s.Privacy.NoiseMultiplier = 0, inf }, "privacy.noise_multiplier is +Inf"},
		{"secure aggregation", func(s *pb.JobSpec) { s.Privacy.SecureAggregation = "" }, `privacy.secure_aggregation is "": use mhe or none`},
		{"threshold one", func(s *pb.JobSpec) { s.Privacy.Threshold = 1 }, "privacy.threshold 1 would let any single site decrypt"},
		{"threshold", func(s *pb.JobSpec) { s.Privacy.Threshold = math.MaxUint32 }, "privacy.threshold 4294967295 exceeds min_sites 2"},
		{"threshold without mhe", func(s *pb.JobSpec) { s.Privacy.SecureAggregation, s.Privacy.Threshold = "none", 2 }, "privacy.threshold is 2 but secure_aggregation is none"},
		{"he params without mhe", func(s *pb.JobSpec) { s.Privacy.SecureAggregation, s.Privacy.HeParams = "none", "n12-q60" }, `privacy.he_params is "n12-q60" but secure_aggregation is none`},
		{"he params", func(s *pb.JobSpec) { s.Privacy.HeParams = "N12 Q60" }, `privacy.he_params is "N12 Q60": a parameter set name`},
		{"he params long", func(s *pb.JobSpec) { s.Privacy.HeParams = strings.Repeat("n", 65) }, "at most 64 bytes"},
		{"site name", func(s *pb.JobSpec) { s.Sites[1] = "City General" }, `sites[1] is "City General": a site name is 1 to 63 lower-case letters`},
		{"validation site name", func(s *pb.JobSpec) { s.ValidationSites[0] = "-north" }, `validation_sites[0] is "-north"`},
		{"duplicate site", func(s *pb.JobSpec) { s.Sites = append(s.Sites, "st-marys") }, `sites lists site "st-marys" twice`},
		{"duplicate validation site", func(s *pb.JobSpec) { s.ValidationSites = append(s.ValidationSites, "north") }, `validation_sites lists site "north" twice`},
		{"site in both lists", func(s *pb.JobSpec) { s.ValidationSites = append(s.ValidationSites, "city-general") }, `site "city-general" is listed both for training and for validation`},
		{"too many sites", func(s *pb.JobSpec) { s.Sites = manySites(257) }, "sites lists 257 sites: at most 256"},
		{"too many validation sites", func(s *pb.JobSpec) { s.ValidationSites = manySites(300) }, "validation_sites lists 300 sites: at most 256"},
		{"too many key holders", func(s *pb.JobSpec) {
			s.Sites, s.ValidationSites = manySites(200), manySites(260)[200:]
		}, "260 training and validation sites hold key shares under secure aggregation: at most 256"},
		{"fewer sites than min_sites", func(s *pb.JobSpec) { s.MinSites = 3 }, "2 sites listed but min_sites is 3"},
		{"pipeline size", func(s *pb.JobSpec) { s.Pipeline.Width = math.MaxUint32 }, "pipeline output 1x28x4294967295"},
		{"pipeline channels", func(s *pb.JobSpec) { s.Pipeline.Channels = 3 }, "must match the model input 1x28x28"},
		{"resample", func(s *pb.JobSpec) { s.Pipeline.Resample = "cubic" }, `pipeline: invalid imaging pipeline: resample must be area, bilinear or reduced-area, got "cubic"`},
		{"normalise", func(s *pb.JobSpec) { s.Pipeline.Normalise = "ct-window:nan:nan" }, "is not a number"},
		{"denoise", func(s *pb.JobSpec) { s.Pipeline.Denoise = "median:4" }, `denoise "median:4"`},
		{"contrast", func(s *pb.JobSpec) { s.Pipeline.Contrast = "clahe:100:2" }, `contrast "clahe:100:2"`},
		{"pipeline string long", func(s *pb.JobSpec) { s.Pipeline.Contrast = strings.Repeat("c", 1000) }, "pipeline.contrast is \"" + strings.Repeat("c", 64) + "\"… (1000 bytes): at most 64 bytes"},
	}
	if err := Validate(valid(t)); err != nil {
		t.Fatalf("the base spec is invalid: %v", err)
	}
	for _, c := range cases {
		s := valid(t)
		c.edit(s)
		err := Validate(s)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// recordDP turns on record-level DP with a target epsilon of 2.
func recordDP(s *pb.JobSpec) {
	s.Privacy.Level, s.Privacy.ExampleClip, s.Privacy.Delta, s.Privacy.Epsilon = "record", 1, 1e-5, 2
}

// siteDP turns on site-level DP with a target epsilon of 2.
func siteDP(s *pb.JobSpec) {
	s.Privacy.Level, s.Privacy.UpdateClip, s.Privacy.Delta, s.Privacy.Epsilon = "site", 1, 1e-5, 2
}

// adaptiveDP turns on site-level DP with adaptive clipping.
func adaptiveDP(s *pb.JobSpec) {
	siteDP(s)
	s.Privacy.AdaptiveClipQuantile, s.Privacy.AdaptiveClipLr, s.Privacy.AdaptiveClipCountNoise = 0.5, 0.2, 5
}

// TestValidateRecordDP: the accepted forms of record-level DP.
func TestValidateRecordDP(t *testing.T) {
	cases := []struct {
		name string
		edit func(*pb.JobSpec)
	}{
		{"epsilon", recordDP},
		{"noise multiplier", func(s *pb.JobSpec) { recordDP(s); s.Privacy.Epsilon, s.Privacy.NoiseMultiplier = 0, 1.1 }},
		{"largest delta and epsilon", func(s *pb.JobSpec) { recordDP(s); s.Privacy.Delta, s.Privacy.Epsilon = 1e-3, 100 }},
		{"without secure aggregation", func(s *pb.JobSpec) { recordDP(s); s.Privacy.SecureAggregation = "none" }},
		{"level none, nothing else", func(s *pb.JobSpec) { s.Privacy.Level = "none" }},
		{"site, epsilon", siteDP},
		{"site, noise multiplier, plaintext fedprox", func(s *pb.JobSpec) {
			siteDP(s)
			s.Privacy.Epsilon, s.Privacy.NoiseMultiplier, s.Privacy.SecureAggregation = 0, 1, "none"
			s.Aggregation.Strategy, s.Aggregation.ProxMu = "fedprox", 0.01
		}},
		{"site, adaptive clipping", adaptiveDP},
	}
	for _, c := range cases {
		s := valid(t)
		c.edit(s)
		if err := Validate(s); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func manySites(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "site-" + strings.Repeat("x", i%50) + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	return out
}

func TestValidateIncomplete(t *testing.T) {
	for _, s := range []*pb.JobSpec{nil, {}, {Model: &pb.ModelSpec{}}} {
		if err := Validate(s); err == nil || !strings.Contains(err.Error(), "apply defaults") {
			t.Errorf("%v: got %v", s, err)
		}
	}
}

// TestValidateWithLimits: the operator's limits replace the defaults, and a
// zero limit means the default.
func TestValidateWithLimits(t *testing.T) {
	big := func(t *testing.T) *pb.JobSpec {
		s := valid(t)
		s.Model.BaseWidth = 1024 // about 86 million parameters
		return s
	}
	cases := []struct {
		name string
		spec func(*testing.T) *pb.JobSpec
		lim  Limits
		want string // "" means valid
	}{
		{"default limits refuse a big model", big, Limits{}, "at most 50000000"},
		{"raised limit accepts it", big, Limits{MaxModelParams: 100_000_000}, ""},
		{"lowered limit refuses the default model", valid, Limits{MaxModelParams: 1000}, "parameters (model.base_width 16, model.classes 2): at most 1000"},
		{"default limits refuse resnet34's activations at batch 1024", func(t *testing.T) *pb.JobSpec {
			s := valid(t)
			s.Model = &pb.ModelSpec{Arch: ArchResNet34, Channels: 3, Height: 224, Width: 224, Classes: 2, BaseWidth: 64}
			s.Pipeline.Channels, s.Pipeline.Height, s.Pipeline.Width = 3, 224, 224
			s.Training.BatchSize = 1024
			return s
		}, Limits{}, "model resnet34: training at batch size 1024 needs 96.7 GiB (activations 96.3 GiB, weights and optimiser state 406.0 MiB), over the limit of 64.0 GiB"},
		{"a lowered memory limit names its key", valid, Limits{MaxTrainingBytes: 1 << 20}, "over the limit of 1.0 MiB; make the model or training.batch_size smaller, " +
			"or ask the coordinator's operator to raise limits.max_training_memory in coordinator.yaml"},
		{"a lowered FLOPs limit", valid, Limits{MaxFLOPsPerExample: 1e6}, "one example's forward pass takes 0.0133 GFLOPs, over the limit of 0.001; " +
			"make the model or training.batch_size smaller, or ask the coordinator's operator to raise limits.max_gflops_per_example"},
		{"fewer sites", valid, Limits{MaxSites: 1}, "sites lists 2 sites: at most 1"},
		{"fewer rounds", valid, Limits{MaxRounds: 5}, "rounds is 10: at most 5"},
		{"shorter deadline", valid, Limits{MaxRoundDeadline: time.Minute}, "round_deadline (seconds) is 600: it must be a finite number in [1, 60]"},
	}
	for _, c := range cases {
		err := ValidateWithLimits(c.spec(t), c.lim)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func TestQuote(t *testing.T) {
	cases := []struct{ in, want string }{
		{"short", `"short"`},
		{strings.Repeat("a", 64), `"` + strings.Repeat("a", 64) + `"`},
		{strings.Repeat("a", 65), `"` + strings.Repeat("a", 64) + `"… (65 bytes)`},
		// A multi-byte character is not cut in half.
		{strings.Repeat("a", 62) + "é", `"` + strings.Repeat("a", 62) + `é"`},
		{strings.Repeat("a", 63) + "é", `"` + strings.Repeat("a", 63) + `"… (65 bytes)`},
	}
	for _, c := range cases {
		if got := quote(c.in); got != c.want {
			t.Errorf("quote(%d bytes) = %s, want %s", len(c.in), got, c.want)
		}
	}
}

// TestValidateReportsAll: every problem is reported at once, so an admin
// fixes a job file in one pass.
func TestValidateReportsAll(t *testing.T) {
	s := valid(t)
	s.Model.Classes = math.MaxUint32
	s.RoundDeadlineSeconds = math.NaN()
	s.StragglerCutoffSeconds = -1
	s.Training.LearningRate = math.Inf(-1)
	s.Privacy.Epsilon = 3
	s.Sites = append(s.Sites, "st-marys")
	err := Validate(s)
	for _, want := range []string{"model.classes", "round_deadline", "straggler_cutoff", "training.learning_rate", "privacy.epsilon", `"st-marys" twice`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}
