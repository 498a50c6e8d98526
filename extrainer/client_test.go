package extrainer

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestTrainRoundTrip runs real rounds on the PyTorch reference trainer:
// global weights out, a few epochs on a learnable .npz, updated weights back.
func TestTrainRoundTrip(t *testing.T) {
	const n, h, w = 256, 16, 16
	data := writeData(t, "blobs.npz", n, h, w, 1)
	c := dial(t, trainer(t))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Device != "cpu" || !info.Supports("concord.cnn/2", "cnn") || !info.Supports("concord.cnn/1", "cnn") || info.Supports("concord.cnn/99", "cnn") {
		t.Errorf("info = %+v; want device cpu building concord.cnn/2 and /1", info)
	}

	manifest, global := testManifest(1, h, w, 2, 8, 7)
	settings := Settings{Epochs: 4, BatchSize: 32, Optimizer: "adam", LR: 3e-3, Seed: 11, Dataset: data}
	// 16 x 16 images keep the CPU round short; the trainer takes any size
	// divisible by 4.
	var progress []string
	res, err := c.Train(ctx, "job-1", 3, manifest, global, settings, func(s string) { progress = append(progress, s) })
	if err != nil {
		t.Fatal(err)
	}
	checkTrained(t, res.Weights, global)
	if res.Samples != n {
		t.Errorf("samples = %d, want %d", res.Samples, n)
	}
	if res.Device != "cpu" {
		t.Errorf("device = %q, want cpu", res.Device)
	}
	loss, ok := res.Metrics["loss"]
	if !ok || math.IsNaN(loss) || loss <= 0 {
		t.Errorf("metrics %v: want a positive loss", res.Metrics)
	}
	first, last := res.Metrics["loss_epoch_1"], res.Metrics["loss_epoch_4"]
	if !(last < 0.8*first) {
		t.Errorf("loss went from %.4f to %.4f over 4 epochs on a learnable task", first, last)
	}
	if acc := res.Metrics["accuracy"]; acc < 0.75 {
		t.Errorf("last-epoch training accuracy %.3f on a learnable task", acc)
	}
	if len(progress) < settings.Epochs {
		t.Errorf("%d progress lines, want at least one per epoch: %q", len(progress), progress)
	}
	t.Logf("loss %.4f -> %.4f, accuracy %.3f, %d progress lines", first, last, res.Metrics["accuracy"], len(progress))

	// The same round again gives the same weights: the seed fixes
	// shuffling and initial state, and the trainer reports no hidden state.
	one := settings
	one.Epochs = 1
	a, err := c.Train(ctx, "job-1", 3, manifest, global, one, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Train(ctx, "job-1", 3, manifest, global, one, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Weights, b.Weights) {
		t.Error("the same round twice gave different weights")
	}

	// A FedProx round with SGD and class weights also runs.
	settings.Optimizer, settings.LR, settings.Momentum, settings.ProxMu = "sgd", 0.05, 0.9, 0.1
	settings.Epochs, settings.ClassWeights, settings.Augment = 1, []float64{1, 2}, true
	if _, err := c.Train(ctx, "job-1", 4, manifest, res.Weights, settings, nil); err != nil {
		t.Errorf("fedprox round: %v", err)
	}
}

// TestTrainRejects checks that the real trainer turns bad requests into
// clear gRPC errors.
func TestTrainRejects(t *testing.T) {
	data := writeData(t, "big.npz", 16, 32, 32, 2)
	c := dial(t, trainer(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	manifest, global := testManifest(1, 28, 28, 2, 4, 1)
	ok := Settings{Epochs: 1, BatchSize: 8, Optimizer: "sgd", LR: 0.01, Dataset: data}
	wrongVersion := []byte(strings.Replace(string(manifest), "concord.cnn/2", "concord.cnn/99", 1))
	cases := []struct {
		name     string
		manifest []byte
		s        func(Settings) Settings
		code     codes.Code
		msg      string
	}{
		{"missing dataset", manifest, func(s Settings) Settings { s.Dataset = "nope.npz"; return s }, codes.FailedPrecondition, "not found"},
		{"outside data root", manifest, func(s Settings) Settings { s.Dataset = "../etc/passwd"; return s }, codes.PermissionDenied, "data root"},
		{"wrong image size", manifest, func(s Settings) Settings { return s }, codes.InvalidArgument, "32 x 32"},
		{"unknown split", manifest, func(s Settings) Settings { s.Split = "val"; return s }, codes.InvalidArgument, "val_images"},
		{"unknown manifest version", wrongVersion, func(s Settings) Settings { return s }, codes.InvalidArgument, "concord.cnn/99"},
		{"class weights length", manifest, func(s Settings) Settings { s.ClassWeights = []float64{1, 1, 1}; return s }, codes.InvalidArgument, "class weights"},
	}
	for _, tc := range cases {
		_, err := c.Train(ctx, "job-2", 1, tc.manifest, global, tc.s(ok), nil)
		if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %v; want code %v mentioning %q", tc.name, err, tc.code, tc.msg)
		}
	}
}

// TestLargeModelIsChunked sends a model whose weights (12 MB) are well over
// gRPC's 4 MB message limit through the real trainer and back.
func TestLargeModelIsChunked(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 2 x 12 MB through a Python process")
	}
	data := writeData(t, "tiny.npz", 8, 4, 4, 3)
	c := dial(t, trainer(t))
	manifest, global := testManifest(1, 4, 4, 2, 192, 5)
	if 4*len(global) < 2*(4<<20) {
		t.Fatalf("test model has only %d bytes of weights", 4*len(global))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := c.Train(ctx, "job-3", 1, manifest, global,
		Settings{Epochs: 1, BatchSize: 8, Optimizer: "sgd", LR: 1e-3, Dataset: data}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Weights) != len(global) || slices.Equal(res.Weights, global) {
		t.Errorf("got %d weights (want %d), changed: %v", len(res.Weights), len(global), !slices.Equal(res.Weights, global))
	}
	// Spot-check that chunks were reassembled in order: the untouched tail
	// of a 1 MiB boundary keeps its neighbours' scale.
	if res.Weights[chunkFloats] == 0 && global[chunkFloats] != 0 {
		t.Errorf("weight at the first chunk boundary is zero")
	}
}

func TestDialRefusesInsecureRemote(t *testing.T) {
	for _, addr := range []string{"10.1.2.3:50061", "trainer.hospital.local:50061", "[2001:db8::1]:50061"} {
		_, err := Dial(context.Background(), Config{Address: addr})
		if !errors.Is(err, ErrInsecureRemote) {
			t.Errorf("Dial(%q) = %v, want ErrInsecureRemote", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:50061", "localhost:50061", "[::1]:50061", "unix:///run/concord/trainer.sock"} {
		c, err := Dial(context.Background(), Config{Address: addr})
		if err != nil {
			t.Errorf("Dial(%q): %v", addr, err)
			continue
		}
		c.Close()
	}
	for _, addr := range []string{"", "no-port", "unix://"} {
		if _, err := Dial(context.Background(), Config{Address: addr}); err == nil {
			t.Errorf("Dial(%q) succeeded", addr)
		}
	}
}

// TestTrainChecksInputFirst: bad input is refused before any byte is sent
// (the address has no server behind it).
func TestTrainChecksInputFirst(t *testing.T) {
	c := dial(t, "127.0.0.1:1")
	manifest, global := testManifest(1, 28, 28, 2, 4, 1)
	ok := Settings{Epochs: 1, BatchSize: 8, Optimizer: "sgd", LR: 0.01, Dataset: "d.npz"}
	nan := slices.Clone(global)
	nan[5] = float32(math.NaN())
	cases := []struct {
		name     string
		job      string
		manifest []byte
		global   []float32
		s        func(Settings) Settings
	}{
		{"no job", "", manifest, global, nil},
		{"short vector", "j", manifest, global[1:], nil},
		{"nan weight", "j", manifest, nan, nil},
		{"not json", "j", []byte("{"), global, nil},
		{"bad offsets", "j", []byte(strings.Replace(string(manifest), `"offset":0`, `"offset":1`, 1)), global, nil},
		{"zero epochs", "j", manifest, global, func(s Settings) Settings { s.Epochs = 0; return s }},
		{"optimizer", "j", manifest, global, func(s Settings) Settings { s.Optimizer = "lbfgs"; return s }},
		{"lr", "j", manifest, global, func(s Settings) Settings { s.LR = math.NaN(); return s }},
		{"momentum", "j", manifest, global, func(s Settings) Settings { s.Momentum = 1; return s }},
		{"no dataset", "j", manifest, global, func(s Settings) Settings { s.Dataset = ""; return s }},
		{"class weight", "j", manifest, global, func(s Settings) Settings { s.ClassWeights = []float64{-1, 1}; return s }},
		{"dp rate", "j", manifest, global, func(s Settings) Settings { s.DP = &DPSettings{SampleRate: 1.5, Clip: 1, Steps: 1}; return s }},
		{"dp clip", "j", manifest, global, func(s Settings) Settings { s.DP = &DPSettings{SampleRate: 0.1, Steps: 1}; return s }},
		{"dp noise", "j", manifest, global, func(s Settings) Settings {
			s.DP = &DPSettings{SampleRate: 0.1, Clip: 1, NoiseMultiplier: -1, Steps: 1}
			return s
		}},
		{"dp steps", "j", manifest, global, func(s Settings) Settings { s.DP = &DPSettings{SampleRate: 0.1, Clip: 1}; return s }},
		{"code for a cnn", "j", manifest, global, func(s Settings) Settings { s.Code, s.CodeSHA256 = []byte("x"), strings.Repeat("0", 64); return s }},
		{"custom without code", "j", []byte(strings.Replace(string(manifest), `"arch":"cnn"`, `"arch":"custom"`, 1)), global, nil},
	}
	for _, tc := range cases {
		s := ok
		if tc.s != nil {
			s = tc.s(s)
		}
		_, err := c.Train(context.Background(), tc.job, 1, tc.manifest, tc.global, s, nil)
		if err == nil || status.Code(err) == codes.Unavailable {
			t.Errorf("%s: error %v; want a local validation error", tc.name, err)
		}
	}
}

// TestCancelFreesTrainer cancels a long round after its first epoch; the
// trainer must notice and take the next round at once.
func TestCancelFreesTrainer(t *testing.T) {
	data := writeData(t, "cancel.npz", 128, 16, 16, 4)
	c := dial(t, trainer(t))
	manifest, global := testManifest(1, 16, 16, 2, 4, 1)
	s := Settings{Epochs: 500, BatchSize: 32, Optimizer: "sgd", LR: 0.01, Dataset: data}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := c.Train(ctx, "long", 1, manifest, global, s, func(line string) {
		if strings.Contains(line, "epoch 1/500 done") {
			cancel()
		}
	})
	if status.Code(err) != codes.Canceled {
		t.Fatalf("cancelled round: %v", err)
	}
	s.Epochs = 1
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel2()
	if _, err := c.Train(ctx2, "next", 1, manifest, global, s, nil); err != nil {
		t.Errorf("round after a cancelled one: %v", err)
	}
}

// TestRGBDataset trains on a MedMNIST-style colour set stored N x H x W x C.
func TestRGBDataset(t *testing.T) {
	const n, h, w = 16, 8, 8
	grey, labels := blobs(n, h, w, 5)
	rgb := make([]byte, 0, 3*len(grey))
	for _, v := range grey {
		rgb = append(rgb, v, v/2, 255-v)
	}
	if err := writeNPZ(filepath.Join(shared.dataDir, "rgb.npz"), map[string]npyArray{
		"train_images": {shape: []int{n, h, w, 3}, data: rgb},
		"train_labels": {shape: []int{n, 1}, data: labels},
	}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, trainer(t))
	manifest, global := testManifest(3, h, w, 2, 4, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := c.Train(ctx, "rgb", 1, manifest, global,
		Settings{Epochs: 1, BatchSize: 8, Optimizer: "adam", LR: 1e-3, Dataset: "rgb.npz", Augment: true, Seed: -3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Samples != n || slices.Equal(res.Weights, global) {
		t.Errorf("samples %d (want %d), weights changed: %v", res.Samples, n, !slices.Equal(res.Weights, global))
	}
	// The grey manifest does not fit colour images.
	grey1, g := testManifest(1, h, w, 2, 4, 1)
	_, err = c.Train(ctx, "rgb", 2, grey1, g, Settings{Epochs: 1, BatchSize: 8, Optimizer: "sgd", LR: 0.01, Dataset: "rgb.npz"}, nil)
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("colour images into a grey model: %v, want InvalidArgument", err)
	}
}
