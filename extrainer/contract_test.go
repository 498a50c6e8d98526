package extrainer

// These tests hold the Go model (package learning) and the PyTorch reference
// trainer to the same weight-layout contract: same manifest, same initial
// weights, same forward pass and same gradient step on the same vector.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/concord-fl/concord/learning"
)

func TestManifestMatchesLearning(t *testing.T) {
	m, err := learning.New(learning.Spec{Arch: "cnn", Channels: 1, Height: 28, Width: 28, Classes: 2, BaseWidth: 16}, 42)
	if err != nil {
		t.Fatal(err)
	}
	mine, weights := testManifest(1, 28, 28, 2, 16, 42)
	var a, b any
	if err := json.Unmarshal(mine, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(m.Layout().JSON(), &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("manifests differ:\n contract %s\n learning %s", mine, m.Layout().JSON())
	}
	got := m.Weights()
	if len(got) != len(weights) {
		t.Fatalf("learning has %d weights, the contract %d", len(got), len(weights))
	}
	for i := range got {
		if got[i] != weights[i] {
			t.Fatalf("initial weight %d: learning %v, contract %v", i, got[i], weights[i])
		}
	}
}

// contractData is a small 28 x 28 set in both forms: the .npz the trainer
// reads and the normalised Dataset package learning takes.
func contractData(t *testing.T, name string, n int) (string, learning.Dataset) {
	t.Helper()
	const h, w = 28, 28
	data := writeData(t, name, n, h, w, 9)
	imgs, labels := blobs(n, h, w, 9)
	ds := learning.Dataset{N: n, C: 1, H: h, W: w, X: make([]float32, len(imgs)), Y: make([]int, n)}
	for i, v := range imgs {
		ds.X[i] = float32(v)/127.5 - 1
	}
	for i, v := range labels {
		ds.Y[i] = int(v)
	}
	return data, ds
}

// perturbed returns the model's weights with random biases, so that the
// comparison covers them too.
func perturbed(t *testing.T, m *learning.Model) []float32 {
	t.Helper()
	w := m.Weights()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, e := range m.Layout().Params {
		if len(e.Shape) == 1 {
			for i := range e.Size {
				w[e.Offset+i] = float32(rng.NormFloat64() * 0.1)
			}
		}
	}
	if err := m.SetWeights(w); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestForwardMatchesLearning compares probabilities on both layout
// versions: with GroupNorm (concord.cnn/2) and without (concord.cnn/1).
func TestForwardMatchesLearning(t *testing.T) {
	long(t) // TestSGDStepMatchesLearning covers the forward pass too
	py := python(t)
	trainer(t) // the shared data root exists once the trainer does
	for _, norm := range []string{"group", "none"} {
		t.Run(norm, func(t *testing.T) { forwardMatches(t, py, norm) })
	}
}

func forwardMatches(t *testing.T, py, norm string) {
	m, err := learning.New(learning.Spec{Arch: "cnn", Channels: 1, Height: 28, Width: 28, Classes: 2, BaseWidth: 8, Norm: norm}, 5)
	if err != nil {
		t.Fatal(err)
	}
	w := perturbed(t, m)
	name, ds := contractData(t, "forward-"+norm+".npz", 16)
	dir := t.TempDir()
	buf := make([]byte, 4*len(w))
	for i, v := range w {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	if err := os.WriteFile(filepath.Join(dir, "w.f32"), buf, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "m.json"), m.Layout().JSON(), 0o600); err != nil {
		t.Fatal(err)
	}
	script, _ := filepath.Abs(filepath.Join("..", "deploy", "trainer", "trainer.py"))
	out, err := exec.Command(py, script, "predict", "--manifest", filepath.Join(dir, "m.json"),
		"--weights", filepath.Join(dir, "w.f32"), "--npz", filepath.Join(shared.dataDir, name), "--split", "train").Output()
	if err != nil {
		t.Fatalf("trainer.py predict: %v", err)
	}
	var torch struct{ Probs [][]float64 }
	if err := json.Unmarshal(out, &torch); err != nil {
		t.Fatal(err)
	}
	got, err := m.Predict(ds)
	if err != nil {
		t.Fatal(err)
	}
	if len(torch.Probs) != ds.N {
		t.Fatalf("pytorch gave %d rows for %d images", len(torch.Probs), ds.N)
	}
	var worst float64
	for i, row := range torch.Probs {
		for k, p := range row {
			worst = math.Max(worst, math.Abs(p-float64(got[i*2+k])))
		}
	}
	t.Logf("largest |p_go - p_torch| = %.2g", worst)
	if worst > 1e-4 {
		t.Errorf("Go and PyTorch probabilities differ by up to %.2g on the same weights", worst)
	}
}

// TestSGDStepMatchesLearning takes one full-batch SGD step (so that the
// shuffling order cannot matter) with class weights on both sides.
func TestSGDStepMatchesLearning(t *testing.T) {
	c := dial(t, trainer(t))
	m, err := learning.New(learning.Spec{Arch: "cnn", Channels: 1, Height: 28, Width: 28, Classes: 2, BaseWidth: 8}, 6)
	if err != nil {
		t.Fatal(err)
	}
	w0 := perturbed(t, m)
	const n = 32
	name, ds := contractData(t, "step.npz", n)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := c.Train(ctx, "contract", 1, m.Layout().JSON(), w0,
		Settings{Epochs: 1, BatchSize: n, Optimizer: "sgd", LR: 0.1, Dataset: name, ClassWeights: []float64{1, 2}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Train(ctx, ds, learning.TrainConfig{Epochs: 1, BatchSize: n, Optimizer: "sgd", LR: 0.1,
		ClassWeights: []float32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	goW := m.Weights()
	worst, moved := weightGap(goW, res.Weights, w0)
	t.Logf("largest weight change %.3g, largest Go/PyTorch difference %.2g", moved, worst)
	if moved < 1e-3 {
		t.Fatalf("the step moved no weight by more than %.2g; the comparison would prove nothing", moved)
	}
	if worst > 1e-4 {
		t.Errorf("after one SGD step Go and PyTorch weights differ by up to %.2g", worst)
	}
}
