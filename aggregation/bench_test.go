package aggregation

import "testing"

const benchParams = 1 << 20 // about 1M parameters

func benchVector(n int, seed float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = seed * float32(i%997-498) * 1e-3
	}
	return v
}

// BenchmarkServerStep is one server step on a 1M-parameter model.
func BenchmarkServerStep(b *testing.B) {
	global, mean := benchVector(benchParams, 1), benchVector(benchParams, 1.01)
	for _, s := range []string{StrategyFedAvg, StrategyFedAdam, StrategyFedYogi, StrategyFedAdagrad} {
		b.Run(s, func(b *testing.B) {
			opt, err := New(Config{Strategy: s})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(4 * benchParams)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := opt.Step(global, mean); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRobust is the robust rules over 10 sites' 1M-parameter updates.
func BenchmarkRobust(b *testing.B) {
	updates := make([][]float32, 10)
	for i := range updates {
		updates[i] = benchVector(benchParams, float32(i+1))
	}
	for _, cfg := range []Config{{Strategy: StrategyMedian}, {Strategy: StrategyTrimmedMean, TrimFraction: 0.2}} {
		b.Run(cfg.Strategy, func(b *testing.B) {
			b.SetBytes(int64(4 * benchParams * len(updates)))
			for b.Loop() {
				if _, err := cfg.RobustMean(updates); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
