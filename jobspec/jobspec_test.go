package jobspec

import (
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

func TestParseErrors(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"nmae: typo\n", "field nmae not found"},
		{"round_deadline: soon\n", "is not a duration"},
		{"model: {arch: vit}\n", "model.arch \"vit\""},
		{"model: {height: 30}\n", "multiples of 4"},
		{"model: {norm: batch}\n", "model.norm \"batch\""},
		{"aggregation: {strategy: median}\n", "cannot run with secure_aggregation mhe"},
		{"privacy: {threshold: 1}\n", "any single site decrypt"},
		{"min_sites: 2\nprivacy: {threshold: 3}\n", "exceeds min_sites"},
		{"privacy: {secure_aggregation: maybe}\n", "use mhe (default) or none"},
		{"round_deadline: 1m\nstraggler_cutoff: 2m\n", "must not exceed round_deadline"},
		{"sites: [a]\nmin_sites: 2\n", "1 sites listed but min_sites is 2"},
		{"sites: [a, b]\nvalidation_sites: [b]\n", "both for training and for validation"},
		{"training: {optimizer: rmsprop}\n", "use sgd or adam"},
		{"training: {class_weighting: inverse}\n", "use none or balanced"},
		{"pipeline: {width: 64}\n", "must match the model input"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error containing %q", c.yaml, err, c.want)
		}
	}
}

// TestModelSpecNorm: new jobs get GroupNorm; a stored pre-upgrade cnn job
// without model.norm keeps the plain network it was created with.
func TestModelSpecNorm(t *testing.T) {
	s, err := Parse([]byte("name: n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := ModelSpec(s).Norm; got != "group" {
		t.Errorf("new job: norm %q, want group", got)
	}
	s.Model.Norm = ""
	if got := ModelSpec(s).Norm; got != "none" {
		t.Errorf("stored job without norm: %q, want none (concord.cnn/1)", got)
	}
}
