package aggregation

import (
	"errors"
	"math"
	"slices"
	"testing"
)

// The worked example used for all three adaptive optimisers, with
// η = 0.1, β₁ = 0.5, β₂ = 0.5, τ = 0.5, so m₀ = [0 0] and v₀ = τ² = [0.25 0.25].
//
// Round 1: global [1 0], mean [2 0]  → Δ = [1 0],  m = 0.5·0 + 0.5·Δ = [0.5 0]
// Round 2: global [0 0], mean [-1 2] → Δ = [-1 2], m = 0.5·[0.5 0] + 0.5·Δ = [-0.25 1]
// Round 3: global [0 0], mean [0 1]  → Δ = [0 1],  m = 0.5·[-0.25 1] + 0.5·Δ = [-0.125 1]
//
// FedAdagrad, v += Δ²:
//
//	v₁ = [1.25 0.25]  → g₁ = [1 + 0.1·0.5/(√1.25+0.5), 0]  = [1.0309017 0]
//	v₂ = [2.25 4.25]  → g₂ = [0.1·-0.25/(1.5+0.5), 0.1·1/(√4.25+0.5)] = [-0.0125 0.0390388]
//	v₃ = [2.25 5.25]  → g₃ = [0.1·-0.125/2, 0.1/(√5.25+0.5)] = [-0.00625 0.0358259]
//
// FedAdam, v = 0.5·v + 0.5·Δ²:
//
//	v₁ = [0.625 0.125]   → g₁ = [1 + 0.05/(√0.625+0.5), 0]  = [1.0387426 0]
//	v₂ = [0.8125 2.0625] → g₂ = [-0.025/(√0.8125+0.5), 0.1/(√2.0625+0.5)] = [-0.0178240 0.0513912]
//	v₃ = [0.40625 1.53125] → g₃ = [-0.0125/(√0.40625+0.5), 0.1/(√1.53125+0.5)] = [-0.0109902 0.0575396]
//
// FedYogi, v = v − 0.5·Δ²·sign(v − Δ²):
//
//	v₁ = [0.25+0.5, 0.25−0] = [0.75 0.25]    → g₁ = [1 + 0.05/(√0.75+0.5), 0] = [1.0366025 0]
//	v₂ = [0.75+0.5, 0.25+2] = [1.25 2.25]    → g₂ = [-0.025/(√1.25+0.5), 0.1/(1.5+0.5)] = [-0.0154508 0.05]
//	v₃ = [1.25−0, 2.25−0.5] = [1.25 1.75]    (v > Δ² now shrinks v)
//	                                         → g₃ = [-0.0125/(√1.25+0.5), 0.1/(√1.75+0.5)] = [-0.0077254 0.0548584]
func TestAdaptiveOptimizersHandComputed(t *testing.T) {
	rounds := []struct{ global, mean []float32 }{
		{[]float32{1, 0}, []float32{2, 0}},
		{[]float32{0, 0}, []float32{-1, 2}},
		{[]float32{0, 0}, []float32{0, 1}},
	}
	sq := math.Sqrt
	tests := []struct {
		strategy string
		want     [3][2]float64
	}{
		{StrategyFedAdagrad, [3][2]float64{
			{1 + 0.05/(sq(1.25)+0.5), 0},
			{-0.025 / (1.5 + 0.5), 0.1 / (sq(4.25) + 0.5)},
			{-0.0125 / (1.5 + 0.5), 0.1 / (sq(5.25) + 0.5)},
		}},
		{StrategyFedAdam, [3][2]float64{
			{1 + 0.05/(sq(0.625)+0.5), 0},
			{-0.025 / (sq(0.8125) + 0.5), 0.1 / (sq(2.0625) + 0.5)},
			{-0.0125 / (sq(0.40625) + 0.5), 0.1 / (sq(1.53125) + 0.5)},
		}},
		{StrategyFedYogi, [3][2]float64{
			{1 + 0.05/(sq(0.75)+0.5), 0},
			{-0.025 / (sq(1.25) + 0.5), 0.1 / (1.5 + 0.5)},
			{-0.0125 / (sq(1.25) + 0.5), 0.1 / (sq(1.75) + 0.5)},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.strategy, func(t *testing.T) {
			opt, err := New(Config{Strategy: tc.strategy, ServerLR: 0.1, Beta1: 0.5, Beta2: 0.5, Tau: 0.5})
			if err != nil {
				t.Fatal(err)
			}
			if opt.Name() != tc.strategy {
				t.Errorf("Name() = %q", opt.Name())
			}
			for r, in := range rounds {
				got, err := opt.Step(in.global, in.mean)
				if err != nil {
					t.Fatalf("round %d: %v", r+1, err)
				}
				for i, w := range tc.want[r] {
					if math.Abs(float64(got[i])-w) > 1e-7*math.Max(1, math.Abs(w)) {
						t.Errorf("round %d parameter %d = %.9g, want %.9g", r+1, i, got[i], w)
					}
				}
			}
		})
	}
}

func TestAdaptiveStateRoundTrip(t *testing.T) {
	for _, strategy := range []string{StrategyFedAdam, StrategyFedYogi, StrategyFedAdagrad} {
		t.Run(strategy, func(t *testing.T) {
			cfg := Config{Strategy: strategy}
			a, _ := New(cfg)
			if _, err := a.Step([]float32{1, 2, 3}, []float32{1.5, 1, 3.25}); err != nil {
				t.Fatal(err)
			}
			state, err := a.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := New(cfg) // a restarted coordinator
			if err := b.UnmarshalState(state); err != nil {
				t.Fatal(err)
			}
			g, m := []float32{0.5, -1, 2}, []float32{0.25, -0.5, 2.5}
			wantNext, err := a.Step(g, m)
			if err != nil {
				t.Fatal(err)
			}
			gotNext, err := b.Step(g, m)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(gotNext, wantNext) {
				t.Errorf("after restore: %v, want %v", gotNext, wantNext)
			}
			// The restored moments matter: a fresh optimiser gives another step.
			fresh, _ := New(cfg)
			if freshNext, _ := fresh.Step(g, m); slices.Equal(freshNext, wantNext) {
				t.Error("fresh optimiser matches the restored one; state is not being used")
			}

			other := StrategyFedAdam
			if strategy == StrategyFedAdam {
				other = StrategyFedYogi
			}
			c, _ := New(Config{Strategy: other})
			if err := c.UnmarshalState(state); !errors.Is(err, ErrState) {
				t.Errorf("loading %s state into %s: error = %v, want ErrState", strategy, other, err)
			}
			if err := b.UnmarshalState(flipByte(state, len(state)/2)); !errors.Is(err, ErrState) {
				t.Errorf("corrupt state: error = %v, want ErrState", err)
			}
		})
	}
}

func TestStepRejectsBadInput(t *testing.T) {
	nan := float32(math.NaN())
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			opt, err := New(Config{Strategy: strategy})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := opt.Step([]float32{1, 2}, []float32{1, 2}); err != nil {
				t.Fatal(err)
			}
			before, _ := opt.MarshalState()
			cases := []struct {
				global, mean []float32
				want         error
			}{
				{[]float32{1, 2}, []float32{1}, ErrLength},
				{[]float32{1, 2, 3}, []float32{1, 2, 3}, ErrLength}, // model size changed mid-job
				{[]float32{1, nan}, []float32{1, 2}, ErrNotFinite},
				{[]float32{1, 2}, []float32{float32(math.Inf(-1)), 2}, ErrNotFinite},
				{nil, nil, ErrEmpty},
			}
			for _, c := range cases {
				_, err := opt.Step(c.global, c.mean)
				adaptiveOnly := len(c.global) == 3
				if adaptiveOnly && (strategy != StrategyFedAdam && strategy != StrategyFedYogi && strategy != StrategyFedAdagrad) {
					continue // stateless strategies accept any consistent size
				}
				if !errors.Is(err, c.want) {
					t.Errorf("Step(%v, %v) error = %v, want %v", c.global, c.mean, err, c.want)
				}
			}
			after, _ := opt.MarshalState()
			if !slices.Equal(before, after) {
				t.Error("a rejected step changed the optimiser state")
			}
		})
	}
}

func TestMeanStrategiesAdoptTheClientMean(t *testing.T) {
	for _, strategy := range []string{"", StrategyFedAvg, StrategyFedProx, StrategyMedian, StrategyTrimmedMean} {
		opt, err := New(Config{Strategy: strategy})
		if err != nil {
			t.Fatal(err)
		}
		mean := []float32{0.5, -7}
		got, err := opt.Step([]float32{1, 1}, mean)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, mean) {
			t.Errorf("%q: Step = %v, want the client mean %v", strategy, got, mean)
		}
		got[0] = 99
		if mean[0] != 0.5 {
			t.Errorf("%q: Step returned its argument instead of a copy", strategy)
		}
		state, _ := opt.MarshalState()
		if err := opt.UnmarshalState(state); err != nil {
			t.Errorf("%q: state round trip: %v", strategy, err)
		}
	}
}

func TestConfig(t *testing.T) {
	valid := []Config{
		{},
		{Strategy: "FedAdam"},
		{Strategy: StrategyFedYogi, ServerLR: 1, Beta1: 0.1, Beta2: 0.2, Tau: 1e-9},
		{Strategy: StrategyTrimmedMean, TrimFraction: 0.49},
		{Strategy: StrategyFedProx, ProxMu: 1},
	}
	for _, c := range valid {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	invalid := []Config{
		{Strategy: "fedsgd"},
		{Strategy: StrategyFedAdam, Beta1: 1},
		{Strategy: StrategyFedAdam, Beta2: 1.5},
		{Strategy: StrategyFedAdam, ServerLR: -1},
		{Strategy: StrategyFedYogi, Tau: math.NaN()},
		{Strategy: StrategyTrimmedMean, TrimFraction: 0.5},
		{Strategy: StrategyFedProx, ProxMu: -0.1},
	}
	for _, c := range invalid {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: Validate accepted it", c)
		}
		if _, err := New(c); err == nil {
			t.Errorf("%+v: New accepted it", c)
		}
	}
	d := Config{Strategy: StrategyFedAdam}.WithDefaults()
	if d.ServerLR != DefaultServerLR || d.Beta1 != 0.9 || d.Beta2 != 0.99 || d.Tau != 1e-3 {
		t.Errorf("fedadam defaults = %+v", d)
	}
	if d := (Config{Strategy: StrategyFedProx}).WithDefaults(); d.ProxMu != 0.01 {
		t.Errorf("fedprox default mu = %v", d.ProxMu)
	}
	for s, robust := range map[string]bool{StrategyMedian: true, StrategyTrimmedMean: true, StrategyFedAvg: false, StrategyFedAdam: false} {
		if got := (Config{Strategy: s}).Robust(); got != robust {
			t.Errorf("%s: Robust() = %v", s, got)
		}
	}
}
