package siteagent

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/concord-fl/concord/extrainer"
	"github.com/concord-fl/concord/jobspec"
)

// TestExternalRefusesUnsupported: settings the trainer protocol cannot carry
// fail the task with the option's name, before anything reaches the trainer
// (the trainer here is not even connected).
func TestExternalRefusesUnsupported(t *testing.T) {
	cases := []struct {
		yaml string
		want string // "" means supported
	}{
		{"training: {local_epochs: 2}\n", ""},
		{"training: {local_epochs: 0, local_steps: 50}\n", "training.local_steps (50) is not supported by the external trainer"},
		{"training: {class_weighting: balanced}\n", "training.class_weighting balanced is not supported by the external trainer"},
	}
	for _, c := range cases {
		spec, err := jobspec.Parse([]byte("name: ext\n" + c.yaml))
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		_, err = externalSettings(spec, 1, nil)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.yaml, err)
		case c.want != "" && (!errors.Is(err, ErrExternalUnsupported) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: got %v, want %v containing %q", c.yaml, err, ErrExternalUnsupported, c.want)
		}
		if c.want == "" {
			continue
		}
		var tr ExternalTrainer // no connection: the refusal must come first
		if _, err := tr.Train(context.Background(), TrainRequest{Spec: spec}); !errors.Is(err, ErrExternalUnsupported) {
			t.Errorf("%q: Train returned %v, want %v", c.yaml, err, ErrExternalUnsupported)
		}
	}
}

// TestExternalSettings: every training setting the trainer protocol has a
// field for reaches it.
func TestExternalSettings(t *testing.T) {
	spec, err := jobspec.Parse([]byte("name: ext\naggregation: {strategy: fedprox, prox_mu: 0.5}\n" +
		"training: {local_epochs: 3, batch_size: 7, optimizer: sgd, learning_rate: 0.2, momentum: 0.8, augment: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := externalSettings(spec, -9, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Epochs != 3 || s.BatchSize != 7 || s.Optimizer != "sgd" || s.LR != 0.2 || s.Momentum != 0.8 || !s.Augment ||
		s.ProxMu != 0.5 || s.Seed != -9 || s.Shards != nil || s.ClassWeights != nil || s.DP != nil {
		t.Errorf("settings %+v", s)
	}

	// With record-level DP the trainer gets q, C, σ and the steps the
	// agent accounts for; local_steps is then supported (they are the
	// steps of the round).
	spec, err = jobspec.Parse([]byte("name: ext\ntraining: {local_epochs: 0, local_steps: 30, batch_size: 16}\n" +
		"privacy: {level: record, example_clip: 0.7, delta: 1e-5, noise_multiplier: 1.3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := jobspec.DPConfig(spec, 64)
	if err != nil {
		t.Fatal(err)
	}
	s, err = externalSettings(spec, 1, d)
	if err != nil {
		t.Fatal(err)
	}
	if s.DP == nil || *s.DP != (extrainer.DPSettings{SampleRate: 0.25, Clip: 0.7, NoiseMultiplier: 1.3, Steps: 30}) {
		t.Errorf("DP settings %+v, want q 0.25, clip 0.7, σ 1.3, 30 steps", s.DP)
	}
}
