package extrainer

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/concord-fl/concord/learning"
)

// TestSettingsParityThroughShards: the Go trainer and trainer.py, from the
// same weights on the same data (sent as shards), with every deterministic
// setting at once (local steps, SGD momentum, FedProx μ, class weights;
// full batches, so that shuffling cannot matter; no augmentation), end at
// the same weights. Costs about 3 s.
func TestSettingsParityThroughShards(t *testing.T) {
	c := dial(t, trainer(t))
	m, err := learning.New(learning.Spec{Arch: "cnn", Channels: 1, Height: 28, Width: 28, Classes: 2, BaseWidth: 8}, 6)
	if err != nil {
		t.Fatal(err)
	}
	w0 := perturbed(t, m)
	const n = 32
	ds := blobData(n, 28, 28, 9)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	shards, err := Shards(ds)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SyncShards(ctx, shards); err != nil {
		t.Fatal(err)
	}
	res, err := c.Train(ctx, "parity", 1, m.Layout().JSON(), w0, Settings{Steps: 3, BatchSize: n, Optimizer: "sgd", LR: 0.1,
		Momentum: 0.5, ProxMu: 0.5, ClassWeights: []float64{1, 2}, Shards: []string{shards[0].ID}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Train(ctx, ds, learning.TrainConfig{Steps: 3, BatchSize: n, Optimizer: "sgd", LR: 0.1, Momentum: 0.5,
		ProxMu: 0.5, ClassWeights: []float32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	goW := m.Weights()
	worst, moved := weightGap(goW, res.Weights, w0)
	t.Logf("largest weight change %.3g, largest Go/PyTorch difference %.2g", moved, worst)
	if moved < 1e-3 {
		t.Fatalf("training moved no weight by more than %.2g; the comparison would prove nothing", moved)
	}
	if worst > 1e-3*moved {
		t.Errorf("after 3 steps Go and PyTorch weights differ by up to %.2g (largest change %.3g)", worst, moved)
	}
}

// TestUNetParityThroughShards: a unet job's round on trainer.py (shards
// with masks, Dice + BCE loss, FedProx, two full-batch SGD steps with
// momentum) ends at the Go U-Net's weights; with augmentation it ends
// elsewhere. Costs about 4 s.
func TestUNetParityThroughShards(t *testing.T) {
	c := dial(t, trainer(t))
	m, err := learning.New(learning.Spec{Arch: "unet", Channels: 1, Height: 16, Width: 16, BaseWidth: 4}, 7)
	if err != nil {
		t.Fatal(err)
	}
	w0 := m.Weights()
	const n = 4
	ds := blobData(n, 16, 16, 5)
	ds.Y, ds.Masks = nil, make([]float32, n*16*16)
	for i, v := range ds.X {
		if v > 0 { // the bright squares are the structure
			ds.Masks[i] = 1
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	shards, err := Shards(ds)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SyncShards(ctx, shards); err != nil {
		t.Fatal(err)
	}
	res, err := c.Train(ctx, "unet-parity", 1, m.Layout().JSON(), w0, Settings{Steps: 2, BatchSize: n, Optimizer: "sgd", LR: 0.05,
		Momentum: 0.5, ProxMu: 0.1, Shards: []string{shards[0].ID}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Metrics["dice"]; !ok {
		t.Errorf("metrics %v: want dice", res.Metrics)
	}
	if _, err := m.Train(ctx, ds, learning.TrainConfig{Steps: 2, BatchSize: n, Optimizer: "sgd", LR: 0.05, Momentum: 0.5, ProxMu: 0.1}); err != nil {
		t.Fatal(err)
	}
	goW := m.Weights()
	worst, moved := weightGap(goW, res.Weights, w0)
	t.Logf("largest weight change %.3g, largest Go/PyTorch difference %.2g", moved, worst)
	if moved < 1e-4 {
		t.Fatalf("training moved no weight by more than %.2g; the comparison would prove nothing", moved)
	}
	if worst > 1e-3*moved {
		t.Errorf("after 2 steps Go and PyTorch U-Net weights differ by up to %.2g (largest change %.3g)", worst, moved)
	}

	// Augmentation (images and masks moved together) changes the update.
	aug, err := c.Train(ctx, "unet-parity", 1, m.Layout().JSON(), w0, Settings{Steps: 2, BatchSize: n, Optimizer: "sgd", LR: 0.05,
		Momentum: 0.5, ProxMu: 0.1, Augment: true, Shards: []string{shards[0].ID}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var diff float64
	for i := range aug.Weights {
		diff = math.Max(diff, math.Abs(float64(aug.Weights[i]-res.Weights[i])))
	}
	if diff < 1e-3*moved {
		t.Errorf("augmentation moved the U-Net's update by only %.2g (largest change %.3g)", diff, moved)
	}
}
