package extrainer

import (
	"context"
	"math"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/proto/concordpb"
)

// blobData is blobs as the agent's pipeline hands them over: float32
// pixels in [-1, 1] and int labels.
func blobData(n, h, w int, seed uint64) learning.Dataset {
	imgs, labels := blobs(n, h, w, seed)
	d := learning.Dataset{N: n, C: 1, H: h, W: w, X: make([]float32, len(imgs)), Y: make([]int, n)}
	for i, v := range imgs {
		d.X[i] = float32(v)/127.5 - 1
	}
	for i, v := range labels {
		d.Y[i] = int(v)
	}
	return d
}

// TestShardsCut: shards hold at most ShardExamples examples, their ids
// follow their content, and non-binary masks and empty data are refused.
func TestShardsCut(t *testing.T) {
	d := blobData(ShardExamples+5, 4, 4, 1)
	s, err := Shards(d)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 2 || s[0].n != ShardExamples || s[1].n != 5 || s[0].ID == s[1].ID {
		t.Fatalf("%d shards (%+v); want 2 of %d and 5 examples with distinct ids", len(s), s, ShardExamples)
	}
	d.X[len(d.X)-1] += 0.5
	s2, err := Shards(d)
	if err != nil {
		t.Fatal(err)
	}
	if s2[0].ID != s[0].ID || s2[1].ID == s[1].ID {
		t.Errorf("one pixel changed in the second shard: ids %.8s %.8s, were %.8s %.8s", s2[0].ID, s2[1].ID, s[0].ID, s[1].ID)
	}
	d.Masks = make([]float32, d.N*16)
	d.Masks[17] = 0.5
	if _, err := Shards(d); err == nil || !strings.Contains(err.Error(), "mask value 0.5 at pixel 1 of example 1") {
		t.Errorf("soft mask: %v", err)
	}
	d.Masks[17], d.Y = 1, nil
	if s, err := Shards(d); err != nil || s[0].Size != s2[0].Size+int64(ShardExamples*16) {
		t.Errorf("segmentation shards: %v, first of %d bytes, want %d", err, s[0].Size, s2[0].Size+int64(ShardExamples*16))
	}
	if _, err := Shards(learning.Dataset{}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty: %v", err)
	}
}

// TestShardsTrainAndSettings: the trainer takes the shards once (a second
// sync sends none), trains on them across two shards, and each setting
// changes the update: balanced class weights, FedProx's μ, local steps and
// augmentation move the weights elsewhere than the plain round does, by far more than a
// repeat of the plain round differs from itself; DP-SGD's Poisson draws
// range over the examples of both shards. Costs about 15 s.
func TestShardsTrainAndSettings(t *testing.T) {
	c := dial(t, trainer(t))
	ctx := context.Background()
	d := blobData(ShardExamples+100, 8, 8, 7)
	// Unbalanced: three in four examples of class 0.
	for i := range d.Y {
		if i%4 != 3 {
			d.Y[i] = 0
		}
	}
	shards, err := Shards(d)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := c.SyncShards(ctx, shards)
	if err != nil || sent != 2 {
		t.Fatalf("first sync sent %d shards (%v), want 2", sent, err)
	}
	if sent, err = c.SyncShards(ctx, shards); err != nil || sent != 0 {
		t.Fatalf("second sync sent %d shards (%v), want 0", sent, err)
	}
	ids := []string{shards[0].ID, shards[1].ID}
	manifest, global := testManifest(1, 8, 8, 2, 2, 3)
	base := Settings{Epochs: 1, BatchSize: 256, Optimizer: "sgd", LR: 0.1, Momentum: 0.5, Seed: 11, Shards: ids}
	train := func(s Settings) []float32 {
		t.Helper()
		r, err := c.Train(ctx, "job-shards", 1, manifest, global, s, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Samples != d.N {
			t.Fatalf("trained on %d samples, want %d", r.Samples, d.N)
		}
		return r.Weights
	}
	dist := func(a, b []float32) float64 {
		var s float64
		for i := range a {
			s += float64(a[i]-b[i]) * float64(a[i]-b[i])
		}
		return math.Sqrt(s)
	}
	w0 := train(base)
	noise := dist(w0, train(base))
	if moved := dist(w0, global); moved == 0 {
		t.Fatal("the plain round did not move the weights")
	}
	weighted := base
	weighted.ClassWeights = []float64{float64(d.N) / (2 * float64(d.N-d.N/4)), float64(d.N) / (2 * float64(d.N/4))}
	prox := base
	prox.ProxMu, prox.Epochs = 5, 2
	prox0 := base
	prox0.Epochs = 2
	steps := base
	steps.Epochs, steps.Steps = 0, 3
	aug := base
	aug.Augment = true
	// DP-SGD's Poisson sampling ranges over both shards: 20 steps at q
	// 0.02 draw about 860 of 2148 examples (sd about 29).
	dps := base
	dps.DP = &DPSettings{SampleRate: 0.02, Clip: 1, NoiseMultiplier: 0.5, Steps: 20}
	r, err := c.Train(ctx, "job-shards-dp", 1, manifest, global, dps, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := 0.02 * 20 * float64(d.N); r.Samples != d.N || r.Steps != 20 || math.Abs(float64(r.Drawn)-want) > 6*math.Sqrt(want) {
		t.Errorf("DP over shards: %d samples, %d steps, %d drawn; want %d, 20 and about %.0f", r.Samples, r.Steps, r.Drawn, d.N, want)
	}
	for _, c := range []struct {
		name      string
		s         Settings
		reference []float32
	}{
		{"balanced class weights", weighted, w0},
		{"prox_mu 5 (two epochs)", prox, train(prox0)},
		{"local_steps 3 (of 9 an epoch)", steps, w0},
		{"augmentation", aug, w0},
	} {
		if got := dist(train(c.s), c.reference); !(got > 100*noise) || got == 0 {
			t.Errorf("%s moved the update by %g, the repeat noise is %g: the setting did not reach training", c.name, got, noise)
		}
	}
}

// TestShardPutRefuses: a shard whose bytes do not hash to its id, or one
// over the size bound, is refused and never enters the cache; training on a
// shard the cache lacks fails with FailedPrecondition.
func TestShardPutRefuses(t *testing.T) {
	c := dial(t, trainer(t))
	ctx := context.Background()
	shards, err := Shards(blobData(10, 4, 4, 9))
	if err != nil {
		t.Fatal(err)
	}
	bad := shards[0]
	bad.ID = strings.Repeat("ab", 32)
	if _, err := c.SyncShards(ctx, []Shard{bad}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "not to its id") {
		t.Errorf("wrong hash: %v, want InvalidArgument", err)
	}
	put, err := c.rpc.DataPut(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := put.Send(&concordpb.ShardChunk{ShardId: strings.Repeat("cd", 32), Size: MaxShardBytes + 1, Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := put.CloseAndRecv(); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("oversized shard: %v, want ResourceExhausted", err)
	}
	r, err := c.rpc.DataHave(ctx, &concordpb.DataHaveRequest{ShardIds: []string{bad.ID, strings.Repeat("cd", 32)}})
	if err != nil || len(r.GetMissing()) != 2 {
		t.Errorf("after refusals the cache lacks %v (%v), want both", r.GetMissing(), err)
	}
	if _, err := c.rpc.DataHave(ctx, &concordpb.DataHaveRequest{ShardIds: []string{"../../etc/passwd"}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a path as shard id: %v, want InvalidArgument", err)
	}
	manifest, global := testManifest(1, 4, 4, 2, 2, 3)
	_, err = c.Train(ctx, "job-x", 1, manifest, global, Settings{Epochs: 1, BatchSize: 4, Optimizer: "sgd", LR: 0.1, Shards: []string{bad.ID}}, nil)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "not in the trainer's cache") {
		t.Errorf("training on a missing shard: %v, want FailedPrecondition", err)
	}
}

// BenchmarkShards measures cutting and hashing a site's pipeline output
// (256 images of 224×224, 51 MB of float32), which the agent does every
// round to learn which shards the trainer lacks.
func BenchmarkShards(b *testing.B) {
	const n, side = 256, 224
	d := learning.Dataset{N: n, C: 1, H: side, W: side, X: make([]float32, n*side*side), Y: make([]int, n)}
	for i := range d.X {
		d.X[i] = float32(i%255)/127.5 - 1
	}
	b.SetBytes(int64(4 * len(d.X)))
	for b.Loop() {
		if _, err := Shards(d); err != nil {
			b.Fatal(err)
		}
	}
}
