package evaluation

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// z975 is the standard normal quantile for a two-sided 95% interval.
const z975 = 1.959963984540054

// Bootstrap settings. The seed is fixed so that the same inputs always give
// the same interval; Replicates trades run time for interval stability (the
// 2.5% and 97.5% percentiles of 2000 replicates move by well under 0.01).
const (
	BootstrapReplicates = 2000
	bootstrapSeed       = 0x5eed_c0c0a
)

// ErrOneClass is returned when a metric needs both classes (AUC, Youden,
// sensitivity targets) and the labels hold only one.
var ErrOneClass = errors.New("labels contain only one class")

// Estimate is a point value with its 95% confidence interval.
type Estimate struct {
	Value float64 `json:"value"`
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
}

// BinaryReport holds the metrics of a binary classifier at one threshold.
// Proportions carry Wilson intervals; F1, balanced accuracy and AUC carry
// stratified percentile-bootstrap intervals.
type BinaryReport struct {
	Threshold        float64  `json:"threshold"`
	TP               int      `json:"tp"`
	FP               int      `json:"fp"`
	TN               int      `json:"tn"`
	FN               int      `json:"fn"`
	Sensitivity      Estimate `json:"sensitivity"`
	Specificity      Estimate `json:"specificity"`
	Precision        Estimate `json:"precision"`
	F1               Estimate `json:"f1"`
	Accuracy         Estimate `json:"accuracy"`
	BalancedAccuracy Estimate `json:"balanced_accuracy"`
	AUC              Estimate `json:"auc"`
}

// Wilson returns the proportion successes/n with its 95% Wilson score
// interval. n = 0 gives the value 0 and the uninformative interval [0, 1].
func Wilson(successes, n int) (Estimate, error) {
	if n < 0 || successes < 0 || successes > n {
		return Estimate{}, fmt.Errorf("wilson interval: need 0 <= successes <= n, got %d of %d", successes, n)
	}
	if n == 0 {
		return Estimate{Value: 0, Lower: 0, Upper: 1}, nil
	}
	return wilson(float64(successes), float64(n)), nil
}

func wilson(s, n float64) Estimate {
	p := s / n
	z2 := z975 * z975
	den := 1 + z2/n
	centre := (p + z2/(2*n)) / den
	half := z975 * math.Sqrt(p*(1-p)/n+z2/(4*n*n)) / den
	return Estimate{Value: p, Lower: math.Max(0, centre-half), Upper: math.Min(1, centre+half)}
}

// checkBinary validates scores and labels and counts the positives.
func checkBinary(scores []float64, labels []int) (pos int, err error) {
	if len(scores) != len(labels) {
		return 0, fmt.Errorf("%d scores but %d labels", len(scores), len(labels))
	}
	if len(scores) == 0 {
		return 0, errors.New("no samples")
	}
	for i, s := range scores {
		if math.IsNaN(s) {
			return 0, fmt.Errorf("score %d is NaN", i)
		}
		switch labels[i] {
		case 0:
		case 1:
			pos++
		default:
			return 0, fmt.Errorf("label %d is %d; binary labels must be 0 or 1", i, labels[i])
		}
	}
	return pos, nil
}

// ranking is the samples ordered by descending score, with groups of tied
// scores marked, so that ROC quantities need one sort however often they are
// recomputed (as the bootstrap does).
type ranking struct {
	order  []int // sample indices, highest score first
	starts []int // start of each tie group in order, plus len(order)
}

func rank(scores []float64) ranking {
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return scores[order[a]] > scores[order[b]] })
	starts := []int{0}
	for i := 1; i < len(order); i++ {
		if scores[order[i]] != scores[order[i-1]] {
			starts = append(starts, i)
		}
	}
	starts = append(starts, len(order))
	return ranking{order: order, starts: starts}
}

// auc computes the area under the ROC curve with each sample counted w[i]
// times (w = nil counts each once). Ties between a positive and a negative
// count one half, which is what the trapezoidal ROC area of scikit-learn's
// roc_auc_score amounts to. It returns NaN when a class has no weight.
func (r ranking) auc(positive func(int) bool, w []int32) float64 {
	var num, negBelow, totPos float64
	for g := len(r.starts) - 2; g >= 0; g-- {
		var p, n float64
		for _, i := range r.order[r.starts[g]:r.starts[g+1]] {
			c := 1.0
			if w != nil {
				c = float64(w[i])
			}
			if positive(i) {
				p += c
			} else {
				n += c
			}
		}
		num += p*negBelow + 0.5*p*n
		negBelow += n
		totPos += p
	}
	if totPos == 0 || negBelow == 0 {
		return math.NaN()
	}
	return num / (totPos * negBelow)
}

// AUC returns the area under the ROC curve, equal to scikit-learn's
// roc_auc_score for binary labels.
func AUC(scores []float64, labels []int) (float64, error) {
	pos, err := checkBinary(scores, labels)
	if err != nil {
		return 0, fmt.Errorf("auc: %w", err)
	}
	if pos == 0 || pos == len(labels) {
		return 0, fmt.Errorf("auc: %w", ErrOneClass)
	}
	return rank(scores).auc(func(i int) bool { return labels[i] == 1 }, nil), nil
}

// rocPoint is one operating point: predicting positive when score >=
// threshold gives tp true and fp false positives.
type rocPoint struct {
	threshold float64
	tp, fp    int
}

// roc lists one operating point per distinct score, highest threshold first,
// like scikit-learn's roc_curve with drop_intermediate=False (without its
// leading "predict nothing" point).
func roc(scores []float64, labels []int) (pts []rocPoint, pos, neg int) {
	r := rank(scores)
	var tp, fp int
	for g := 0; g+1 < len(r.starts); g++ {
		for _, i := range r.order[r.starts[g]:r.starts[g+1]] {
			if labels[i] == 1 {
				tp++
			} else {
				fp++
			}
		}
		pts = append(pts, rocPoint{threshold: scores[r.order[r.starts[g]]], tp: tp, fp: fp})
	}
	return pts, tp, fp
}

func twoClasses(op string, scores []float64, labels []int) error {
	pos, err := checkBinary(scores, labels)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if pos == 0 || pos == len(labels) {
		return fmt.Errorf("%s: %w", op, ErrOneClass)
	}
	return nil
}

// Youden returns the threshold that maximises Youden's J = sensitivity +
// specificity - 1 over the distinct scores; among equal J the highest
// threshold wins, as numpy's argmax over scikit-learn's roc_curve picks it.
// Scores with no threshold better than chance (J <= 0) are an error.
func Youden(scores []float64, labels []int) (float64, error) {
	if err := twoClasses("youden threshold", scores, labels); err != nil {
		return 0, err
	}
	pts, pos, neg := roc(scores, labels)
	best, bestJ := 0.0, 0.0
	for _, p := range pts {
		j := float64(p.tp)/float64(pos) - float64(p.fp)/float64(neg)
		if j > bestJ {
			best, bestJ = p.threshold, j
		}
	}
	if bestJ <= 0 {
		return 0, errors.New("youden threshold: no threshold does better than chance; check that higher scores mean positive")
	}
	return best, nil
}

// ThresholdAtSensitivity returns the highest threshold whose sensitivity is
// at least target (0 < target <= 1), the usual way to fix a screening
// operating point such as "95% sensitivity".
func ThresholdAtSensitivity(scores []float64, labels []int, target float64) (float64, error) {
	if !(target > 0 && target <= 1) {
		return 0, fmt.Errorf("threshold at sensitivity: target %v is outside (0, 1]", target)
	}
	if err := twoClasses("threshold at sensitivity", scores, labels); err != nil {
		return 0, err
	}
	pts, pos, _ := roc(scores, labels)
	for _, p := range pts {
		if float64(p.tp)/float64(pos) >= target {
			return p.threshold, nil
		}
	}
	// Unreachable: the lowest threshold has sensitivity 1.
	return pts[len(pts)-1].threshold, nil
}

// ratio is num/den with scikit-learn's zero_division=0 convention.
func ratio(num, den float64) float64 {
	if den == 0 {
		return 0
	}
	return num / den
}

func f1(tp, fp, fn float64) float64 { return ratio(2*tp, 2*tp+fp+fn) }

func balanced(tp, fp, tn, fn float64) float64 {
	return (ratio(tp, tp+fn) + ratio(tn, tn+fp)) / 2
}

// Binary evaluates binary scores at threshold: a sample is predicted
// positive when its score is >= threshold. Both classes must be present.
func Binary(scores []float64, labels []int, threshold float64) (BinaryReport, error) {
	if math.IsNaN(threshold) {
		return BinaryReport{}, errors.New("binary metrics: threshold is NaN")
	}
	if err := twoClasses("binary metrics", scores, labels); err != nil {
		return BinaryReport{}, err
	}
	rep := BinaryReport{Threshold: threshold}
	predPos := make([]bool, len(scores))
	var posIdx, negIdx []int
	for i, s := range scores {
		predPos[i] = s >= threshold
		switch {
		case labels[i] == 1 && predPos[i]:
			rep.TP++
		case labels[i] == 1:
			rep.FN++
		case predPos[i]:
			rep.FP++
		default:
			rep.TN++
		}
		if labels[i] == 1 {
			posIdx = append(posIdx, i)
		} else {
			negIdx = append(negIdx, i)
		}
	}
	tp, fp, tn, fn := float64(rep.TP), float64(rep.FP), float64(rep.TN), float64(rep.FN)
	rep.Sensitivity = wilson(tp, tp+fn)
	rep.Specificity = wilson(tn, tn+fp)
	rep.Precision = Estimate{Lower: 0, Upper: 1}
	if rep.TP+rep.FP > 0 {
		rep.Precision = wilson(tp, tp+fp)
	}
	rep.Accuracy = wilson(tp+tn, tp+tn+fp+fn)

	r := rank(scores)
	isPos := func(i int) bool { return labels[i] == 1 }
	rep.AUC.Value = r.auc(isPos, nil)
	rep.F1.Value = f1(tp, fp, fn)
	rep.BalancedAccuracy.Value = balanced(tp, fp, tn, fn)

	// Stratified bootstrap: positives and negatives are resampled separately
	// so every replicate keeps the observed prevalence and has both classes.
	aucs := make([]float64, BootstrapReplicates)
	f1s := make([]float64, BootstrapReplicates)
	bas := make([]float64, BootstrapReplicates)
	w := make([]int32, len(scores))
	rng := rand.New(rand.NewPCG(bootstrapSeed, 1))
	for b := range BootstrapReplicates {
		clear(w)
		var btp, bfp, btn, bfn float64
		for range posIdx {
			i := posIdx[rng.IntN(len(posIdx))]
			w[i]++
			if predPos[i] {
				btp++
			} else {
				bfn++
			}
		}
		for range negIdx {
			i := negIdx[rng.IntN(len(negIdx))]
			w[i]++
			if predPos[i] {
				bfp++
			} else {
				btn++
			}
		}
		aucs[b] = r.auc(isPos, w)
		f1s[b] = f1(btp, bfp, bfn)
		bas[b] = balanced(btp, bfp, btn, bfn)
	}
	rep.AUC.Lower, rep.AUC.Upper = percentileCI(aucs)
	rep.F1.Lower, rep.F1.Upper = percentileCI(f1s)
	rep.BalancedAccuracy.Lower, rep.BalancedAccuracy.Upper = percentileCI(bas)
	return rep, nil
}

// percentileCI returns the 2.5th and 97.5th percentiles of v (sorted in
// place), interpolated linearly like numpy's default quantile.
func percentileCI(v []float64) (lo, hi float64) {
	slices.Sort(v)
	return quantile(v, 0.025), quantile(v, 0.975)
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	frac := pos - float64(i)
	return sorted[i] + frac*(sorted[i+1]-sorted[i])
}
