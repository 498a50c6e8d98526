package learning

import (
	"context"
	"reflect"
	"testing"
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
