package dp_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/privacy/dp"
)

// These tests run DP-SGD through the real training loop. privacy/dp does
// not import learning; only its tests do.

var spec = learning.Spec{Channels: 1, Height: 28, Width: 28, Classes: 2, BaseWidth: 4}

// separable is a two-class set a small CNN learns in a few dozen steps: a
// bright square for class 1, a dark one for class 0, on weak noise.
func separable(n int, seed uint64) learning.Dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	ds := learning.Dataset{N: n, C: 1, H: 28, W: 28, X: make([]float32, n*784), Y: make([]int, n)}
	for i := range n {
		ds.Y[i] = rng.IntN(2)
		x := ds.X[i*784 : (i+1)*784]
		for p := range x {
			x[p] = float32(0.3 * rng.NormFloat64())
		}
		y0, x0, v := rng.IntN(20), rng.IntN(20), float32(-1.5)
		if ds.Y[i] == 1 {
			v = 1.5
		}
		for y := y0; y < y0+8; y++ {
			for xx := x0; xx < x0+8; xx++ {
				x[y*28+xx] += v
			}
		}
	}
	return ds
}

func accuracy(t *testing.T, m *learning.Model, ds learning.Dataset) float64 {
	t.Helper()
	p, err := m.Predict(ds)
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	for i := range ds.N {
		if (p[2*i+1] > p[2*i]) == (ds.Y[i] == 1) {
			ok++
		}
	}
	return float64(ok) / float64(ds.N)
}

func train(t *testing.T, ds learning.Dataset, cfg learning.TrainConfig) (*learning.Model, learning.TrainResult) {
	t.Helper()
	m, err := learning.New(spec, 3)
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Train(context.Background(), ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, res
}

func closeWeights(t *testing.T, name string, a, b []float32, tol float64) {
	t.Helper()
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > tol*(1+math.Abs(float64(a[i]))) {
			t.Fatalf("%s: weight %d is %v plain, %v through dp.SGD", name, i, a[i], b[i])
		}
	}
}

// Without noise and with a clip no gradient reaches, DP-SGD is plain SGD:
// on the same shuffled batches, and with Poisson sampling at rate 1 (every
// example every step, divided by the expected batch N) against full
// batches.
func TestSGDWithoutNoiseIsPlainSGD(t *testing.T) {
	ds := separable(48, 1)
	base := learning.TrainConfig{Steps: 3, BatchSize: 16, Optimizer: "sgd", LR: 0.1}
	plain, _ := train(t, ds, base)
	cfg := base
	h := &dp.SGD{Clip: 1e6}
	cfg.PerExample = h
	hooked, _ := train(t, ds, cfg)
	closeWeights(t, "shuffled batches", plain.Weights(), hooked.Weights(), 1e-5)
	if h.Examples != 48 || h.Clipped != 0 {
		t.Errorf("hook clipped %d of %d examples, want 0 of 48", h.Clipped, h.Examples)
	}

	full := base
	full.BatchSize = ds.N
	plainFull, _ := train(t, ds, full)
	cfg = base
	cfg.PerExample, cfg.SampleRate = &dp.SGD{Clip: 1e6}, 1
	poisson, res := train(t, ds, cfg)
	closeWeights(t, "Poisson rate 1", plainFull.Weights(), poisson.Weights(), 1e-5)
	if res.Steps != 3 || res.Samples != 3*ds.N {
		t.Errorf("rate 1: %d steps, %d samples; want 3 and %d", res.Steps, res.Samples, 3*ds.N)
	}

	// A small clip does change the update: the comparison above can fail.
	cfg.PerExample = &dp.SGD{Clip: 1e-3}
	clipped, _ := train(t, ds, cfg)
	w0, _ := learning.New(spec, 3)
	var moved float64
	for i, v := range clipped.Weights() {
		d := float64(v - w0.Weights()[i])
		moved += d * d
	}
	// Each step moves by at most lr·clip·(drawn/expected) = 0.1·1e-3 here.
	if got := math.Sqrt(moved); got > 3*0.1*1e-3*1.0001 {
		t.Errorf("clipped DP-SGD moved the weights by %v, bound %v", got, 3*0.1*1e-3)
	}
}

// With σ = 0 the model learns; with a huge noise multiplier it does not.
func TestSGDHugeNoiseDoesNotLearn(t *testing.T) {
	trainSet, testSet := separable(160, 2), separable(200, 3)
	for _, tc := range []struct {
		sigma    float64
		min, max float64
	}{
		{0, 0.9, 1},
		{1e4, 0, 0.75},
	} {
		h := &dp.SGD{Clip: 1, NoiseMultiplier: tc.sigma, Source: rand.New(rand.NewPCG(7, 8))}
		cfg := learning.TrainConfig{Steps: 60, SampleRate: 0.1, PerExample: h, Optimizer: "adam", LR: 3e-3, Seed: 4}
		m, _ := train(t, trainSet, cfg)
		acc := accuracy(t, m, testSet)
		t.Logf("σ=%v: test accuracy %.3f", tc.sigma, acc)
		if acc < tc.min || acc > tc.max {
			t.Errorf("σ=%v: test accuracy %.3f, want %.2f..%.2f", tc.sigma, acc, tc.min, tc.max)
		}
	}
}

// The trainer's Poisson sampling passes the rate check; fixed batches
// declared at a rate they do not have fail it.
func TestTrainerSamplingRate(t *testing.T) {
	ds := separable(200, 5)
	const rate = 0.05
	h := &dp.SGD{Clip: 1, NoiseMultiplier: 1, Source: rand.New(rand.NewPCG(1, 1))}
	_, res := train(t, ds, learning.TrainConfig{Steps: 80, SampleRate: rate, PerExample: h, Seed: 9})
	if res.Steps != 80 || h.Examples != res.Samples {
		t.Fatalf("%d steps, %d samples reported, %d seen by the hook", res.Steps, res.Samples, h.Examples)
	}
	if err := dp.CheckSampling(res.Samples, ds.N, res.Steps, rate); err != nil {
		t.Errorf("Poisson training failed the rate check: %v", err)
	}
	// Fixed batches of 32 (rate 0.16 in fact) declared as 0.05.
	_, fixed := train(t, ds, learning.TrainConfig{Steps: 80, BatchSize: 32, PerExample: &dp.SGD{Clip: 1}})
	if err := dp.CheckSampling(fixed.Samples, ds.N, fixed.Steps, rate); !errors.Is(err, dp.ErrSampling) {
		t.Errorf("fixed batches of 32 passed as rate %v: %v", rate, err)
	}
	// An epoch of Poisson sampling is round(1/rate) steps.
	_, ep := train(t, ds, learning.TrainConfig{Epochs: 2, SampleRate: rate, PerExample: &dp.SGD{Clip: 1}, Seed: 9})
	if ep.Steps != 40 {
		t.Errorf("2 epochs at rate %v ran %d steps, want 40", rate, ep.Steps)
	}
}

// sizes records each step's batch size.
type sizes struct {
	dp.SGD
	n []int
}

func (s *sizes) ClipAndNoise(grads [][]float32, out []float32) {
	s.n = append(s.n, len(grads))
	s.SGD.ClipAndNoise(grads, out)
}

// The trainer samples as dp.PoissonBatch does, draw for draw, and a step
// with an empty batch still runs (noise only).
func TestTrainerSamplesLikePoissonBatch(t *testing.T) {
	ds := separable(60, 6)
	const rate = 0.02 // 1.2 expected: many empty batches
	h := &sizes{SGD: dp.SGD{Clip: 1, NoiseMultiplier: 1, Source: rand.New(rand.NewPCG(2, 2))}}
	_, res := train(t, ds, learning.TrainConfig{Steps: 30, SampleRate: rate, PerExample: h,
		Sampler: rand.New(rand.NewPCG(11, 12)), Optimizer: "sgd", LR: 0.01})
	src := rand.New(rand.NewPCG(11, 12))
	empty, total := 0, 0
	for step, got := range h.n {
		want := len(dp.PoissonBatch(ds.N, rate, src))
		if got != want {
			t.Fatalf("step %d: trainer drew %d examples, dp.PoissonBatch %d", step, got, want)
		}
		if got == 0 {
			empty++
		}
		total += got
	}
	if len(h.n) != 30 || res.Steps != 30 || res.Samples != total {
		t.Errorf("hook called %d times, %d steps, %d samples; want 30, 30, %d", len(h.n), res.Steps, res.Samples, total)
	}
	if empty == 0 || math.IsNaN(res.FinalLoss) {
		t.Errorf("%d empty batches, final loss %v: want some empty batches and a finite loss", empty, res.FinalLoss)
	}
}

func TestTrainerRefusesPoissonWithoutHook(t *testing.T) {
	m, _ := learning.New(spec, 1)
	for _, cfg := range []learning.TrainConfig{
		{SampleRate: 0.1},
		{SampleRate: 1.5, PerExample: &dp.SGD{Clip: 1}},
		{SampleRate: math.NaN(), PerExample: &dp.SGD{Clip: 1}},
	} {
		if _, err := m.Train(context.Background(), separable(8, 1), cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}
