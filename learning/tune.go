package learning

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"
)

// Candidate is one point of the tuning search space.
type Candidate struct {
	LR          float64 `json:"lr"`
	Width       int     `json:"width"`
	BatchSize   int     `json:"batch"`
	WeightDecay float64 `json:"weight_decay"`
	Augment     bool    `json:"augment"`
	EMA         float64 `json:"ema"`
	StepDecay   bool    `json:"step_decay"` // ×0.1 at 50% and 75% of the trial's steps, else constant
}

// Trial is one candidate at one rung of the search.
type Trial struct {
	ID        int       `json:"id"`
	Rung      int       `json:"rung"`
	Steps     int       `json:"steps"`
	Candidate Candidate `json:"candidate"`
	ValAUC    float64   `json:"val_auc"`
	BestStep  int       `json:"best_step"`
	Aborted   bool      `json:"aborted,omitempty"` // stopped by the budget before its last step
	Promoted  bool      `json:"promoted,omitempty"`
	Seconds   float64   `json:"seconds"` // wall time of its training and validation
}

// Tuner runs successive halving over Candidates. It is given the train
// and validation splits only: the test split is the caller's, evaluated
// once on the chosen weights, so no choice here can depend on it.
//
// Each rung retrains its survivors from their initial weights with Eta
// times the steps of the previous rung (a restart, not a resumption, so a
// trial's learning-rate schedule always spans its own budget) and keeps
// the best 1/Eta by validation score; the search ends at the first rung
// that keeps one, whose best trial is the choice. The wall budget is the context: when
// it ends no trial is launched, in-flight ones are aborted at their next
// step, and the best completed trial so far is the result.
type Tuner struct {
	Spec       Spec // BaseWidth is replaced by each candidate's Width
	Seed       int64
	MinSteps   int // steps of rung 0
	Eta        int // survivors are the best 1/Eta of a rung; 0 means 3
	Candidates []Candidate
	// FitFrom, when positive and the context has a deadline, sizes rung 0
	// to the budget: the first FitFrom candidates always train, and each
	// further one, in order, only while the whole search (every rung, each
	// projected from the mean wall time of the rung-0 trials so far) is
	// projected to end within nine tenths of the time the search has. 0
	// trains all of Candidates at rung 0.
	FitFrom int
	Workers int // trials trained at once; 0 means 1
	// Base is copied into each trial's TrainConfig (class weights, optimiser).
	Base TrainConfig
	// Score is the validation score, higher is better (validation AUC).
	Score func(m *Model, val Dataset) (float64, error)
	// ChecksPerTrial validations per trial, keeping the best; 0 means 10.
	ChecksPerTrial int
	Progress       func(Trial) // called after each finished trial
}

// TuneResult is the search table and the chosen model.
type TuneResult struct {
	Trials  []Trial
	Best    Trial
	Model   *Model // the best trial's model, with its best validated weights
	Stopped bool   // the budget ended the search or cut a trial short
}

// RecipeCandidate is the candidate of the recipe Defaults derives from the
// data (learning rate 1e-3, no weight decay, EMA 0.99, step decay): a
// search that starts from it is never blind to what training with no flags
// would do.
func RecipeCandidate(r Recipe) Candidate {
	return Candidate{LR: 1e-3, Width: r.Width, BatchSize: r.BatchSize, Augment: r.Augment, EMA: 0.99, StepDecay: true}
}

// SampleCandidates draws n candidates from the default search space,
// reproducibly from seed.
func SampleCandidates(n int, seed int64) []Candidate {
	r := rand.New(rand.NewPCG(uint64(seed), 0x7475_6e65))
	lrs := []float64{3e-4, 1e-3, 2e-3, 3e-3}
	widths := []int{16, 24, 32}
	batches := []int{16, 32, 64}
	wds := []float64{0, 1e-5, 1e-4}
	emas := []float64{0, 0.99, 0.995}
	out := make([]Candidate, n)
	for i := range out {
		out[i] = Candidate{LR: lrs[r.IntN(len(lrs))], Width: widths[r.IntN(len(widths))],
			BatchSize: batches[r.IntN(len(batches))], WeightDecay: wds[r.IntN(len(wds))],
			Augment: r.IntN(3) == 0, EMA: emas[r.IntN(len(emas))], StepDecay: r.IntN(4) != 0}
	}
	return out
}

type trialOut struct {
	t     Trial
	model *Model
	err   error
}

// Search runs the successive-halving search on train, scored on val.
func (tu Tuner) Search(ctx context.Context, train, val Dataset) (TuneResult, error) {
	if len(tu.Candidates) == 0 || tu.MinSteps < 1 || tu.Score == nil {
		return TuneResult{}, errors.New("tune: need candidates, MinSteps >= 1 and a Score")
	}
	eta := tu.Eta
	if eta == 0 {
		eta = 3
	}
	if eta < 2 {
		return TuneResult{}, fmt.Errorf("tune: Eta %d: want at least 2", eta)
	}
	workers := max(tu.Workers, 1)
	var res TuneResult
	var bestModel *Model
	alive := make([]int, len(tu.Candidates))
	for i := range alive {
		alive[i] = i
	}
	steps := tu.MinSteps
	start := time.Now()
	for rung := 0; len(alive) > 0; rung++ {
		if ctx.Err() != nil {
			res.Stopped = true
			break
		}
		outs := make([]trialOut, len(alive))
		for k := range outs {
			outs[k].t.ID = -1 // not started
		}
		// Workers take trials in candidate order, so a budget that ends
		// mid-rung cuts the same trials on every run of the same speed.
		var mu sync.Mutex
		next, took := 0, []float64(nil)
		take := func() (int, bool) {
			mu.Lock()
			defer mu.Unlock()
			if next >= len(alive) || rung == 0 && !tu.admit(ctx, start, next, took, eta, workers) {
				next = len(alive)
				return 0, false
			}
			next++
			return next - 1, true
		}
		var wg sync.WaitGroup
		for range min(workers, len(alive)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k, ok := take(); ok; k, ok = take() {
					ci := alive[k]
					t := Trial{ID: ci, Rung: rung, Steps: steps, Candidate: tu.Candidates[ci], ValAUC: -1}
					if ctx.Err() != nil {
						continue
					}
					t0 := time.Now()
					m, err := tu.run(ctx, train, val, &t)
					t.Seconds = time.Since(t0).Seconds()
					outs[k] = trialOut{t: t, model: m, err: err}
					if err == nil && !t.Aborted {
						mu.Lock()
						took = append(took, t.Seconds)
						mu.Unlock()
					}
					if tu.Progress != nil && err == nil {
						tu.Progress(t)
					}
				}
			}()
		}
		wg.Wait()
		var done []trialOut
		for _, o := range outs {
			if o.err != nil {
				return res, o.err
			}
			if o.t.ID < 0 {
				continue
			}
			if o.t.Aborted {
				res.Trials = append(res.Trials, o.t)
				res.Stopped = true
				continue
			}
			done = append(done, o)
		}
		// Stable order by score, ties to the lower ID, so the search is
		// reproducible.
		sort.SliceStable(done, func(a, b int) bool {
			if done[a].t.ValAUC != done[b].t.ValAUC {
				return done[a].t.ValAUC > done[b].t.ValAUC
			}
			return done[a].t.ID < done[b].t.ID
		})
		keep := len(done) / eta
		if len(done) > 1 && keep == 0 {
			keep = 1
		}
		alive = alive[:0]
		for i, o := range done {
			if i < keep {
				o.t.Promoted = true
				alive = append(alive, o.t.ID)
			}
			res.Trials = append(res.Trials, o.t)
			// The deepest rung's winner is the choice: a later rung trained longer.
			if bestModel == nil || o.t.Rung > res.Best.Rung || o.t.Rung == res.Best.Rung && o.t.ValAUC > res.Best.ValAUC {
				res.Best, bestModel = o.t, o.model
			}
		}
		// One survivor is the choice already: training it again, longer,
		// would decide nothing (size rung 0 so that the last rung with a
		// choice to make reaches the budget a final model needs).
		if keep <= 1 {
			break
		}
		steps *= eta
	}
	if bestModel == nil {
		return res, errors.New("tune: the budget ended before any trial finished; raise the budget")
	}
	res.Model = bestModel
	return res, nil
}

// admit reports whether rung 0 may start candidate k (FitFrom): the
// search with k+1 candidates, each later rung keeping 1/eta of the one
// before at eta times the steps, projected from took (the wall seconds of
// the rung-0 trials finished so far), must end within nine tenths of the
// time from start to the deadline.
func (tu Tuner) admit(ctx context.Context, start time.Time, k int, took []float64, eta, workers int) bool {
	deadline, ok := ctx.Deadline()
	if tu.FitFrom <= 0 || !ok || k < tu.FitFrom {
		return true
	}
	if len(took) == 0 {
		return false // nothing to project from: keep to the candidates admitted
	}
	var t0 float64
	for _, t := range took {
		t0 += t
	}
	t0 /= float64(len(took))
	need, scale := 0.0, 1.0
	for c := k + 1; ; {
		need += float64((c+workers-1)/workers) * scale * t0
		keep := c / eta
		if c > 1 && keep == 0 {
			keep = 1
		}
		if keep <= 1 {
			break
		}
		c, scale = keep, scale*float64(eta)
	}
	return need <= 0.9*deadline.Sub(start).Seconds()
}

// run trains one trial and leaves in the model its best validated weights.
func (tu Tuner) run(ctx context.Context, train, val Dataset, t *Trial) (*Model, error) {
	c := t.Candidate
	spec := tu.Spec
	spec.BaseWidth = c.Width
	m, err := New(spec, tu.Seed)
	if err != nil {
		return nil, fmt.Errorf("tune: trial %d: %w", t.ID, err)
	}
	cfg := tu.Base
	cfg.Steps, cfg.Epochs = t.Steps, 0
	cfg.BatchSize, cfg.LR, cfg.WeightDecay = c.BatchSize, c.LR, c.WeightDecay
	cfg.Augment, cfg.WeightAverage, cfg.Seed = c.Augment, c.EMA, tu.Seed
	cfg.LRSchedule, cfg.LRStepSchedule = nil, nil
	if c.StepDecay {
		cfg.LRStepSchedule = StepDecay(t.Steps)
	}
	cfg.Progress, cfg.EpochEnd = nil, nil
	checks := tu.ChecksPerTrial
	if checks <= 0 {
		checks = 10
	}
	cfg.CheckEvery = max(1, t.Steps/checks)
	var best []float32
	cfg.Check = func(step int) error {
		s, err := tu.Score(m, val)
		if err != nil {
			return err
		}
		if s > t.ValAUC {
			t.ValAUC, t.BestStep, best = s, step, m.Weights()
		}
		return nil
	}
	if _, err := m.Train(ctx, train, cfg); err != nil {
		if ctx.Err() != nil {
			t.Aborted = true
			return nil, nil
		}
		return nil, fmt.Errorf("tune: trial %d: %w", t.ID, err)
	}
	if err := m.SetWeights(best); err != nil {
		return nil, err
	}
	return m, nil
}
