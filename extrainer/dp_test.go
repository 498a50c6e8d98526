package extrainer

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/privacy/dp"
	"github.com/concord-fl/concord/proto/concordpb"
)

// maxDiff is the largest |a[i] - b[i]|.
func maxDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// deltaNorm is ‖a − b‖₂.
func deltaNorm(a, b []float32) float64 {
	var ss float64
	for i := range a {
		d := float64(a[i] - b[i])
		ss += d * d
	}
	return math.Sqrt(ss)
}

// TestDPStepMatchesPlainSGD: with q = 1, no noise and a clip no gradient
// reaches, one DP-SGD step is one full-batch SGD step (the sum of the
// per-example gradients divided by q·N = N is the batch mean). It must
// equal the trainer's own non-DP step with batch = N and the Go trainer's
// DP-SGD step (learning with dp.SGD), class weights included.
func TestDPStepMatchesPlainSGD(t *testing.T) {
	c := dial(t, trainer(t))
	m, err := learning.New(learning.Spec{Arch: "cnn", Channels: 1, Height: 28, Width: 28, Classes: 2, BaseWidth: 8}, 6)
	if err != nil {
		t.Fatal(err)
	}
	w0 := perturbed(t, m)
	const n = 32
	name, ds := contractData(t, "dpstep.npz", n)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	plainS := Settings{Epochs: 1, BatchSize: n, Optimizer: "sgd", LR: 0.1, Dataset: name, ClassWeights: []float64{1, 2}}
	plain, err := c.Train(ctx, "dp", 1, m.Layout().JSON(), w0, plainS, nil)
	if err != nil {
		t.Fatal(err)
	}
	dpS := plainS
	dpS.BatchSize = 5 // only bounds how many per-example gradients are held at once
	dpS.DP = &DPSettings{SampleRate: 1, Clip: 1e6, NoiseMultiplier: 0, Steps: 1}
	priv, err := c.Train(ctx, "dp", 1, m.Layout().JSON(), w0, dpS, nil)
	if err != nil {
		t.Fatal(err)
	}
	if priv.Steps != 1 || priv.Drawn != n {
		t.Errorf("DP round ran %d steps drawing %d examples; want 1 step drawing all %d at q = 1", priv.Steps, priv.Drawn, n)
	}
	sgd := &dp.SGD{Clip: 1e6, NoiseMultiplier: 0}
	if _, err := m.Train(ctx, ds, learning.TrainConfig{Steps: 1, Optimizer: "sgd", LR: 0.1, ClassWeights: []float32{1, 2},
		PerExample: sgd, SampleRate: 1}); err != nil {
		t.Fatal(err)
	}
	goW := m.Weights()
	moved := maxDiff(plain.Weights, w0)
	vsPlain, vsGo := maxDiff(priv.Weights, plain.Weights), maxDiff(priv.Weights, goW)
	t.Logf("largest weight change %.3g; DP step vs plain PyTorch step %.2g, vs Go DP-SGD step %.2g", moved, vsPlain, vsGo)
	if moved < 1e-3 {
		t.Fatalf("the step moved no weight by more than %.2g; the comparison would prove nothing", moved)
	}
	if vsPlain > 1e-5 {
		t.Errorf("DP-SGD step (q = 1, no noise, no clipping) and plain full-batch step differ by up to %.2g", vsPlain)
	}
	if vsGo > 1e-4 {
		t.Errorf("PyTorch and Go DP-SGD steps differ by up to %.2g", vsGo)
	}
}

// TestDPSamplingAndNoise: Poisson draws at q = 0.2 over 50 steps pass the
// agent's dp.CheckSampling and exactly the steps asked for run; the draws
// and the noise come from a generator the job seed does not fix (two runs
// with the same seed differ); and the noise is applied: with σ = 1000 the
// update is hundreds of times longer than without noise, where clipping
// bounds it by lr·C·(drawn/(q·N)) per step.
func TestDPSamplingAndNoise(t *testing.T) {
	const n, h, w = 64, 16, 16
	data := writeData(t, "dpblobs.npz", n, h, w, 3)
	c := dial(t, trainer(t))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	manifest, global := testManifest(1, h, w, 2, 4, 5)
	base := Settings{BatchSize: 32, Optimizer: "sgd", LR: 0.05, Seed: 7, Dataset: data}

	s := base
	s.DP = &DPSettings{SampleRate: 0.2, Clip: 1, NoiseMultiplier: 1.1, Steps: 50}
	start := time.Now()
	a, err := c.Train(ctx, "dp", 1, manifest, global, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("50 DP-SGD steps at q = 0.2 over %d examples: %d drawn (expected %.0f), %v", n, a.Drawn, 0.2*n*50, time.Since(start).Round(time.Millisecond))
	if a.Steps != 50 {
		t.Errorf("steps = %d, want 50", a.Steps)
	}
	if a.Samples != n {
		t.Errorf("samples = %d, want %d", a.Samples, n)
	}
	if err := dp.CheckSampling(a.Drawn, n, a.Steps, 0.2); err != nil {
		t.Error(err)
	}
	if err := dp.CheckSampling(a.Drawn, n, a.Steps, 0.4); err == nil {
		t.Errorf("%d drawn also passes the check at q = 0.4: the check would prove nothing", a.Drawn)
	}
	b, err := c.Train(ctx, "dp", 1, manifest, global, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if maxDiff(a.Weights, b.Weights) == 0 {
		t.Error("two DP rounds with the same job seed gave the same weights: the noise or the draws follow the job seed")
	}

	one := func(sigma float64) float64 {
		t.Helper()
		s := base
		s.DP = &DPSettings{SampleRate: 0.5, Clip: 1, NoiseMultiplier: sigma, Steps: 1}
		r, err := c.Train(ctx, "dp", 1, manifest, global, s, nil)
		if err != nil {
			t.Fatal(err)
		}
		return deltaNorm(r.Weights, global)
	}
	quiet, loud := one(0), one(1000)
	t.Logf("update norm of one step: %.3g without noise, %.3g with σ = 1000", quiet, loud)
	if !(loud > 100*quiet) || quiet == 0 {
		t.Errorf("update norm %.3g with σ = 1000 against %.3g without: the noise is not applied", loud, quiet)
	}
}

// TestDPRejects: the trainer itself refuses DP settings that would not
// give the privacy the agent accounts for (the Go client refuses them
// first, so these go over a raw stream).
func TestDPRejects(t *testing.T) {
	data := writeData(t, "dprej.npz", 8, 16, 16, 4)
	c := dial(t, trainer(t))
	manifest, global := testManifest(1, 16, 16, 2, 4, 1)
	cases := []struct {
		name string
		dp   func(*concordpb.TrainSettings)
		msg  string
	}{
		{"rate above 1", func(s *concordpb.TrainSettings) { s.DpSampleRate, s.DpClip, s.DpSteps = 1.5, 1, 3 }, "dp_sample_rate"},
		{"negative rate", func(s *concordpb.TrainSettings) { s.DpSampleRate, s.DpClip, s.DpSteps = -0.1, 1, 3 }, "dp_sample_rate"},
		{"clip without rate", func(s *concordpb.TrainSettings) { s.DpClip, s.DpSteps = 1, 3 }, "dp_sample_rate"},
		{"no clip", func(s *concordpb.TrainSettings) { s.DpSampleRate, s.DpSteps = 0.1, 3 }, "dp_clip"},
		{"infinite clip", func(s *concordpb.TrainSettings) { s.DpSampleRate, s.DpClip, s.DpSteps = 0.1, math.Inf(1), 3 }, "dp_clip"},
		{"negative noise", func(s *concordpb.TrainSettings) {
			s.DpSampleRate, s.DpClip, s.DpNoiseMultiplier, s.DpSteps = 0.1, 1, -1, 3
		}, "dp_noise_multiplier"},
		{"no steps", func(s *concordpb.TrainSettings) { s.DpSampleRate, s.DpClip = 0.1, 1 }, "dp_steps"},
	}
	for _, tc := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		stream, err := c.rpc.Train(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s := &concordpb.TrainSettings{Optimizer: "sgd", LearningRate: 0.1, Dataset: data, Split: "train"}
		tc.dp(s)
		err = stream.Send(&concordpb.TrainRequest{Msg: &concordpb.TrainRequest_Start{Start: &concordpb.TrainStart{
			JobId: "j", Round: 1, Manifest: manifest, Total: uint64(len(global)), Settings: s}}})
		for err == nil {
			_, err = stream.Recv()
		}
		cancel()
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tc.msg) {
			t.Errorf("%s: %v; want InvalidArgument naming %s", tc.name, err, tc.msg)
		}
	}
}

// TestPerExampleGradsLoopMatchesVmap: the trainer's fallback for a torch
// without functorch (a loop over the examples) gives the same per-example
// gradients, losses and hits as the vmap path, class weights included.
func TestPerExampleGradsLoopMatchesVmap(t *testing.T) {
	py := python(t)
	if err := exec.Command(py, "-c", "import functorch").Run(); err != nil {
		t.Skip("no functorch: the trainer uses the loop only, and the other tests cover it")
	}
	dir, err := filepath.Abs(filepath.Join("..", "deploy", "trainer"))
	if err != nil {
		t.Fatal(err)
	}
	script := `
import json, sys
sys.path.insert(0, sys.argv[1])
import torch, cnn, trainer
torch.manual_seed(1)
model, _ = cnn.build(cnn.manifest_for(1, 8, 8, 3, width=4))
x = trainer.to_input(torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8), "cpu")
y = torch.randint(0, 3, (12,))
w = torch.tensor([1.0, 2.0, 0.5])
ga, la, ca = trainer.per_example_grads(model, trainer.make_functional(model)[0], x, y, w)
gb, lb, cb = trainer.per_example_grads(model, None, x, y, w)
print(json.dumps({"grad": max(float((a - b).abs().max()) for a, b in zip(ga, gb)),
                  "scale": max(float(a.abs().max()) for a in ga),
                  "loss": float((la.cpu() - lb).abs().max()), "hits": [ca, cb], "shape": list(ga[0].shape)}))
`
	cmd := exec.Command(py, "-c", script, dir)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var r struct {
		Grad, Scale, Loss float64
		Hits              [2]int
		Shape             []int
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Logf("vmap vs loop: gradients differ by up to %.2g (largest %.2g), losses by %.2g", r.Grad, r.Scale, r.Loss)
	if len(r.Shape) == 0 || r.Shape[0] != 12 || r.Scale == 0 {
		t.Fatalf("per-example gradients of shape %v, largest %v: want 12 non-zero gradients", r.Shape, r.Scale)
	}
	if r.Grad > 1e-5 || r.Loss > 1e-5 || r.Hits[0] != r.Hits[1] {
		t.Errorf("vmap and loop disagree: %+v", r)
	}
}

// TestDPRoundWithEveryOption: DP-SGD composes with Adam, SGD momentum,
// FedProx, class weights and augmentation without error and moves the
// weights.
func TestDPRoundWithEveryOption(t *testing.T) {
	const n, h, w = 40, 16, 16
	data := writeData(t, "dpopts.npz", n, h, w, 8)
	c := dial(t, trainer(t))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	manifest, global := testManifest(1, h, w, 2, 4, 9)
	for _, s := range []Settings{
		{Optimizer: "adam", LR: 1e-3, ProxMu: 0.1, Augment: true, ClassWeights: []float64{1, 3}},
		{Optimizer: "sgd", LR: 0.05, Momentum: 0.9, BatchSize: 3},
	} {
		s.Dataset, s.Seed = data, 2
		s.DP = &DPSettings{SampleRate: 0.3, Clip: 0.5, NoiseMultiplier: 0.8, Steps: 5}
		r, err := c.Train(ctx, "dp", 1, manifest, global, s, nil)
		if err != nil {
			t.Fatalf("%s: %v", s.Optimizer, err)
		}
		if r.Steps != 5 || deltaNorm(r.Weights, global) == 0 {
			t.Errorf("%s: %d steps, update norm %v", s.Optimizer, r.Steps, deltaNorm(r.Weights, global))
		}
	}
}
