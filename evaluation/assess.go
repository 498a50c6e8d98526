package evaluation

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Assessment is a model's scored performance on one site's data: what a
// validation site reports, never predictions or data. Subgroups smaller
// than the caller's minimum are suppressed (their size is not disclosed).
type Assessment struct {
	Task      string  `json:"task"` // binary | multiclass | segmentation
	Examples  int     `json:"examples"`
	Positives int     `json:"positives,omitempty"`
	Threshold float64 `json:"threshold,omitempty"`
	// ThresholdAtSpecificity is the threshold chosen on this data to reach
	// AssessOptions.AtSpecificity; sensitivity_at_specificity is measured at it.
	ThresholdAtSpecificity float64             `json:"threshold_at_specificity,omitempty"`
	Metrics                map[string]Estimate `json:"metrics"`             // auc, sensitivity, specificity, precision, f1, accuracy, balanced_accuracy, sensitivity_at_specificity; segmentation: dice, iou
	Confusion              map[string]int      `json:"confusion,omitempty"` // tp, fp, tn, fn
	ROC                    []CurvePoint        `json:"roc,omitempty"`
	Calibration            []CalibrationBin    `json:"calibration,omitempty"`
	Subgroups              []Subgroup          `json:"subgroups,omitempty"`
}

// CurvePoint is one ROC point.
type CurvePoint struct {
	FPR       float64 `json:"fpr"`
	TPR       float64 `json:"tpr"`
	Threshold float64 `json:"threshold"`
}

// CalibrationBin is one reliability-diagram bin.
type CalibrationBin struct {
	Lower         float64 `json:"lower"`
	Upper         float64 `json:"upper"`
	Count         int     `json:"count"`
	MeanPredicted float64 `json:"mean_predicted"`
	ObservedRate  float64 `json:"observed_rate"`
}

// Subgroup is the assessment restricted to one value of one de-identified
// field (sex, age band, manufacturer, model).
type Subgroup struct {
	Field      string              `json:"field"`
	Value      string              `json:"value"`
	Examples   int                 `json:"examples"` // 0 when suppressed
	Suppressed bool                `json:"suppressed,omitempty"`
	Metrics    map[string]Estimate `json:"metrics,omitempty"`
	Confusion  map[string]int      `json:"confusion,omitempty"`
}

// AssessOptions says how to assess.
type AssessOptions struct {
	Threshold     float64 // decision threshold (0 means 0.5)
	AtSpecificity float64 // also report sensitivity_at_specificity at this specificity (0: off)
	MinSubgroup   int     // subgroups with fewer examples are suppressed (0 means 10)
}

// DefaultMinSubgroup is the smallest subgroup reported when the caller
// does not say: below it a subgroup's figures say more about its few
// patients than about the model.
const DefaultMinSubgroup = 10

// Bounds on the curves an Assessment carries: enough to draw them, small
// enough that a receipt stays a few kilobytes whatever the data's size.
// The ROC curve has a point above every score and one at each hundredth.
const (
	MaxROCPoints    = 102
	CalibrationBins = 10
)

func (o AssessOptions) withDefaults() (AssessOptions, error) {
	if o.Threshold == 0 {
		o.Threshold = 0.5
	}
	if o.MinSubgroup == 0 {
		o.MinSubgroup = DefaultMinSubgroup
	}
	switch {
	case math.IsNaN(o.Threshold) || math.IsInf(o.Threshold, 0):
		return o, fmt.Errorf("assess: threshold %v is not a number", o.Threshold)
	case !(o.AtSpecificity >= 0 && o.AtSpecificity <= 1):
		return o, fmt.Errorf("assess: specificity target %v is outside [0, 1]", o.AtSpecificity)
	case o.MinSubgroup < 1:
		return o, fmt.Errorf("assess: minimum subgroup size %d; want 1 or more", o.MinSubgroup)
	}
	return o, nil
}

// checkGroups refuses a group table that is not index-aligned with n
// examples.
func checkGroups(n int, groups map[string][]string) error {
	for f, v := range groups {
		if f == "" {
			return errors.New("assess: a subgroup field without a name")
		}
		if len(v) != n {
			return fmt.Errorf("assess: subgroup field %q has %d values for %d examples", f, len(v), n)
		}
	}
	return nil
}

// AssessBinary scores a binary classifier: scores are P(class 1), groups
// maps a field name to each example's value ("" = unknown).
//
// Every metric that the data defines is reported: with one class only
// (a subgroup, or a site that holds no positives) there is no AUC, and
// only sensitivity or specificity. sensitivity_at_specificity uses a
// threshold chosen on this whole data set, and subgroups are measured at
// the same two thresholds as the whole: a model is used at one operating
// point, not one per subgroup.
func AssessBinary(scores []float64, labels []int, groups map[string][]string, opt AssessOptions) (Assessment, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return Assessment{}, err
	}
	pos, err := checkBinary(scores, labels)
	if err != nil {
		return Assessment{}, fmt.Errorf("assess: %w", err)
	}
	for i, s := range scores {
		if !(s >= 0 && s <= 1) {
			return Assessment{}, fmt.Errorf("assess: score %d is %v; scores are probabilities in [0, 1]", i, s)
		}
	}
	if err := checkGroups(len(scores), groups); err != nil {
		return Assessment{}, err
	}
	a := Assessment{Task: "binary", Examples: len(scores), Positives: pos, Threshold: opt.Threshold}
	atSpec := math.NaN()
	if opt.AtSpecificity > 0 && pos > 0 && pos < len(labels) {
		atSpec = thresholdAtSpecificity(scores, labels, opt.AtSpecificity)
		a.ThresholdAtSpecificity = atSpec
	}
	a.Metrics, a.Confusion = binaryMetrics(scores, labels, opt.Threshold, atSpec)
	a.ROC = rocCurve(scores, labels)
	a.Calibration = calibration(scores, func(i int) bool { return labels[i] == 1 })
	a.Subgroups = subgroups(groups, opt.MinSubgroup, func(idx []int) (map[string]Estimate, map[string]int) {
		s, l := make([]float64, len(idx)), make([]int, len(idx))
		for j, i := range idx {
			s[j], l[j] = scores[i], labels[i]
		}
		return binaryMetrics(s, l, opt.Threshold, atSpec)
	})
	return a, nil
}

// binaryMetrics returns the metrics the data defines at threshold (and,
// unless atSpec is NaN, the sensitivity at atSpec). Inputs are checked.
func binaryMetrics(scores []float64, labels []int, threshold, atSpec float64) (map[string]Estimate, map[string]int) {
	var tp, fp, tn, fn, tpAt int
	for i, s := range scores {
		switch {
		case labels[i] == 1 && s >= threshold:
			tp++
		case labels[i] == 1:
			fn++
		case s >= threshold:
			fp++
		default:
			tn++
		}
		if labels[i] == 1 && s >= atSpec {
			tpAt++
		}
	}
	conf := map[string]int{"tp": tp, "fp": fp, "tn": tn, "fn": fn}
	m := map[string]Estimate{}
	if !math.IsNaN(atSpec) && tp+fn > 0 {
		m["sensitivity_at_specificity"] = wilson(float64(tpAt), float64(tp+fn))
	}
	if tp+fn > 0 && tn+fp > 0 {
		rep, err := Binary(scores, labels, threshold)
		if err == nil {
			m["auc"], m["sensitivity"], m["specificity"] = rep.AUC, rep.Sensitivity, rep.Specificity
			m["precision"], m["f1"], m["accuracy"], m["balanced_accuracy"] = rep.Precision, rep.F1, rep.Accuracy, rep.BalancedAccuracy
			return m, conf
		}
	}
	// One class: AUC, precision, F1 and balanced accuracy are undefined.
	if tp+fn > 0 {
		m["sensitivity"] = wilson(float64(tp), float64(tp+fn))
	}
	if tn+fp > 0 {
		m["specificity"] = wilson(float64(tn), float64(tn+fp))
	}
	m["accuracy"] = wilson(float64(tp+tn), float64(len(scores)))
	return m, conf
}

// thresholdAtSpecificity returns the lowest threshold (so the highest
// sensitivity) whose specificity on this data is at least target; when no
// score reaches it, a threshold just above every score (nothing predicted
// positive). Both classes must be present.
func thresholdAtSpecificity(scores []float64, labels []int, target float64) float64 {
	pts, _, neg := roc(scores, labels)
	best := math.Nextafter(pts[0].threshold, math.Inf(1))
	for _, p := range pts {
		if 1-float64(p.fp)/float64(neg) < target {
			break
		}
		best = p.threshold
	}
	return best
}

// rocCurve is the ROC curve on a fixed grid of thresholds: just above 1
// (nothing predicted positive: (0, 0)), then 1, 0.99, ... 0 (everything:
// (1, 1)). A grid, not the data's own scores, so that no example's score
// is disclosed and curves from different sites line up point for point.
// With one class it is undefined and nil.
func rocCurve(scores []float64, labels []int) []CurvePoint {
	var pos, neg int
	for _, l := range labels {
		if l == 1 {
			pos++
		} else {
			neg++
		}
	}
	if pos == 0 || neg == 0 {
		return nil
	}
	const steps = MaxROCPoints - 2
	tp, fp := make([]int, steps+1), make([]int, steps+1) // index k: threshold k/steps
	for i, s := range scores {
		k := int(math.Floor(s * steps)) // s >= k/steps for this k and all below
		for k+1 <= steps && float64(k+1)/steps <= s {
			k++
		}
		for k >= 0 && float64(k)/steps > s {
			k--
		}
		if labels[i] == 1 {
			tp[k]++
		} else {
			fp[k]++
		}
	}
	out := make([]CurvePoint, 0, MaxROCPoints)
	out = append(out, CurvePoint{Threshold: math.Nextafter(1, 2)})
	var ctp, cfp int
	for k := steps; k >= 0; k-- {
		ctp, cfp = ctp+tp[k], cfp+fp[k]
		out = append(out, CurvePoint{FPR: float64(cfp) / float64(neg), TPR: float64(ctp) / float64(pos), Threshold: float64(k) / steps})
	}
	return out
}

// calibration bins predicted probabilities into CalibrationBins equal
// bins on [0, 1] (the last includes 1) and compares each bin's mean
// prediction with the rate at which it came true.
func calibration(probs []float64, hit func(int) bool) []CalibrationBin {
	bins := make([]CalibrationBin, CalibrationBins)
	var sum [CalibrationBins]float64
	var hits [CalibrationBins]int
	for i, p := range probs {
		b := min(int(p*CalibrationBins), CalibrationBins-1)
		bins[b].Count++
		sum[b] += p
		if hit(i) {
			hits[b]++
		}
	}
	for b := range bins {
		bins[b].Lower, bins[b].Upper = float64(b)/CalibrationBins, float64(b+1)/CalibrationBins
		if bins[b].Count > 0 {
			bins[b].MeanPredicted = sum[b] / float64(bins[b].Count)
			bins[b].ObservedRate = float64(hits[b]) / float64(bins[b].Count)
		}
	}
	return bins
}

// subgroups assesses each (field, value) present, in sorted order; a
// subgroup smaller than minSize is reported as suppressed, with neither
// its size nor its figures. When a field has exactly one such subgroup,
// its smallest reported one is suppressed too (complementary
// suppression): otherwise the hidden size would be the total less the
// sizes shown.
func subgroups(groups map[string][]string, minSize int, assess func(idx []int) (map[string]Estimate, map[string]int)) []Subgroup {
	var out []Subgroup
	fields := make([]string, 0, len(groups))
	for f := range groups {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	for _, f := range fields {
		members := map[string][]int{}
		for i, v := range groups[f] {
			if v != "" {
				members[v] = append(members[v], i)
			}
		}
		values := make([]string, 0, len(members))
		small, smallestShown := 0, ""
		for v, idx := range members {
			values = append(values, v)
			switch n := len(idx); {
			case n < minSize:
				small++
			case smallestShown == "" || n < len(members[smallestShown]) || n == len(members[smallestShown]) && v < smallestShown:
				smallestShown = v
			}
		}
		slices.Sort(values)
		for _, v := range values {
			idx := members[v]
			if len(idx) < minSize || small == 1 && v == smallestShown {
				out = append(out, Subgroup{Field: f, Value: v, Suppressed: true})
				continue
			}
			m, c := assess(idx)
			out = append(out, Subgroup{Field: f, Value: v, Examples: len(idx), Metrics: m, Confusion: c})
		}
	}
	return out
}

// MaxSubgroupGap returns the largest difference in metric between two
// reported (not suppressed) subgroups of one field, and that field; 0 and
// "" when no field has two subgroups that report the metric.
func MaxSubgroupGap(a Assessment, metric string) (gap float64, field string) {
	lo, hi := map[string]float64{}, map[string]float64{}
	n := map[string]int{}
	for _, g := range a.Subgroups {
		e, ok := g.Metrics[metric]
		if g.Suppressed || !ok {
			continue
		}
		if n[g.Field] == 0 {
			lo[g.Field], hi[g.Field] = e.Value, e.Value
		}
		lo[g.Field], hi[g.Field] = min(lo[g.Field], e.Value), max(hi[g.Field], e.Value)
		n[g.Field]++
	}
	fields := make([]string, 0, len(n))
	for f := range n {
		fields = append(fields, f)
	}
	slices.Sort(fields) // ties go to the first field by name, whatever the map order
	for _, f := range fields {
		if d := hi[f] - lo[f]; n[f] >= 2 && d > gap {
			gap, field = d, f
		}
	}
	return gap, field
}

// Gap is MaxSubgroupGap(a, metric).
func (a Assessment) Gap(metric string) (gap float64, field string) { return MaxSubgroupGap(a, metric) }
