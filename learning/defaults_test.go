package learning

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func TestDefaults(t *testing.T) {
	for _, c := range []struct {
		n    int
		want Recipe
	}{
		// BreastMNIST: small, so batch 32, width 24, no augmentation, and
		// the step floor (15 epochs would be only 270 steps).
		{546, Recipe{Steps: 1800, BatchSize: 32, Width: 24}},
		// PneumoniaMNIST: 15 epochs of 74 steps is below the floor too.
		{4708, Recipe{Steps: 1800, BatchSize: 64, Width: 24}},
		// A large set: 15 epochs of 313 steps exceed the floor.
		{20000, Recipe{Steps: 15 * 313, BatchSize: 64, Width: 24}},
		{999, Recipe{Steps: 1800, BatchSize: 32, Width: 24}},
		{1000, Recipe{Steps: 1800, BatchSize: 64, Width: 24}},
		{0, Recipe{Steps: 1800, BatchSize: 32, Width: 24}},
	} {
		if got := Defaults(c.n); got != c.want {
			t.Errorf("Defaults(%d) = %+v, want %+v", c.n, got, c.want)
		}
	}
	if got := CheckInterval(1800); got != 18 {
		t.Errorf("CheckInterval(1800) = %d, want 18", got)
	}
	if got := CheckInterval(50); got != 1 {
		t.Errorf("CheckInterval(50) = %d, want 1", got)
	}
}

func TestStepDecay(t *testing.T) {
	f := StepDecay(100)
	for s, want := range map[int]float64{0: 1, 49: 1, 50: 0.1, 74: 0.1, 75: 0.01, 99: 0.01} {
		if got := f(s); got != want {
			t.Errorf("StepDecay(100)(%d) = %v, want %v", s, got, want)
		}
	}
}

// TestCheckAndStepSchedule: Check runs every CheckEvery steps and after the
// last, LRStepSchedule is asked at every step, and a Check error stops
// training.
func TestCheckAndStepSchedule(t *testing.T) {
	ds := separable(32, 7)
	m, _ := New(Spec{Channels: 1, Height: 28, Width: 28, Classes: 2, BaseWidth: 2}, 1)
	var checks, sched []int
	if _, err := m.Train(context.Background(), ds, TrainConfig{Steps: 7, BatchSize: 16, CheckEvery: 3,
		LRStepSchedule: func(s int) float64 { sched = append(sched, s); return 1 },
		Check:          func(s int) error { checks = append(checks, s); return nil }}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(checks, []int{3, 6, 7}) || !slices.Equal(sched, []int{0, 1, 2, 3, 4, 5, 6}) {
		t.Fatalf("Check saw %v, LRStepSchedule %v", checks, sched)
	}
	stop := errors.New("enough")
	res, err := m.Train(context.Background(), ds, TrainConfig{Steps: 7, BatchSize: 16, CheckEvery: 2,
		Check: func(s int) error {
			if s == 4 {
				return stop
			}
			return nil
		}})
	if !errors.Is(err, stop) || res.Steps != 4 {
		t.Fatalf("stopped with %v after %d steps, want the Check error after 4", err, res.Steps)
	}
	if _, err := m.Train(context.Background(), ds, TrainConfig{Steps: 1, Check: func(int) error { return nil }}); err == nil {
		t.Error("Check without CheckEvery accepted")
	}
}
