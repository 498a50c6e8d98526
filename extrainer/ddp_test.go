package extrainer

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestTorchrunDDPMatchesOneProcess: trainer.py as two CPU processes of a
// process group (gloo), started with the environment torchrun gives them
// (Debian's torch 1.13 torchrun fails on Python 3.11 before starting any
// process), trains a round, each rank on its half of every batch, to the
// weights one process reaches (momentum, FedProx and class weights on).
// Costs about 15 s (two more PyTorch starts); a long test.
func TestTorchrunDDPMatchesOneProcess(t *testing.T) {
	long(t)
	py := python(t)
	one := dial(t, trainer(t))
	script, err := filepath.Abs(filepath.Join("..", "deploy", "trainer", "trainer.py"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cache := t.TempDir()
	var stderr syncBuffer
	var stdout io.Reader
	for rank := 1; rank >= 0; rank-- {
		cmd := exec.Command(py, script, "serve", "--device", "cpu", "--threads", "1", "--grace", "2",
			"--listen", "127.0.0.1:0", "--shard-cache", cache)
		cmd.Env = append(os.Environ(), "WORLD_SIZE=2", "RANK="+strconv.Itoa(rank), "LOCAL_RANK="+strconv.Itoa(rank),
			"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+port)
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stdout = out
		t.Cleanup(func() { stop(cmd) })
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ranks' stderr:\n%s", stderr.String())
		}
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var hello struct{ Listening string }
			if json.Unmarshal(sc.Bytes(), &hello) == nil && hello.Listening != "" {
				line <- hello.Listening
				break
			}
		}
		close(line)
	}()
	var addr string
	select {
	case addr = <-line:
	case <-time.After(90 * time.Second):
		t.Fatal("rank 0 did not report its address within 90 s")
	}
	if addr == "" {
		t.Fatal("rank 0 ended without listening")
	}
	two := dial(t, addr)

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	d := blobData(64, 16, 16, 4)
	shards, err := Shards(d)
	if err != nil {
		t.Fatal(err)
	}
	manifest, global := testManifest(1, 16, 16, 2, 4, 5)
	s := Settings{Epochs: 1, BatchSize: 16, Optimizer: "sgd", LR: 0.1, Momentum: 0.5, ProxMu: 0.3, Seed: 3,
		ClassWeights: []float64{1, 2}, Shards: []string{shards[0].ID}}
	var res [2]Result
	for i, c := range []*Client{one, two} {
		if _, err := c.SyncShards(ctx, shards); err != nil {
			t.Fatal(err)
		}
		if res[i], err = c.Train(ctx, "ddp", 1, manifest, global, s, nil); err != nil {
			t.Fatal(err)
		}
	}
	worst, moved := weightGap(res[0].Weights, res[1].Weights, global)
	t.Logf("largest weight change %.3g, largest one-process/two-rank difference %.2g; losses %.6f and %.6f",
		moved, worst, res[0].Metrics["loss"], res[1].Metrics["loss"])
	if moved < 1e-3 || worst > 1e-4*moved {
		t.Errorf("two ranks differ from one process by up to %.2g (largest change %.3g)", worst, moved)
	}
	if math.Abs(res[0].Metrics["loss"]-res[1].Metrics["loss"]) > 1e-5 {
		t.Errorf("loss %v on two ranks, %v in one process", res[1].Metrics["loss"], res[0].Metrics["loss"])
	}
}
