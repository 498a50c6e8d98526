package aggregation

import (
	"errors"
	"math"
	"slices"
	"testing"
)

func TestRobustRules(t *testing.T) {
	three := [][]float32{{1, 5, 3}, {2, 9, -1}, {10, 0, 4}}
	four := append(slices.Clone(three), []float32{4, 1, 2})
	five := [][]float32{{1}, {2}, {3}, {4}, {100}}
	tests := []struct {
		name    string
		updates [][]float32
		cfg     Config
		want    []float32
	}{
		// Columns sorted: [1 2 10] [0 5 9] [-1 3 4] → middles.
		{"median odd", three, Config{Strategy: StrategyMedian}, []float32{2, 5, 3}},
		// Columns sorted: [1 2 4 10] [0 1 5 9] [-1 2 3 4] → means of the middle pairs.
		{"median even", four, Config{Strategy: StrategyMedian}, []float32{3, 3, 2.5}},
		// k = ⌊0.25·4⌋ = 1: the same middle pairs.
		{"trimmed 0.25 of 4", four, Config{Strategy: StrategyTrimmedMean, TrimFraction: 0.25}, []float32{3, 3, 2.5}},
		// k = ⌊0.2·5⌋ = 1: mean(2 3 4) = 3; the outlier 100 is gone.
		{"trimmed 0.2 of 5", five, Config{Strategy: StrategyTrimmedMean, TrimFraction: 0.2}, []float32{3}},
		// Default fraction 0.1 of 5: k = 0, the plain mean (1+2+3+4+100)/5 = 22.
		{"trimmed default of 5", five, Config{Strategy: StrategyTrimmedMean}, []float32{22}},
		{"median of one", [][]float32{{7, -7}}, Config{Strategy: StrategyMedian}, []float32{7, -7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := cloneAll(tc.updates)
			got, err := tc.cfg.RobustMean(tc.updates)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			for i := range in {
				if !slices.Equal(in[i], tc.updates[i]) {
					t.Fatal("the rule modified its input")
				}
			}
			// Order of arrival must not matter.
			rev := cloneAll(tc.updates)
			slices.Reverse(rev)
			if again, _ := tc.cfg.RobustMean(rev); !slices.Equal(again, got) {
				t.Errorf("reversed order gives %v, want %v", again, got)
			}
		})
	}
}

func TestRobustRulesReject(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		name    string
		updates [][]float32
		want    error
	}{
		{"no updates", nil, ErrEmpty},
		{"empty vectors", [][]float32{{}, {}}, ErrEmpty},
		{"ragged", [][]float32{{1, 2}, {1}}, ErrLength},
		{"NaN", [][]float32{{1, 2}, {nan, 1}}, ErrNotFinite},
	}
	for _, tc := range tests {
		if _, err := Median(tc.updates); !errors.Is(err, tc.want) {
			t.Errorf("Median %s: error = %v, want %v", tc.name, err, tc.want)
		}
		if _, err := TrimmedMean(tc.updates, 0.1); !errors.Is(err, tc.want) {
			t.Errorf("TrimmedMean %s: error = %v, want %v", tc.name, err, tc.want)
		}
	}
	for _, f := range []float64{-0.1, 0.5, math.NaN()} {
		if _, err := TrimmedMean([][]float32{{1}}, f); err == nil {
			t.Errorf("TrimmedMean fraction %v accepted", f)
		}
	}
	if _, err := (Config{Strategy: StrategyFedAvg}).RobustMean([][]float32{{1}}); err == nil {
		t.Error("RobustMean accepted a streaming strategy")
	}
}

func cloneAll(u [][]float32) [][]float32 {
	out := make([][]float32, len(u))
	for i := range u {
		out[i] = slices.Clone(u[i])
	}
	return out
}
