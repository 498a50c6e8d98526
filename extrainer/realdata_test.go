package extrainer

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/internal/testenv"
	"github.com/concord-fl/concord/learning"
)

// TestPneumoniaRound trains one round on real chest X-rays (PneumoniaMNIST's
// validation split, 524 images, read in place through a link in the
// trainer's data root) and scores the returned model on the 624 test images
// with packages learning and evaluation.
func TestPneumoniaRound(t *testing.T) {
	long(t)
	src := testenv.Shared(t, "data/medmnist/pneumoniamnist.npz")
	py := python(t)
	c := dial(t, trainer(t))
	link := filepath.Join(shared.dataDir, "pneumonia.npz")
	if err := os.Symlink(src, link); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	m, err := learning.New(learning.Spec{Arch: "cnn", Channels: 1, Height: 28, Width: 28, Classes: 2, BaseWidth: 8}, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Balanced weights for 135 normal / 389 pneumonia.
	s := Settings{Epochs: 2, BatchSize: 32, Optimizer: "adam", LR: 4e-3, Seed: 1, Dataset: "pneumonia.npz",
		Split: "val", ClassWeights: []float64{524.0 / (2 * 135), 524.0 / (2 * 389)}}
	res, err := c.Train(ctx, "pneumonia", 1, m.Layout().JSON(), m.Weights(), s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Samples != 524 {
		t.Errorf("samples = %d, want the 524 validation images", res.Samples)
	}

	// Score the returned weights with the Go model (the contract tests hold
	// it to PyTorch's outputs) on the test split, which numpy unpacks.
	dir := t.TempDir()
	imgPath, labPath := filepath.Join(dir, "images.u8"), filepath.Join(dir, "labels.u8")
	if out, err := exec.CommandContext(ctx, py, "-c",
		"import numpy as n,sys; z=n.load(sys.argv[1]); z['test_images'].tofile(sys.argv[2]); z['test_labels'].astype('uint8').tofile(sys.argv[3])",
		src, imgPath, labPath).CombinedOutput(); err != nil {
		t.Fatalf("unpack test split: %v: %s", err, out)
	}
	imgs, err := os.ReadFile(imgPath)
	if err != nil {
		t.Fatal(err)
	}
	labs, err := os.ReadFile(labPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(labs) != 624 || len(imgs) != 624*28*28 {
		t.Fatalf("test split has %d labels and %d pixels, want 624 images of 28 x 28", len(labs), len(imgs))
	}
	ds := learning.Dataset{N: len(labs), C: 1, H: 28, W: 28, X: make([]float32, len(imgs))}
	for i, v := range imgs {
		ds.X[i] = float32(v)/127.5 - 1
	}
	if err := m.SetWeights(res.Weights); err != nil {
		t.Fatal(err)
	}
	probs, err := m.Predict(ds)
	if err != nil {
		t.Fatal(err)
	}
	scores := make([]float64, ds.N)
	labels := make([]int, ds.N)
	for i := range scores {
		scores[i] = float64(probs[2*i+1])
		labels[i] = int(labs[i])
	}
	thr, err := evaluation.Youden(scores, labels)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := evaluation.Binary(scores, labels, thr)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PneumoniaMNIST test after one external round on 524 images: AUC %.3f [%.3f, %.3f], sensitivity %.3f, specificity %.3f, loss %.3f",
		rep.AUC.Value, rep.AUC.Lower, rep.AUC.Upper, rep.Sensitivity.Value, rep.Specificity.Value, res.Metrics["loss"])
	if rep.AUC.Lower < 0.6 {
		t.Errorf("test AUC %.3f [%.3f, %.3f]: the round did not learn", rep.AUC.Value, rep.AUC.Lower, rep.AUC.Upper)
	}
}
