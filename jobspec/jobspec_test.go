package jobspec

import (
	"os"
	"strings"
	"testing"
)

func TestParseDefaults(t *testing.T) {
	s, err := Parse([]byte("name: defaults\n"))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case s.Privacy.SecureAggregation != "mhe":
		t.Errorf("secure aggregation defaults to %q, want mhe (safe default)", s.Privacy.SecureAggregation)
	case s.Rounds != 10 || s.MinSites != 2 || s.RoundDeadlineSeconds != 600 || s.StragglerCutoffSeconds != 300:
		t.Errorf("round defaults: %d rounds, %d sites, %gs deadline, %gs cutoff", s.Rounds, s.MinSites, s.RoundDeadlineSeconds, s.StragglerCutoffSeconds)
	case s.Aggregation.Strategy != "fedavg" || s.Training.Optimizer != "adam" || s.Training.LearningRate != 1e-3:
		t.Errorf("training defaults: %s %s %g", s.Aggregation.Strategy, s.Training.Optimizer, s.Training.LearningRate)
	case s.Model.Norm != "group":
		t.Errorf("model.norm defaults to %q, want group", s.Model.Norm)
	case s.Pipeline.Width != s.Model.Width || s.Pipeline.Normalise != "auto":
		t.Errorf("pipeline defaults: %+v", s.Pipeline)
	}
}

func TestParseFull(t *testing.T) {
	s, err := Parse([]byte(`name: full
model: {arch: cnn, channels: 1, height: 64, width: 64, classes: 3, base_width: 8}
rounds: 4
min_sites: 3
round_deadline: 2m
straggler_cutoff: 90s
aggregation: {strategy: fedyogi, server_lr: 0.05}
training: {local_epochs: 2, batch_size: 16, optimizer: sgd, learning_rate: 0.1, class_weighting: balanced, clip_norm: 5}
privacy: {secure_aggregation: mhe, threshold: 2}
sites: [a, b, c]
validation_sites: [d]
seed: 9
pipeline: {width: 64, height: 64, channels: 1, normalise: "percentile:0.5:99.5", denoise: "median:3", contrast: "clahe:8:2"}
`))
	if err != nil {
		t.Fatal(err)
	}
	if s.RoundDeadlineSeconds != 120 || s.StragglerCutoffSeconds != 90 || s.Aggregation.ServerLr != 0.05 || s.Aggregation.Beta2 != 0.99 ||
		s.Training.Momentum != 0.9 || s.Privacy.Threshold != 2 || len(s.Sites) != 3 || s.Pipeline.Denoise != "median:3" {
		t.Errorf("parsed %+v", s)
	}
}

// TestParseErrors: job files that must be refused, each error naming the
// field by its job-file name. YAML's .nan and .inf reach the floats.
func TestParseErrors(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"nmae: typo\n", "field nmae not found"},
		{"round_deadline: soon\n", "is not a duration"},
		{"model: {arch: vit}\n", `model.arch is "vit": use cnn`},
		{"model: {height: 30}\n", "model.height is 30: a multiple of 4 between 28 and 224"},
		{"model: {norm: batch}\n", `model.norm is "batch": use group or none`},
		{"model: {classes: 4294967295}\n", "model.classes is 4294967295: at most 1000"},
		{"model: {classes: 4294967296}\n", "cannot unmarshal"},
		{"model: {base_width: 1024, height: 224, width: 224, channels: 3}\n", "at most 50000000"},
		{"aggregation: {strategy: median}\n", "cannot run with secure_aggregation mhe"},
		{"privacy: {threshold: 1}\n", "any single site decrypt"},
		{"min_sites: 2\nprivacy: {threshold: 3}\n", "exceeds min_sites"},
		{"privacy: {secure_aggregation: maybe}\n", `privacy.secure_aggregation is "maybe": use mhe or none`},
		{"round_deadline: 1m\nstraggler_cutoff: 2m\n", "must not exceed round_deadline"},
		{"round_deadline: -1m\n", "round_deadline (seconds) is -60"},
		{"round_deadline: 9000h\n", "round_deadline (seconds) is 3.24e+07: it must be a finite number in [1, 604800]"},
		{"sites: [a]\nmin_sites: 2\n", "1 sites listed but min_sites is 2"},
		{"sites: [a, b]\nvalidation_sites: [b]\n", `site "b" is listed both for training and for validation`},
		{"training: {optimizer: rmsprop}\n", `training.optimizer is "rmsprop": use sgd or adam`},
		{"training: {class_weighting: inverse}\n", "use none or balanced"},
		{"pipeline: {width: 64}\n", "must match the model input"},
		{"training: {learning_rate: .nan}\n", "training.learning_rate is NaN"},
		{"training: {learning_rate: .inf}\n", "training.learning_rate is +Inf"},
		{"training: {optimizer: sgd, momentum: .nan}\n", "training.momentum is NaN"},
		{"training: {clip_norm: .nan}\n", "training.clip_norm is NaN"},
		{"training: {clip_norm: -.inf}\n", "training.clip_norm is -Inf"},
		{"privacy: {epsilon: .inf}\n", `privacy.epsilon is +Inf but privacy.level is "" (differential privacy off)`},
		{"privacy: {level: record, example_clip: 1, delta: 1e-5, epsilon: .inf}\n", "privacy.epsilon is +Inf: it must be a finite number in (0, 100]"},
		{"privacy: {level: record, example_clip: 1, delta: .nan, epsilon: 1}\n", "privacy.delta is NaN: it must be a finite number in (0, 0.001]"},
		{"privacy: {noise_multiplier: 1.1}\n", "privacy.noise_multiplier is 1.1 but privacy.level"},
		{"privacy: {level: Record}\n", `privacy.level is "Record": use record (DP-SGD at every site), site (noise on each site's update) or none`},
		{"aggregation: {strategy: fedadam, server_lr: .nan}\n", "aggregation.server_lr is NaN"},
		{"privacy: {level: site, update_clip: 1, delta: 1e-5, epsilon: 2, adaptive_clip: {quantile: 0.5, lr: .inf}}\n", "privacy.adaptive_clip.lr is +Inf"},
		{"privacy: {level: site, update_clip: 1, delta: 1e-5, epsilon: 2, adaptive_clip: {quantil: 0.5}}\n", "quantil"},
		{"aggregation: {strategy: trimmed-mean, trim_fraction: .inf}\nprivacy: {secure_aggregation: none}\n", "aggregation.trim_fraction is +Inf"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error containing %q", c.yaml, err, c.want)
		}
	}
}

// TestParseLongValue: an offending string is quoted back at most 64 bytes
// long, whatever its length.
func TestParseLongValue(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	for _, yaml := range []string{
		"name: " + long + "\n",
		"model: {arch: " + long + "}\n",
		"round_deadline: " + long + "\n",
		"sites: [" + long + "]\n",
		"privacy: {he_params: " + long + "}\n",
		"pipeline: {normalise: " + long + "}\n",
		"aggregation: {strategy: " + long + "}\n",
		"model: {classes: " + long + "}\n",
		long + ": 1\n",
		"training: {" + long + ": 1}\n",
	} {
		_, err := Parse([]byte(yaml))
		if err == nil {
			t.Errorf("%.40q…: accepted", yaml)
			continue
		}
		if len(err.Error()) > 1000 {
			t.Errorf("%.40q…: error is %d bytes long: %.200s…", yaml, len(err.Error()), err)
		}
	}
}

// TestExampleJobFile: the example shipped for admins passes the rules.
func TestExampleJobFile(t *testing.T) {
	for _, f := range []string{"job.yaml", "graph-unet.yaml"} {
		data, err := os.ReadFile("../deploy/examples/" + f)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Parse(data)
		if err != nil {
			t.Errorf("deploy/examples/%s: %v", f, err)
		}
		if m, err := ParseModel(data); err != nil || m.Arch != s.GetModel().GetArch() {
			t.Errorf("deploy/examples/%s: model %v, %v", f, m, err)
		}
	}
	if _, err := ParseModel([]byte("rounds: 3\n")); err == nil || !strings.Contains(err.Error(), "no model: section") {
		t.Errorf("a job file without a model: %v", err)
	}
	if _, err := ParseModel([]byte("model: {arch: graph, layrs: []}\n")); err == nil || !strings.Contains(err.Error(), "layrs") {
		t.Errorf("a typo in the model: %v", err)
	}
}
