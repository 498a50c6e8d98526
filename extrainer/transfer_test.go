package extrainer

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"
)

// BenchmarkRoundTransfer measures a whole external round dominated by moving
// weights: a "cnn" of CONCORD_BENCH_WIDTH base width (default 192, about 3
// million parameters; 1104 gives about 100 million) trained for one step on
// eight 4 x 4 images. It reports the parameter count and the weight traffic
// (both directions) per second of round time.
func BenchmarkRoundTransfer(b *testing.B) {
	width := 192
	if v := os.Getenv("CONCORD_BENCH_WIDTH"); v != "" {
		var err error
		if width, err = strconv.Atoi(v); err != nil || width < 1 {
			b.Fatalf("CONCORD_BENCH_WIDTH=%q: want a positive integer", v)
		}
	}
	data := writeData(b, "transfer.npz", 8, 4, 4, 1)
	c := dial(b, trainer(b))
	manifest, global := testManifest(1, 4, 4, 2, width, 1)
	s := Settings{Epochs: 1, BatchSize: 8, Optimizer: "sgd", LR: 1e-4, Dataset: data}
	var elapsed time.Duration
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		start := time.Now()
		res, err := c.Train(ctx, "bench", 1, manifest, global, s, nil)
		elapsed += time.Since(start)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Weights) != len(global) {
			b.Fatalf("%d weights back, want %d", len(res.Weights), len(global))
		}
	}
	b.ReportMetric(float64(len(global)), "params")
	b.ReportMetric(float64(8*len(global))/1e6/(elapsed.Seconds()/float64(b.N)), "MB/s")
}
