package siteagent

import (
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
	"github.com/concord-fl/concord/learning"
)

// TestTorchUNetParity: deploy/trainer/unet.py, given the Go U-Net's layout
// manifest and weights, gives the Go forward probabilities within 1e-4
// relative and the same weights after one full-batch SGD step within 1e-3
// of the largest update. Costs about 5 s.
func TestTorchUNetParity(t *testing.T) {
	py := testenv.Python(t, "torch", "numpy")
	spec := learning.Spec{Arch: "unet", Channels: 1, Height: 16, Width: 16, BaseWidth: 4}
	m, err := learning.New(spec, 7)
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	rng := rand.New(rand.NewSource(3))
	ds := learning.Dataset{X: make([]float32, n*16*16), Masks: make([]float32, n*16*16), Y: make([]int, n), N: n, C: 1, H: 16, W: 16}
	for i := range ds.X {
		ds.X[i] = float32(rng.NormFloat64())
		if rng.Intn(4) == 0 {
			ds.Masks[i] = 1
		}
	}
	w0 := m.Weights()
	pred, err := m.Predict(ds)
	if err != nil {
		t.Fatal(err)
	}
	const lr = 0.05
	if _, err := m.Train(t.Context(), ds, learning.TrainConfig{Steps: 1, BatchSize: n, Optimizer: "sgd", LR: lr, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	meta, _ := json.Marshal(map[string]any{"n": n, "lr": lr})
	files := map[string][]byte{
		"manifest.json": m.Layout().JSON(), "meta.json": meta,
		"w0": learning.EncodeWeights(w0), "x": learning.EncodeWeights(ds.X), "mask": learning.EncodeWeights(ds.Masks),
		"pred": learning.EncodeWeights(pred), "w1": learning.EncodeWeights(m.Weights()),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(py, filepath.Join(testenv.RepoRoot(), "deploy", "trainer", "unet_parity.py"), dir)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("torch unet parity: %v", err)
	}
}
