package learning

import (
	"context"
	"reflect"
	"testing"
	"time"
)

// accScore is a validation score for the tests: the mean probability given
// to the true class, higher is better (finer than accuracy on a few steps).
func accScore(m *Model, val Dataset) (float64, error) {
	p, err := m.Predict(val)
	if err != nil {
		return 0, err
	}
	var sum float64
	for i := 0; i < val.N; i++ {
		sum += float64(p[i*2+val.Y[i]])
	}
	return sum / float64(val.N), nil
}

func tinyTuner() Tuner {
	cands := SampleCandidates(4, 1)
	for i := range cands {
		cands[i].Width = 4 // keeps the test fast; Width is still per candidate
		cands[i].EMA = 0   // an average over 8 steps would hide what they learnt
	}
	cands[0].LR = 1e-9 // a loser the search must drop: it cannot learn
	return Tuner{Spec: Spec{Channels: 1, Height: 28, Width: 28, Classes: 2}, Seed: 1,
		MinSteps: 8, Eta: 2, Candidates: cands, Workers: 2, Score: accScore, ChecksPerTrial: 2}
}

// The search halves by validation score, trains survivors longer, and is
// reproducible; it is given only train and val, so the test split cannot
// influence what it chooses.
func TestTunerSuccessiveHalving(t *testing.T) {
	train, val := separable(64, 1), separable(48, 2)
	var runs [2]TuneResult
	for i := range runs {
		res, err := tinyTuner().Search(context.Background(), train, val)
		if err != nil {
			t.Fatal(err)
		}
		runs[i] = res
	}
	res := runs[0]
	for _, tr := range res.Trials {
		t.Logf("%+v", tr)
	}
	// 4 trials at 8 steps, 2 at 16; the rung that keeps one ends the search.
	if len(res.Trials) != 6 || res.Best.Rung != 1 || res.Best.Steps != 16 {
		t.Fatalf("trials %d, best %+v: want 6 trials and the best at rung 1 with 16 steps", len(res.Trials), res.Best)
	}
	for _, tr := range res.Trials {
		if tr.ID == 0 && tr.Rung > 0 {
			t.Errorf("candidate 0 (learning rate 1e-9) was promoted: %+v", tr)
		}
	}
	if res.Model == nil || res.Model.Spec().BaseWidth != res.Best.Candidate.Width {
		t.Fatalf("model %v does not match the best trial %+v", res.Model, res.Best)
	}
	if got, _ := accScore(res.Model, val); got != res.Best.ValAUC {
		t.Errorf("returned model scores %.4f on val, the table says %.4f", got, res.Best.ValAUC)
	}
	for _, r := range runs {
		for i := range r.Trials {
			if r.Trials[i].Seconds <= 0 {
				t.Errorf("trial %+v has no wall time", r.Trials[i])
			}
			r.Trials[i].Seconds = 0 // the only field that may differ
		}
	}
	if !reflect.DeepEqual(runs[0].Trials, runs[1].Trials) {
		t.Errorf("two searches with one seed differ:\n%+v\n%+v", runs[0].Trials, runs[1].Trials)
	}
}

// A budget that has already ended launches nothing and says so.
func TestTunerBudgetEnded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := tinyTuner().Search(ctx, separable(32, 1), separable(16, 2))
	if err == nil || !res.Stopped {
		t.Fatalf("err %v, stopped %v: want an error and Stopped", err, res.Stopped)
	}
}

// A budget-sized rung 0 admits candidates past FitFrom only while the
// projected search (each later rung 1/eta of the candidates at eta times
// the steps) fits nine tenths of the budget.
func TestTunerFitsTheBudget(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(100*time.Second))
	defer cancel()
	tu := Tuner{FitFrom: 6}
	took := []float64{4, 6} // 5 s a rung-0 trial
	for _, tc := range []struct {
		k, workers int
		want       bool
	}{
		{5, 1, true},   // within FitFrom: always
		{7, 1, true},   // 8 candidates: 8·5 + 2·3·5 = 70 s
		{8, 1, true},   // 9: 9·5 + 3·3·5 = 90 s
		{9, 1, false},  // 10: 10·5 + 3·3·5 = 95 s
		{17, 2, false}, // 18 on two workers: 9·5 + 3·3·5 + 1·9·5 = 135 s
		{15, 2, true},  // 16 on two workers: 8·5 + 3·3·5 = 85 s
	} {
		if got := tu.admit(ctx, start, tc.k, took, 3, tc.workers); got != tc.want {
			t.Errorf("candidate %d on %d workers: admitted %v, want %v", tc.k, tc.workers, got, tc.want)
		}
	}
	if tu.admit(ctx, start, 6, nil, 3, 1) {
		t.Error("admitted past FitFrom with nothing to project from")
	}
	if !tu.admit(context.Background(), start, 50, took, 3, 1) {
		t.Error("no deadline: every candidate trains")
	}
	// A search with a generous budget trains the whole pool; one whose
	// budget is tiny stops at FitFrom.
	train, val := separable(64, 1), separable(48, 2)
	for _, tc := range []struct {
		budget time.Duration
		want   int
	}{{time.Hour, 6}, {time.Nanosecond, 0}} {
		tu := tinyTuner()
		tu.Candidates = append(tu.Candidates, SampleCandidates(2, 2)...)
		for i := range tu.Candidates {
			tu.Candidates[i].Width, tu.Candidates[i].EMA = 4, 0
		}
		tu.FitFrom, tu.Workers = 4, 1
		ctx, cancel := context.WithTimeout(context.Background(), tc.budget)
		res, _ := tu.Search(ctx, train, val)
		cancel()
		rung0 := 0
		for _, tr := range res.Trials {
			if tr.Rung == 0 && !tr.Aborted {
				rung0++
			}
		}
		if rung0 != tc.want {
			t.Errorf("budget %v: %d candidates finished rung 0, want %d", tc.budget, rung0, tc.want)
		}
	}
}
