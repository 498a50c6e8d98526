package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/concord-fl/concord/learning"
)

// TuneReport is `site-agent train --tune --json`: the search table, the
// chosen configuration (chosen on validation AUC only) and the test split,
// evaluated once on the chosen weights after the search has ended.
type TuneReport struct {
	Dataset       string           `json:"dataset"`
	BudgetSeconds float64          `json:"budget_seconds"`
	Seconds       float64          `json:"seconds"`
	Stopped       bool             `json:"stopped_by_budget"`
	Trials        []learning.Trial `json:"trials"`
	Best          learning.Trial   `json:"best"`
	Test          TestMetrics      `json:"test"`
}

// maxTuneCandidates is the pool a budget-sized search draws rung 0 from.
const maxTuneCandidates = 27

// tuneOptions are the --tune flags, parsed by train.
type tuneOptions struct {
	budget   float64 // wall seconds
	trials   int     // candidates at rung 0; 0 sizes rung 0 to the budget
	minSteps int     // steps at rung 0
	workers  int     // trials at once
	seed     int64
	balanced bool
	asJSON   bool
	norm     string
}

// tune runs the budgeted search. The tuner gets the train and validation
// splits only; the test split is read here, once, after it returns.
func tune(ctx context.Context, mm learning.MedMNIST, name string, o tuneOptions, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(o.budget*float64(time.Second)))
	defer cancel()
	spec := learning.Spec{Arch: "cnn", Channels: mm.Train.C, Height: mm.Train.H, Width: mm.Train.W,
		Classes: max(mm.Classes, 2), Norm: o.norm}
	base := learning.TrainConfig{Optimizer: "adam"}
	if o.balanced {
		base.ClassWeights = learning.BalancedClassWeights(mm.Train.Y, spec.Classes)
	}
	// The no-flag recipe is candidate 0, and rung 0 is a third of its
	// budget, so the rung that keeps one candidate has trained each of its
	// trials as long as the recipe trains.
	rec := learning.Defaults(mm.Train.N)
	if o.minSteps == 0 {
		o.minSteps = max(1, rec.Steps/3)
	}
	// --tune-trials 0 sizes rung 0 to the budget: the recipe and five drawn
	// candidates always (two survive rung 0, so the last rung is a real
	// choice at the recipe's full length), then more of a drawn pool while
	// the search is projected to fit.
	const eta = 3
	n, fitFrom := o.trials, 0
	if n == 0 {
		n, fitFrom = maxTuneCandidates, max(2*eta, o.workers)
	}
	cands := append([]learning.Candidate{learning.RecipeCandidate(rec)}, learning.SampleCandidates(n-1, o.seed)...)
	tu := learning.Tuner{Spec: spec, Seed: o.seed, MinSteps: o.minSteps, Eta: eta,
		Candidates: cands, FitFrom: fitFrom, Workers: o.workers,
		Base: base, ChecksPerTrial: 20,
		Score: func(m *learning.Model, val learning.Dataset) (float64, error) {
			r, err := evaluate(m, val)
			return r.AUC, err
		},
		Progress: func(t learning.Trial) { fmt.Fprintln(stderr, "tune: "+trialRow(t)) },
	}
	count := fmt.Sprint(n)
	if fitFrom > 0 {
		count = fmt.Sprintf("%d to %d (as many as the budget fits)", fitFrom, n)
	}
	fmt.Fprintf(stderr, "tune: %s: %s candidates, rung 0 at %d steps, eta %d, %d workers, budget %.0fs\n",
		name, count, o.minSteps, eta, o.workers, o.budget)
	t0 := time.Now()
	res, err := tu.Search(ctx, mm.Train, mm.Val)
	if err != nil {
		return failf(stderr, "tune: %v", err)
	}
	rep := TuneReport{Dataset: name, BudgetSeconds: o.budget, Seconds: time.Since(t0).Seconds(),
		Stopped: res.Stopped, Trials: res.Trials, Best: res.Best}
	fmt.Fprintln(stderr, "tune: search table (id rung steps | lr width batch wd augment ema decay | val auc @ step | seconds)")
	for _, t := range res.Trials {
		fmt.Fprintln(stderr, "  "+trialRow(t))
	}
	test, err := evaluate(res.Model, mm.Test)
	if err != nil {
		return failf(stderr, "tune: test: %v", err)
	}
	rep.Test = test
	fmt.Fprintf(stderr, "tune: chose trial %d (val auc %.4f, chosen on validation); test auc %.4f accuracy %.4f; %.0fs\n",
		res.Best.ID, res.Best.ValAUC, test.AUC, test.Accuracy, rep.Seconds)
	printResult(stdout, o.asJSON, rep, test)
	return 0
}

func trialRow(t learning.Trial) string {
	c := t.Candidate
	s := fmt.Sprintf("%3d %d %5d | %.0e %2d %2d %.0e %-5v %.3f %-5v | %.4f @ %d | %.0fs",
		t.ID, t.Rung, t.Steps, c.LR, c.Width, c.BatchSize, c.WeightDecay, c.Augment, c.EMA, c.StepDecay, t.ValAUC, t.BestStep, t.Seconds)
	if t.Promoted {
		s += "  promoted"
	}
	if t.Aborted {
		s += "  aborted by the budget"
	}
	return s
}

func failf(w io.Writer, format string, a ...any) int {
	fmt.Fprintf(w, format+"\n", a...)
	return 1
}
