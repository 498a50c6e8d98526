package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/concord-fl/concord/cmd/internal/cli"
	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/learning"
)

// TestMetrics are the test-split figures printed by Train.
type TestMetrics struct {
	AUC         float64 `json:"auc"`
	Accuracy    float64 `json:"accuracy"`
	Sensitivity float64 `json:"sensitivity,omitempty"`
	Specificity float64 `json:"specificity,omitempty"`
	F1          float64 `json:"f1,omitempty"`
}

// TrainReport is the final JSON line of `site-agent train --json`.
type TrainReport struct {
	Dataset      string      `json:"dataset"`
	Model        string      `json:"model"`
	Epochs       int         `json:"epochs,omitempty"`
	Steps        int         `json:"steps,omitempty"`
	BestEpoch    int         `json:"best_epoch,omitempty"`
	BestStep     int         `json:"best_step,omitempty"`
	ValAUC       float64     `json:"val_auc"`
	TrainSeconds float64     `json:"train_seconds"`
	SamplesPerS  float64     `json:"samples_per_s"`
	Seed         int64       `json:"seed"`
	Width        int         `json:"width"`
	Batch        int         `json:"batch"`
	LR           float64     `json:"lr"`
	Optimizer    string      `json:"optimizer"`
	Augment      bool        `json:"augment"`
	Balanced     bool        `json:"balanced"`
	LRDecay      string      `json:"lr_decay"`
	Norm         string      `json:"norm"`
	EMA          float64     `json:"ema"`
	Layout       string      `json:"layout"`
	Parameters   int         `json:"parameters"`
	LayoutHash   string      `json:"layout_hash"`
	Test         TestMetrics `json:"test"`
}

// train is `site-agent train --data PATH.npz [--steps N | --epochs N] [--json]`:
// it trains on the official train split, keeps the weights with the best
// validation AUC (checked once an epoch with --epochs, 100 times over a step
// budget), and reports test-split metrics. Budget, width, batch and
// augmentation not given on the command line come from learning.Defaults.
//
// With --model unet it instead trains the U-Net on CT slices and their DICOM
// SEG (--ct DIR --seg FILE) and reports Dice.
func train(c *cli.Command, args []string, stdout, stderr io.Writer) int {
	for i, a := range args {
		if a == "--model=unet" || a == "-model=unet" || (a == "--model" || a == "-model") && i+1 < len(args) && args[i+1] == "unet" {
			return trainSeg(c, args, stdout, stderr)
		}
	}
	fs := c.NewFlagSet(stderr)
	data := fs.String("data", "", "MedMNIST .npz file with train/val/test splits (required)")
	model := fs.String("model", "cnn", "model architecture: cnn, or unet (see --ct, --seg)")
	epochs := fs.Int("epochs", 0, "passes over the train split, instead of --steps [default: from the data, see --steps]")
	steps := fs.Int("steps", 0, "training budget in optimiser steps [default: the larger of 1800 steps and 15 epochs]")
	asJSON := fs.Bool("json", false, "print the result as one JSON line on stdout")
	batch := fs.Int("batch", 64, "mini-batch size [default: 32 below 1000 train images]")
	lr := fs.Float64("lr", 1e-3, "learning rate")
	seed := fs.Int64("seed", 1, "seed of initialisation, shuffling and augmentation")
	width := fs.Int("width", 24, "channels of the first stage [default: 24, see learning.Defaults]")
	opt := fs.String("optimizer", "adam", "adam or sgd")
	momentum := fs.Float64("momentum", 0.9, "SGD momentum")
	wd := fs.Float64("weight-decay", 0, "L2 weight decay")
	augment := fs.Bool("augment", false, "random flips, rotations, shifts and intensity jitter [default: off, see learning.Defaults]")
	balanced := fs.Bool("balanced", true, "weight classes inversely to their train-split frequency (--balanced=false to turn off)")
	decay := fs.String("lr-decay", "step", "learning-rate schedule: step (x0.1 at 50% and 75% of the epochs) or none")
	norm := fs.String("norm", "group", "normalisation after each 3x3 convolution: group (GroupNorm) or none")
	ema := fs.Float64("ema", 0.99, "decay of the moving average of the weights that is validated and kept (0 turns it off)")
	doTune := fs.Bool("tune", false, "search learning rate, width, batch, weight decay, augmentation, EMA and schedule by successive halving on validation AUC")
	budget := fs.Float64("budget", 600, "with --tune: wall seconds for the search")
	trials := fs.Int("tune-trials", 0, "with --tune: candidates at the first rung (the first is the no-flag recipe, the others drawn); 0: at least 6, and more while the search is projected to fit the budget")
	rung0 := fs.Int("tune-steps", 0, "with --tune: optimiser steps at the first rung (x3 at each later rung) [default: a third of the no-flag recipe's steps, so the last rung trains as long as it]")
	workers := fs.Int("tune-workers", 1, "with --tune: trials trained at once")
	pos, code, ok := c.Parse(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if code, ok := c.NoArgs(fs, pos, stderr); !ok {
		return code
	}
	if *data == "" {
		return c.Usagef(stderr, "--data is required (a MedMNIST .npz file)")
	}
	if *model != "cnn" {
		return c.Usagef(stderr, "model %q is not available; use --model cnn (or --model unet with --ct and --seg)", *model)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case set["epochs"] && set["steps"]:
		return c.Usagef(stderr, "--epochs and --steps are both given: set one training budget")
	case set["epochs"] && *epochs < 1:
		return c.Usagef(stderr, "--epochs must be at least 1")
	case set["steps"] && *steps < 1:
		return c.Usagef(stderr, "--steps must be at least 1")
	}
	if *ema < 0 || *ema >= 1 {
		return c.Usagef(stderr, "--ema must be 0 (off) or a decay below 1, such as 0.99")
	}
	if *doTune && (*budget <= 0 || *trials < 0 || *rung0 < 0 || set["tune-steps"] && *rung0 < 1 || *workers < 1 || *trials > 1000 || *workers > 64) {
		return c.Usagef(stderr, "--budget must be > 0 seconds, --tune-trials 0..1000 (0: as many as the budget fits), --tune-steps >= 1, --tune-workers 1..64")
	}
	for _, f := range []string{"epochs", "steps", "batch", "lr", "width", "optimizer", "momentum", "weight-decay", "augment", "lr-decay", "ema"} {
		if *doTune && set[f] {
			return c.Usagef(stderr, "--%s is chosen by --tune; leave it out or drop --tune", f)
		}
	}
	if !*doTune && (set["budget"] || set["tune-trials"] || set["tune-steps"] || set["tune-workers"]) {
		return c.Usagef(stderr, "--budget and --tune-* need --tune")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	mm, err := learning.LoadMedMNIST(*data)
	if err != nil {
		return c.Fail(stderr, err)
	}
	if *doTune {
		return tune(ctx, mm, filepath.Base(*data), tuneOptions{budget: *budget, trials: *trials, minSteps: *rung0,
			workers: *workers, seed: *seed, balanced: *balanced, asJSON: *asJSON, norm: *norm}, stdout, stderr)
	}
	// What the user did not set comes from the data (learning.Defaults).
	rec := learning.Defaults(mm.Train.N)
	if !set["width"] {
		*width = rec.Width
	}
	if !set["batch"] {
		*batch = rec.BatchSize
	}
	if !set["augment"] {
		*augment = rec.Augment
	}
	if !set["epochs"] && !set["steps"] {
		*steps = rec.Steps
	}
	spec := learning.Spec{Arch: "cnn", Channels: mm.Train.C, Height: mm.Train.H, Width: mm.Train.W,
		Classes: max(mm.Classes, 2), BaseWidth: *width, Norm: *norm}
	m, err := learning.New(spec, *seed)
	if err != nil {
		return c.Fail(stderr, err)
	}
	fmt.Fprintf(stderr, "train: %s: %d train, %d val, %d test images of %dx%dx%d, %d classes, %d parameters\n",
		filepath.Base(*data), mm.Train.N, mm.Val.N, mm.Test.N, spec.Channels, spec.Height, spec.Width, spec.Classes, m.Layout().Total)
	cfg := learning.TrainConfig{BatchSize: *batch, Optimizer: *opt, LR: *lr, WeightDecay: *wd,
		Augment: *augment, ProgressEvery: 25, WeightAverage: *ema}
	if *opt == "sgd" {
		cfg.Momentum = *momentum
	}
	if *balanced {
		cfg.ClassWeights = learning.BalancedClassWeights(mm.Train.Y, spec.Classes)
	}

	rep := TrainReport{Dataset: filepath.Base(*data), Model: *model, Epochs: *epochs, Steps: *steps, Seed: *seed,
		Width: spec.BaseWidth, LayoutHash: m.Layout().Hash(), ValAUC: -1, Batch: *batch, LR: *lr, Optimizer: *opt,
		Augment: *augment, Balanced: *balanced, LRDecay: *decay, Norm: spec.Norm, EMA: *ema,
		Layout: m.Layout().Version, Parameters: m.Layout().Total}
	cfg.Epochs, cfg.Steps = *epochs, *steps
	cfg.Seed = *seed
	switch *decay {
	case "step":
		// The MedMNIST v2 recipe: ×0.1 at 50% and 75% of the budget.
		if *steps > 0 {
			cfg.LRStepSchedule = learning.StepDecay(*steps)
		} else {
			cfg.LRSchedule = func(e int) float64 {
				switch {
				case e >= *epochs*3/4:
					return 0.01
				case e >= *epochs/2:
					return 0.1
				}
				return 1
			}
		}
	case "none":
	default:
		return c.Usagef(stderr, "--lr-decay %q: want step or none", *decay)
	}
	cfg.Progress = func(p learning.TrainProgress) {
		if p.Epochs > 0 {
			fmt.Fprintf(stderr, "\repoch %d/%d  ", p.Epoch, p.Epochs)
		} else {
			fmt.Fprint(stderr, "\r")
		}
		fmt.Fprintf(stderr, "step %d/%d  loss %.4f  %.0f samples/s ", p.Step, p.Steps,
			p.Loss, float64(p.Samples)/p.Elapsed.Seconds())
	}
	var best []float32
	var valSeconds float64
	// validate scores the weights on the validation split and keeps them
	// when their AUC is the best yet; at is "epoch N" or "step N".
	validate := func(at string, n int) error {
		t0 := time.Now()
		val, err := evaluate(m, mm.Val)
		if err != nil {
			return fmt.Errorf("validation: %w", err)
		}
		valSeconds += time.Since(t0).Seconds()
		fmt.Fprintf(stderr, "\r%s %d  val auc %.4f acc %.4f%*s\n", at, n, val.AUC, val.Accuracy, 30, "")
		if val.AUC > rep.ValAUC {
			rep.ValAUC, best = val.AUC, m.Weights()
			if at == "epoch" {
				rep.BestEpoch = n
			} else {
				rep.BestStep = n
			}
		}
		return nil
	}
	if *steps > 0 {
		cfg.Check = func(s int) error { return validate("step", s) }
		cfg.CheckEvery = learning.CheckInterval(*steps)
	} else {
		cfg.EpochEnd = func(ep int) error { return validate("epoch", ep) }
	}
	res, err := m.Train(ctx, mm.Train, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "\ntrain: %v\n", err)
		return 1
	}
	trainSec := res.Seconds - valSeconds
	samples := res.Samples
	if err := m.SetWeights(best); err != nil {
		return c.Fail(stderr, err)
	}
	test, err := evaluate(m, mm.Test)
	if err != nil {
		fmt.Fprintf(stderr, "train: test: %v\n", err)
		return 1
	}
	rep.Test = test
	rep.TrainSeconds = trainSec
	if trainSec > 0 {
		rep.SamplesPerS = float64(samples) / trainSec
	}
	kept := fmt.Sprintf("epoch %d", rep.BestEpoch)
	if *steps > 0 {
		kept = fmt.Sprintf("step %d of %d", rep.BestStep, *steps)
	}
	fmt.Fprintf(stderr, "train: best %s (val auc %.4f); test auc %.4f accuracy %.4f; %.0fs training, %.0f samples/s\n",
		kept, rep.ValAUC, test.AUC, test.Accuracy, trainSec, rep.SamplesPerS)
	printResult(stdout, *asJSON, rep, test)
	return 0
}

// printResult writes a training run's report as one JSON line, or its test
// figures as one line of text.
func printResult(stdout io.Writer, asJSON bool, rep any, test TestMetrics) {
	if asJSON {
		b, _ := json.Marshal(rep)
		fmt.Fprintln(stdout, string(b))
		return
	}
	fmt.Fprintf(stdout, "test auc %.4f accuracy %.4f sensitivity %.4f specificity %.4f f1 %.4f\n",
		test.AUC, test.Accuracy, test.Sensitivity, test.Specificity, test.F1)
}

// evaluate scores a split: binary metrics at probability 0.5 for two
// classes, macro one-vs-rest AUC and arg-max accuracy otherwise.
func evaluate(m *learning.Model, ds learning.Dataset) (TestMetrics, error) {
	probs, err := m.Predict(ds)
	if err != nil {
		return TestMetrics{}, err
	}
	k := m.Spec().Classes
	if k == 2 {
		scores := make([]float64, ds.N)
		for i := range scores {
			scores[i] = float64(probs[i*2+1])
		}
		r, err := evaluation.Binary(scores, ds.Y, 0.5)
		if err != nil {
			return TestMetrics{}, err
		}
		auc, err := evaluation.AUC(scores, ds.Y)
		if err != nil {
			return TestMetrics{}, err
		}
		return TestMetrics{AUC: auc, Accuracy: r.Accuracy.Value, Sensitivity: r.Sensitivity.Value,
			Specificity: r.Specificity.Value, F1: r.F1.Value}, nil
	}
	rows := make([][]float64, ds.N)
	for i := range rows {
		rows[i] = make([]float64, k)
		for j := range rows[i] {
			rows[i][j] = float64(probs[i*k+j])
		}
	}
	r, err := evaluation.MultiClass(rows, ds.Y)
	if err != nil {
		return TestMetrics{}, err
	}
	return TestMetrics{AUC: r.MacroAUC.Value, Accuracy: r.Accuracy.Value}, nil
}
