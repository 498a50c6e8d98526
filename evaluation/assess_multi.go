package evaluation

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// AssessMulticlass scores a K-class classifier: probs[i] are example i's
// class probabilities (each row sums to about 1), labels are 0..K-1.
// Metrics: auc (macro one-vs-rest), accuracy, and recall_<k> for each
// class k present (a Wilson interval). Confusion keys are "<true>-><pred>".
// Calibration is top-label: the highest probability against how often
// the arg-max was right. A subgroup lacking a class reports no AUC.
func AssessMulticlass(probs [][]float64, labels []int, groups map[string][]string, opt AssessOptions) (Assessment, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return Assessment{}, err
	}
	if len(probs) != len(labels) {
		return Assessment{}, fmt.Errorf("assess: %d score rows but %d labels", len(probs), len(labels))
	}
	if len(probs) == 0 {
		return Assessment{}, errors.New("assess: no samples")
	}
	k := len(probs[0])
	if k < 2 {
		return Assessment{}, fmt.Errorf("assess: %d classes; need at least 2", k)
	}
	for i, row := range probs {
		if len(row) != k {
			return Assessment{}, fmt.Errorf("assess: row %d has %d scores, row 0 has %d", i, len(row), k)
		}
		for c, v := range row {
			if !(v >= 0 && v <= 1) {
				return Assessment{}, fmt.Errorf("assess: score [%d][%d] is %v; scores are probabilities in [0, 1]", i, c, v)
			}
		}
		if labels[i] < 0 || labels[i] >= k {
			return Assessment{}, fmt.Errorf("assess: label %d is %d; want 0..%d", i, labels[i], k-1)
		}
	}
	if err := checkGroups(len(probs), groups); err != nil {
		return Assessment{}, err
	}
	a := Assessment{Task: "multiclass", Examples: len(probs)}
	a.Metrics, a.Confusion = multiMetrics(probs, labels, k)
	top := make([]float64, len(probs))
	for i, row := range probs {
		top[i] = row[argmax(row)]
	}
	a.Calibration = calibration(top, func(i int) bool { return argmax(probs[i]) == labels[i] })
	a.Subgroups = subgroups(groups, opt.MinSubgroup, func(idx []int) (map[string]Estimate, map[string]int) {
		p, l := make([][]float64, len(idx)), make([]int, len(idx))
		for j, i := range idx {
			p[j], l[j] = probs[i], labels[i]
		}
		return multiMetrics(p, l, k)
	})
	return a, nil
}

// argmax is the first class with the highest score, as MultiClass picks it.
func argmax(row []float64) int {
	best := 0
	for c, v := range row {
		if v > row[best] {
			best = c
		}
	}
	return best
}

// multiMetrics returns the metrics the data defines; inputs are checked.
func multiMetrics(probs [][]float64, labels []int, k int) (map[string]Estimate, map[string]int) {
	m := map[string]Estimate{}
	conf := map[string]int{}
	perClass, right := make([]int, k), make([]int, k)
	correct := 0
	for i, row := range probs {
		p := argmax(row)
		conf[strconv.Itoa(labels[i])+"->"+strconv.Itoa(p)]++
		perClass[labels[i]]++
		if p == labels[i] {
			right[p]++
			correct++
		}
	}
	m["accuracy"] = wilson(float64(correct), float64(len(probs)))
	for c := range k {
		if perClass[c] > 0 {
			m["recall_"+strconv.Itoa(c)] = wilson(float64(right[c]), float64(perClass[c]))
		}
	}
	if rep, err := MultiClass(probs, labels); err == nil {
		m["auc"] = rep.MacroAUC
	}
	return m, conf
}

// AssessSegmentation scores predicted masks against ground truth (see
// Overlap for the pixel rule): metrics dice and iou, means over images
// with bootstrap intervals. Groups are per image.
func AssessSegmentation(preds, truths [][]float32, threshold float32, groups map[string][]string, opt AssessOptions) (Assessment, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return Assessment{}, err
	}
	if math.IsNaN(float64(threshold)) {
		return Assessment{}, errors.New("assess: threshold is NaN")
	}
	rep, err := Dice(preds, truths, threshold)
	if err != nil {
		return Assessment{}, fmt.Errorf("assess: %w", err)
	}
	if err := checkGroups(len(preds), groups); err != nil {
		return Assessment{}, err
	}
	a := Assessment{Task: "segmentation", Examples: len(preds), Threshold: float64(threshold),
		Metrics: map[string]Estimate{"dice": rep.Dice, "iou": rep.IoU}}
	a.Subgroups = subgroups(groups, opt.MinSubgroup, func(idx []int) (map[string]Estimate, map[string]int) {
		d, j := make([]float64, len(idx)), make([]float64, len(idx))
		for n, i := range idx {
			d[n], j[n] = rep.PerImageDice[i], rep.PerImageIoU[i]
		}
		return map[string]Estimate{"dice": bootstrapMean(d, 3), "iou": bootstrapMean(j, 4)}, nil
	})
	return a, nil
}
