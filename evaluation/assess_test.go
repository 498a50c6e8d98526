package evaluation

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestAssessBinaryMatchesSklearn: at the 0.5 threshold an Assessment holds
// the figures scikit-learn computes on the reference vectors (those whose
// scores are probabilities), and its ROC curve is bounded and runs from
// (0, 0) to (1, 1).
func TestAssessBinaryMatchesSklearn(t *testing.T) {
	vec, exp := loadRef(t)
	for _, name := range []string{"small", "imbalanced", "heavy_ties"} {
		in, want := vec.Binary[name], exp.Binary[name].AtHalf
		t.Run(name, func(t *testing.T) {
			if want.Threshold != 0.5 {
				t.Fatalf("reference at_half threshold is %v", want.Threshold)
			}
			a, err := AssessBinary(in.Scores, in.Labels, nil, AssessOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if a.Examples != len(in.Labels) || a.Threshold != 0.5 || a.Task != "binary" {
				t.Errorf("assessment header %+v", a)
			}
			if c := a.Confusion; c["tp"] != want.Tp || c["fp"] != want.Fp || c["tn"] != want.Tn || c["fn"] != want.Fn {
				t.Errorf("confusion %v, scikit-learn tp=%d fp=%d tn=%d fn=%d", c, want.Tp, want.Fp, want.Tn, want.Fn)
			}
			for k, v := range map[string]float64{"auc": exp.Binary[name].AUC, "sensitivity": want.Sens, "specificity": want.Spec,
				"precision": want.Prec, "f1": want.F1s, "accuracy": want.Acc, "balanced_accuracy": want.BalancedAccuracy} {
				near(t, k, a.Metrics[k].Value, v)
			}
			near(t, "sensitivity wilson lower", a.Metrics["sensitivity"].Lower, want.WSens[1])
			near(t, "accuracy wilson upper", a.Metrics["accuracy"].Upper, want.WAcc[2])
			if n := len(a.ROC); n != MaxROCPoints {
				t.Fatalf("%d ROC points", n)
			}
			// Each point is the rate at its grid threshold (score >= threshold).
			for _, p := range a.ROC {
				var tp, fp, pos, neg float64
				for i, s := range in.Scores {
					if in.Labels[i] == 1 {
						pos++
						if s >= p.Threshold {
							tp++
						}
					} else {
						neg++
						if s >= p.Threshold {
							fp++
						}
					}
				}
				if p.TPR != tp/pos || p.FPR != fp/neg {
					t.Fatalf("ROC point %+v; at its threshold tpr %v fpr %v", p, tp/pos, fp/neg)
				}
			}
			first, last := a.ROC[0], a.ROC[len(a.ROC)-1]
			if first.FPR != 0 || first.TPR != 0 || last.FPR != 1 || last.TPR != 1 {
				t.Errorf("ROC from %+v to %+v", first, last)
			}
			for i := 1; i < len(a.ROC); i++ {
				if a.ROC[i].FPR < a.ROC[i-1].FPR || a.ROC[i].TPR < a.ROC[i-1].TPR || a.ROC[i].Threshold > a.ROC[i-1].Threshold {
					t.Fatalf("ROC not monotone at %d: %+v after %+v", i, a.ROC[i], a.ROC[i-1])
				}
			}
			n := 0
			for _, b := range a.Calibration {
				n += b.Count
			}
			if len(a.Calibration) != CalibrationBins || n != a.Examples {
				t.Errorf("%d calibration bins holding %d examples", len(a.Calibration), n)
			}
		})
	}
}

// TestSensitivityAtSpecificity: the threshold is the lowest that keeps
// the specificity at the target, and the sensitivity is measured there.
func TestSensitivityAtSpecificity(t *testing.T) {
	neg := []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95}
	pos := []float64{0.35, 0.65, 0.85, 0.97, 0.99}
	scores := append(append([]float64{}, neg...), pos...)
	labels := make([]int, len(scores))
	for i := len(neg); i < len(labels); i++ {
		labels[i] = 1
	}
	for _, c := range []struct {
		target, thr, sens float64
	}{
		{0.8, 0.85, 0.6},  // two negatives at or above: 0.9, 0.95
		{0.75, 0.85, 0.6}, // the next lower threshold (0.8) lets a third in
		{0.7, 0.8, 0.6},   // three negatives allowed
		{1, 0.97, 0.4},    // no negative at or above 0.97
		{0.05, 0.2, 1},    // all but the lowest negative
	} {
		a, err := AssessBinary(scores, labels, nil, AssessOptions{AtSpecificity: c.target})
		if err != nil {
			t.Fatal(err)
		}
		// The table, and a brute-force search over every threshold.
		wantThr, wantSens := bruteAtSpec(scores, labels, c.target)
		if a.ThresholdAtSpecificity != wantThr || a.Metrics["sensitivity_at_specificity"].Value != wantSens {
			t.Errorf("target %v: threshold %v sensitivity %v, want %v and %v", c.target, a.ThresholdAtSpecificity,
				a.Metrics["sensitivity_at_specificity"].Value, wantThr, wantSens)
		}
		if wantThr != c.thr || wantSens != c.sens {
			t.Errorf("target %v: brute force gives %v/%v, the table %v/%v", c.target, wantThr, wantSens, c.thr, c.sens)
		}
	}
	if a, _ := AssessBinary(scores, labels, nil, AssessOptions{}); len(a.Metrics) != 7 {
		t.Errorf("without a target: metrics %v", a.Metrics)
	}
}

// bruteAtSpec tries every score as a threshold.
func bruteAtSpec(scores []float64, labels []int, target float64) (thr, sens float64) {
	thr, sens = math.Inf(1), -1
	for _, t := range scores {
		var tp, fn, tn, fp float64
		for i, s := range scores {
			switch {
			case labels[i] == 1 && s >= t:
				tp++
			case labels[i] == 1:
				fn++
			case s >= t:
				fp++
			default:
				tn++
			}
		}
		if tn/(tn+fp) >= target && (tp/(tp+fn) > sens || tp/(tp+fn) == sens && t < thr) {
			thr, sens = t, tp/(tp+fn)
		}
	}
	return thr, sens
}

// subgroupData: 60 examples; sex F (30, both classes, one unknown), M
// (25), O (5: below the minimum); scanner "a" (40, both classes) and "b"
// (20, positives only).
func subgroupData() ([]float64, []int, map[string][]string) {
	var scores []float64
	var labels []int
	sex, scanner := []string{}, []string{}
	for i := range 60 {
		l := 0
		if i%2 == 0 || i >= 30 {
			l = 1
		}
		s := 0.3 + 0.4*float64(l) + 0.25*math.Sin(float64(i))
		scores, labels = append(scores, s), append(labels, l)
		switch {
		case i < 30:
			sex = append(sex, "F")
		case i < 55:
			sex = append(sex, "M")
		default:
			sex = append(sex, "O")
		}
		if i < 40 {
			scanner = append(scanner, "a")
		} else {
			scanner = append(scanner, "b")
		}
	}
	sex[3] = "" // unknown: in no subgroup
	return scores, labels, map[string][]string{"sex": sex, "scanner": scanner}
}

func TestAssessSubgroups(t *testing.T) {
	scores, labels, groups := subgroupData()
	a, err := AssessBinary(scores, labels, groups, AssessOptions{AtSpecificity: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Subgroup{}
	order := []string{}
	for _, g := range a.Subgroups {
		got[g.Field+"="+g.Value] = g
		order = append(order, g.Field+"="+g.Value)
	}
	if strings.Join(order, " ") != "scanner=a scanner=b sex=F sex=M sex=O" {
		t.Fatalf("subgroups %v", order)
	}
	for _, c := range []struct {
		key        string
		examples   int
		suppressed bool
		has, lacks []string
	}{
		{"sex=F", 29, false, []string{"auc", "sensitivity", "specificity", "f1", "sensitivity_at_specificity"}, nil},
		// O is below the minimum; M, the smallest shown, goes with it, or
		// O's size would be 60 - 29 - 25 less the unknowns.
		{"sex=M", 0, true, nil, []string{"auc", "sensitivity", "accuracy"}},
		{"sex=O", 0, true, nil, []string{"auc", "sensitivity", "accuracy"}},
		// One class: what it defines, and no error.
		{"scanner=b", 20, false, []string{"sensitivity", "accuracy", "sensitivity_at_specificity"}, []string{"auc", "specificity", "f1", "precision", "balanced_accuracy"}},
	} {
		g := got[c.key]
		if g.Examples != c.examples || g.Suppressed != c.suppressed {
			t.Errorf("%s: %d examples, suppressed %v", c.key, g.Examples, g.Suppressed)
		}
		if c.suppressed && (g.Metrics != nil || g.Confusion != nil) {
			t.Errorf("%s: suppressed but discloses %v %v", c.key, g.Metrics, g.Confusion)
		}
		for _, k := range c.has {
			if _, ok := g.Metrics[k]; !ok {
				t.Errorf("%s: no %s in %v", c.key, k, g.Metrics)
			}
		}
		for _, k := range c.lacks {
			if _, ok := g.Metrics[k]; ok {
				t.Errorf("%s: reports %s, which its data does not define", c.key, k)
			}
		}
	}
	// A subgroup's figures are those of its examples at the whole set's thresholds.
	var s []float64
	var l []int
	for i, v := range groups["scanner"] {
		if v == "a" {
			s, l = append(s, scores[i]), append(l, labels[i])
		}
	}
	rep, err := Binary(s, l, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if got["scanner=a"].Metrics["auc"] != rep.AUC || got["scanner=a"].Confusion["tp"] != rep.TP {
		t.Errorf("scanner=a: %v, Binary on its examples %+v", got["scanner=a"].Metrics["auc"], rep.AUC)
	}

	// The smallest reported subgroup follows MinSubgroup: with 26, sex
	// has two small subgroups (each hides the other) and F is shown;
	// scanner has one, so a goes too.
	a, err = AssessBinary(scores, labels, groups, AssessOptions{MinSubgroup: 26})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range a.Subgroups {
		if g.Suppressed != (g.Field == "scanner" || g.Value != "F") {
			t.Errorf("minimum 26: %s=%s suppressed %v", g.Field, g.Value, g.Suppressed)
		}
	}
}

func TestMaxSubgroupGap(t *testing.T) {
	e := func(v float64) map[string]Estimate { return map[string]Estimate{"auc": {Value: v}} }
	a := Assessment{Subgroups: []Subgroup{
		{Field: "sex", Value: "F", Examples: 20, Metrics: e(0.9)},
		{Field: "sex", Value: "M", Examples: 20, Metrics: e(0.8)},
		{Field: "sex", Value: "O", Suppressed: true},
		{Field: "age", Value: "18-39", Examples: 20, Metrics: e(0.95)},
		{Field: "age", Value: "40-64", Examples: 20, Metrics: e(0.7)},
		{Field: "age", Value: "65+", Examples: 20, Metrics: map[string]Estimate{"sensitivity": {Value: 0.1}}},
		{Field: "model", Value: "x", Examples: 20, Metrics: e(0.1)},
	}}
	for _, c := range []struct {
		metric, field string
		gap           float64
	}{{"auc", "age", 0.25}, {"sensitivity", "", 0}, {"dice", "", 0}} {
		gap, field := a.Gap(c.metric)
		if field != c.field || math.Abs(gap-c.gap) > 1e-12 {
			t.Errorf("%s: gap %v in %q, want %v in %q", c.metric, gap, field, c.gap, c.field)
		}
	}
}

func TestAssessBadInput(t *testing.T) {
	ok := []float64{0.1, 0.9}
	for _, c := range []struct {
		name   string
		scores []float64
		labels []int
		groups map[string][]string
		opt    AssessOptions
	}{
		{"lengths", ok, []int{0}, nil, AssessOptions{}},
		{"empty", nil, nil, nil, AssessOptions{}},
		{"NaN", []float64{math.NaN(), 0.2}, []int{0, 1}, nil, AssessOptions{}},
		{"not a probability", []float64{1.5, 0.2}, []int{0, 1}, nil, AssessOptions{}},
		{"label 2", ok, []int{0, 2}, nil, AssessOptions{}},
		{"group length", ok, []int{0, 1}, map[string][]string{"sex": {"F"}}, AssessOptions{}},
		{"unnamed group", ok, []int{0, 1}, map[string][]string{"": {"F", "M"}}, AssessOptions{}},
		{"specificity target", ok, []int{0, 1}, nil, AssessOptions{AtSpecificity: 1.5}},
		{"negative minimum", ok, []int{0, 1}, nil, AssessOptions{MinSubgroup: -1}},
		{"NaN threshold", ok, []int{0, 1}, nil, AssessOptions{Threshold: math.NaN()}},
	} {
		if _, err := AssessBinary(c.scores, c.labels, c.groups, c.opt); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	// One class over the whole set is not an error: what is defined is reported.
	a, err := AssessBinary([]float64{0.2, 0.7, 0.4}, []int{0, 0, 0}, nil, AssessOptions{AtSpecificity: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Metrics["auc"]; ok || a.ROC != nil || a.Metrics["specificity"].Value != 2.0/3 {
		t.Errorf("negatives only: %+v", a)
	}
	for name, f := range map[string]func() error{
		"multiclass ragged": func() error {
			_, err := AssessMulticlass([][]float64{{0.5, 0.5}, {1}}, []int{0, 1}, nil, AssessOptions{})
			return err
		},
		"multiclass label": func() error {
			_, err := AssessMulticlass([][]float64{{0.5, 0.5}}, []int{2}, nil, AssessOptions{})
			return err
		},
		"segmentation lengths": func() error {
			_, err := AssessSegmentation([][]float32{{1}}, nil, 0.5, nil, AssessOptions{})
			return err
		},
	} {
		if f() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestAssessMulticlassAndSegmentationMatchSklearn(t *testing.T) {
	vec, exp := loadRef(t)
	for name, in := range vec.Multiclass {
		want := exp.Multiclass[name]
		groups := map[string][]string{"half": make([]string, len(in.Labels))}
		for i := range in.Labels {
			groups["half"][i] = []string{"first", "second"}[i*2/len(in.Labels)]
		}
		a, err := AssessMulticlass(in.Probs, in.Labels, groups, AssessOptions{})
		if err != nil {
			t.Fatal(err)
		}
		near(t, name+" macro auc", a.Metrics["auc"].Value, want.MacroAUC)
		near(t, name+" accuracy", a.Metrics["accuracy"].Value, want.Accuracy)
		for i := range want.Confusion {
			for j, n := range want.Confusion[i] {
				if got := a.Confusion[string(rune('0'+i))+"->"+string(rune('0'+j))]; got != n {
					t.Errorf("%s confusion %d->%d = %d, scikit-learn %d", name, i, j, got, n)
				}
			}
		}
		if len(a.Subgroups) != 2 || a.Subgroups[0].Examples+a.Subgroups[1].Examples != len(in.Labels) {
			t.Errorf("%s subgroups %+v", name, a.Subgroups)
		}
	}
	for name, in := range vec.Segmentation {
		want := exp.Segmentation[name]
		a, err := AssessSegmentation(in.Preds, in.Truths, in.Threshold, nil, AssessOptions{})
		if err != nil {
			t.Fatal(err)
		}
		near(t, name+" dice", a.Metrics["dice"].Value, want.MeanDice)
		near(t, name+" iou", a.Metrics["iou"].Value, want.MeanIoU)
	}
}

// TestAssessmentIsBounded: what a site reports does not grow with its
// data: no per-example value can hide in it.
func TestAssessmentIsBounded(t *testing.T) {
	size := func(n int) int {
		scores, labels := make([]float64, n), make([]int, n)
		groups := map[string][]string{"sex": make([]string, n), "age": make([]string, n)}
		for i := range n {
			labels[i] = i % 2
			scores[i] = math.Mod(float64(i)*0.618+0.3*float64(labels[i]), 1)
			groups["sex"][i] = []string{"F", "M"}[i%2]
			groups["age"][i] = []string{"0-17", "18-39", "40-64", "65+"}[i%4]
		}
		a, err := AssessBinary(scores, labels, groups, AssessOptions{AtSpecificity: 0.9})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(a)
		return len(b)
	}
	small, large := size(200), size(20000)
	t.Logf("assessment of 200 examples: %d bytes; of 20000: %d bytes", small, large)
	if large > small+small/4 || large > 16<<10 {
		t.Fatalf("the assessment grows with the data: %d bytes for 200 examples, %d for 20000", small, large)
	}
}

// BenchmarkAssessBinary scores what a validation site reports for 10,000
// examples with four subgroup fields: metrics with bootstrap intervals,
// ROC, calibration and every subgroup.
func BenchmarkAssessBinary(b *testing.B) {
	const n = 10000
	rng := rand.New(rand.NewPCG(3, 4))
	scores, labels := make([]float64, n), make([]int, n)
	groups := map[string][]string{"sex": make([]string, n), "age": make([]string, n), "manufacturer": make([]string, n), "model": make([]string, n)}
	bands := []string{"0-17", "18-39", "40-64", "65+", ""}
	for i := range n {
		labels[i] = rng.IntN(2)
		scores[i] = min(1, max(0, 0.3*float64(labels[i])+0.7*rng.Float64()))
		groups["sex"][i] = []string{"F", "M", ""}[rng.IntN(3)]
		groups["age"][i] = bands[rng.IntN(len(bands))]
		groups["manufacturer"][i] = []string{"Agfa", "Canon", "GE"}[rng.IntN(3)]
		groups["model"][i] = []string{"A1", "B2", "C3", "D4"}[rng.IntN(4)]
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := AssessBinary(scores, labels, groups, AssessOptions{AtSpecificity: 0.9}); err != nil {
			b.Fatal(err)
		}
	}
}
