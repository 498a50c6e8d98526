package siteagent

import (
	"context"
	"crypto/ed25519"
	cryptorand "crypto/rand"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/extrainer"
	"github.com/concord-fl/concord/internal/testtrainer"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/privacy/dp"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// siteData is n random 28×28 examples with alternating labels, as the
// agent's pipeline hands them over (pixels in [-1, 1]).
func siteData(n int) learning.Dataset {
	rng := rand.New(rand.NewPCG(5, 6))
	d := learning.Dataset{N: n, C: 1, H: 28, W: 28, X: make([]float32, n*28*28), Y: make([]int, n)}
	for i := range d.X {
		d.X[i] = float32(rng.IntN(256))/127.5 - 1
	}
	for i := range d.Y {
		d.Y[i] = i % 2
	}
	return d
}

// startPyTrainer runs deploy/trainer/trainer.py on the CPU on a free
// loopback port with its shard cache in cacheDir, until the test ends.
func startPyTrainer(t *testing.T, cacheDir string) string { return testtrainer.Start(t, cacheDir, 2) }

// TestExternalTrainerDPTask: a site that trains through the PyTorch
// trainer takes a record-level DP task end to end: the trainer runs the
// round's DP-SGD steps, the agent checks the draws, charges its ledger
// with the steps that ran and uploads a signed receipt and no metric.
func TestExternalTrainerDPTask(t *testing.T) {
	data := siteData(64)
	addr := startPyTrainer(t, t.TempDir())
	tr, err := NewExternalTrainer(context.Background(), extrainer.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })

	p, cfg := startPeer(t)
	spec := dpJob(t, ", level: record, example_clip: 1, delta: 1e-5, noise_multiplier: 1.0")
	m, err := learning.New(jobspec.ModelSpec(spec), spec.Seed)
	if err != nil {
		t.Fatal(err)
	}
	global := m.Weights()
	_, coord, _ := ed25519.GenerateKey(cryptorand.Reader)
	got, failed := make(chan received, 2), make(chan received, 2)
	p.serve(learning.EncodeWeights(global), uploadServer(coord, 0, failed, got))
	cfg.Data, cfg.Trainer = MemoryData{Data: data}, tr
	cfg.Privacy = PrivacyPolicy{Budget: &dp.Budget{Level: dp.Record, Epsilon: 8, Delta: 1e-5}}
	stop := startAgent(t, cfg)
	<-p.hello

	start := time.Now()
	p.out <- &pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: dpTask(spec, "job-ext", 1, len(global))}}
	var r received
	select {
	case r = <-got:
	case <-time.After(60 * time.Second):
		t.Fatal("no upload")
	}
	t.Logf("DP round through the PyTorch trainer uploaded after %v", time.Since(start).Round(time.Millisecond))
	h := r.header
	if len(h.Metrics) != 0 {
		t.Errorf("a DP update carries metrics computed on the records: %v", h.Metrics)
	}
	receipt, err := dp.VerifyReceipt(h.PrivacyReceipt, cfg.TLS.Certificates[0].Leaf.PublicKey)
	if err != nil {
		t.Fatalf("the receipt does not verify: %v", err)
	}
	q, steps := 16.0/64, 4 // one epoch of round(1/q) steps
	if receipt.JobID != "job-ext" || receipt.SampleRate != q || receipt.Steps != steps || receipt.NoiseMultiplier != 1 {
		t.Errorf("receipt %+v, want q %v, %d steps, σ 1", receipt, q, steps)
	}
	update := learning.DecodeWeightsInto(nil, r.data)
	var norm float64
	for _, v := range update {
		norm += float64(v) * float64(v)
	}
	if len(update) != len(global) || norm == 0 || math.IsNaN(norm) {
		t.Errorf("update of %d values with squared norm %v", len(update), norm)
	}
	stop()
	rec, err := ReadPrivacy(cfg.StateDir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := dp.Spent(1, q, steps, 1e-5)
	if e := rec.Ledger.Entries(); len(e) != 1 || e[0].Steps != steps {
		t.Fatalf("ledger entries %+v, want one of %d steps", e, steps)
	}
	if spent, _ := rec.Ledger.Spent(); math.Abs(spent-want) > 1e-12 {
		t.Errorf("ledger spent %v, want %v", spent, want)
	}
}

// TestExternalTrainerDPRefusesOtherData: data of another number of
// examples than the DP settings were computed for would make the sampling
// rate and the accounting wrong; the task fails, naming both counts, before
// anything reaches the trainer (none is connected here).
func TestExternalTrainerDPRefusesOtherData(t *testing.T) {
	spec := dpJob(t, ", level: record, example_clip: 1, delta: 1e-5, noise_multiplier: 1.0")
	d, err := jobspec.DPConfig(spec, 64)
	if err != nil {
		t.Fatal(err)
	}
	m, err := learning.New(jobspec.ModelSpec(spec), spec.Seed)
	if err != nil {
		t.Fatal(err)
	}
	var tr ExternalTrainer
	_, err = tr.Train(context.Background(), TrainRequest{JobID: "j", Round: 1, Spec: spec, Global: m.Weights(), Data: siteData(48), DP: d})
	if err == nil || !strings.Contains(err.Error(), "the data has 48 examples, but the DP sampling rate and privacy accounting are for 64") {
		t.Errorf("Train: %v; want a refusal naming 48 and 64 examples", err)
	}
}
