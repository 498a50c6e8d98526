package evaluation

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// MultiClassReport holds the metrics of a K-class classifier.
type MultiClassReport struct {
	// Accuracy of the arg-max prediction, with a Wilson interval.
	Accuracy Estimate `json:"accuracy"`
	// MacroAUC is the unweighted mean of the one-vs-rest AUCs (scikit-learn's
	// roc_auc_score with multi_class="ovr", average="macro"), with a
	// class-stratified bootstrap interval.
	MacroAUC Estimate `json:"macro_auc"`
	// PerClassAUC[c] is the AUC of class c against the rest.
	PerClassAUC []float64 `json:"per_class_auc"`
	// Confusion[t][p] counts samples of true class t predicted as p.
	Confusion [][]int `json:"confusion"`
}

// MultiClass evaluates class scores probs[i][c] (typically softmax
// probabilities) against labels in 0..K-1, K = len(probs[i]) >= 2. Every
// class must occur in labels. The prediction is the arg-max, the first
// class on ties.
func MultiClass(probs [][]float64, labels []int) (MultiClassReport, error) {
	if len(probs) != len(labels) {
		return MultiClassReport{}, fmt.Errorf("multi-class metrics: %d score rows but %d labels", len(probs), len(labels))
	}
	if len(probs) == 0 {
		return MultiClassReport{}, fmt.Errorf("multi-class metrics: no samples")
	}
	k := len(probs[0])
	if k < 2 {
		return MultiClassReport{}, fmt.Errorf("multi-class metrics: %d classes; need at least 2", k)
	}
	byClass := make([][]int, k)
	for i, row := range probs {
		if len(row) != k {
			return MultiClassReport{}, fmt.Errorf("multi-class metrics: row %d has %d scores, row 0 has %d", i, len(row), k)
		}
		for c, v := range row {
			if math.IsNaN(v) {
				return MultiClassReport{}, fmt.Errorf("multi-class metrics: score [%d][%d] is NaN", i, c)
			}
		}
		if labels[i] < 0 || labels[i] >= k {
			return MultiClassReport{}, fmt.Errorf("multi-class metrics: label %d is %d; want 0..%d", i, labels[i], k-1)
		}
		byClass[labels[i]] = append(byClass[labels[i]], i)
	}
	for c, idx := range byClass {
		if len(idx) == 0 {
			return MultiClassReport{}, fmt.Errorf("multi-class metrics: class %d never occurs in labels; its AUC is undefined", c)
		}
	}

	rep := MultiClassReport{PerClassAUC: make([]float64, k), Confusion: make([][]int, k)}
	for c := range rep.Confusion {
		rep.Confusion[c] = make([]int, k)
	}
	pred := make([]int, len(probs))
	correct := 0
	for i, row := range probs {
		best := 0
		for c, v := range row {
			if v > row[best] {
				best = c
			}
		}
		pred[i] = best
		rep.Confusion[labels[i]][best]++
		if best == labels[i] {
			correct++
		}
	}
	rep.Accuracy = wilson(float64(correct), float64(len(labels)))

	ranks := make([]ranking, k)
	col := make([]float64, len(probs))
	for c := range k {
		for i, row := range probs {
			col[i] = row[c]
		}
		ranks[c] = rank(col)
	}
	macro := func(w []int32) float64 {
		var sum float64
		for c := range k {
			a := ranks[c].auc(func(i int) bool { return labels[i] == c }, w)
			if w == nil {
				rep.PerClassAUC[c] = a
			}
			sum += a
		}
		return sum / float64(k)
	}
	rep.MacroAUC.Value = macro(nil)

	aucs := make([]float64, BootstrapReplicates)
	w := make([]int32, len(probs))
	rng := rand.New(rand.NewPCG(bootstrapSeed, 2))
	for b := range aucs {
		clear(w)
		for _, idx := range byClass {
			for range idx {
				w[idx[rng.IntN(len(idx))]]++
			}
		}
		aucs[b] = macro(w)
	}
	rep.MacroAUC.Lower, rep.MacroAUC.Upper = percentileCI(aucs)
	return rep, nil
}
