package siteagent

import (
	"testing"

	"github.com/concord-fl/concord/extrainer"
	"github.com/concord-fl/concord/jobspec"
)

// TestExternalSettings: every training setting of the job reaches the
// external trainer, local steps and balanced class weights (from the labels
// the agent sends) included.
func TestExternalSettings(t *testing.T) {
	spec, err := jobspec.Parse([]byte("name: ext\naggregation: {strategy: fedprox, prox_mu: 0.5}\n" +
		"training: {local_epochs: 3, batch_size: 7, optimizer: sgd, learning_rate: 0.2, momentum: 0.8, augment: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := externalSettings(spec, -9, []int{0, 1}, nil)
	if s.Epochs != 3 || s.Steps != 0 || s.BatchSize != 7 || s.Optimizer != "sgd" || s.LR != 0.2 || s.Momentum != 0.8 || !s.Augment ||
		s.ProxMu != 0.5 || s.Seed != -9 || s.Shards != nil || s.Dataset != "" || s.ClassWeights != nil || s.DP != nil {
		t.Errorf("settings %+v", s)
	}

	spec, err = jobspec.Parse([]byte("name: ext\ntraining: {local_epochs: 0, local_steps: 50, class_weighting: balanced}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s = externalSettings(spec, 1, []int{0, 0, 0, 1}, nil)
	// N/(K·count): 4/(2·3) and 4/(2·1).
	if s.Steps != 50 || len(s.ClassWeights) != 2 || float32(s.ClassWeights[0]) != float32(4.0/6) || s.ClassWeights[1] != 2 {
		t.Errorf("steps %d, class weights %v; want 50 and [0.667 2]", s.Steps, s.ClassWeights)
	}

	// With record-level DP the trainer gets q, C, σ and the steps the
	// agent accounts for, in place of local_steps.
	spec, err = jobspec.Parse([]byte("name: ext\ntraining: {local_epochs: 0, local_steps: 30, batch_size: 16}\n" +
		"privacy: {level: record, example_clip: 0.7, delta: 1e-5, noise_multiplier: 1.3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := jobspec.DPConfig(spec, 64)
	if err != nil {
		t.Fatal(err)
	}
	s = externalSettings(spec, 1, nil, d)
	if s.Steps != 0 || s.DP == nil || *s.DP != (extrainer.DPSettings{SampleRate: 0.25, Clip: 0.7, NoiseMultiplier: 1.3, Steps: 30}) {
		t.Errorf("steps %d, DP settings %+v, want q 0.25, clip 0.7, σ 1.3, 30 steps", s.Steps, s.DP)
	}
}
