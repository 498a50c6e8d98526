package extrainer

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// BenchmarkTorchTrain reports the PyTorch baseline's training speed for the
// default "cnn" (width 16, 28 x 28 grey, batch 64, GOMAXPROCS threads) as
// samples/s; compare with package learning's training benchmark on the same
// machine.
func BenchmarkTorchTrain(b *testing.B) {
	py := python(b)
	script, _ := filepath.Abs(filepath.Join("..", "deploy", "trainer", "bench_torch.py"))
	tb := TorchBench{Python: py, Script: script, Batch: 64, Threads: runtime.GOMAXPROCS(0), Seconds: 5,
		Width: 16, Size: 28, Channels: 1, Classes: 2}
	var r TorchBenchResult
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		var err error
		r, err = tb.Run(ctx)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		if r.Batch != tb.Batch || r.Threads != tb.Threads || r.Steps < 1 {
			b.Fatalf("result %+v does not echo the settings", r)
		}
	}
	b.ReportMetric(r.SamplesPerS, "samples/s")
}
