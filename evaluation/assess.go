package evaluation

import "errors"

// Assessment is a model's scored performance on one site's data: what a
// validation site reports, never predictions or data. Subgroups smaller
// than the caller's minimum are suppressed (their size is not disclosed).
type Assessment struct {
	Task        string              `json:"task"` // binary | multiclass | segmentation
	Examples    int                 `json:"examples"`
	Positives   int                 `json:"positives,omitempty"`
	Threshold   float64             `json:"threshold,omitempty"`
	Metrics     map[string]Estimate `json:"metrics"`             // auc, sensitivity, specificity, precision, f1, accuracy, balanced_accuracy, sensitivity_at_specificity; segmentation: dice, iou
	Confusion   map[string]int      `json:"confusion,omitempty"` // tp, fp, tn, fn
	ROC         []CurvePoint        `json:"roc,omitempty"`
	Calibration []CalibrationBin    `json:"calibration,omitempty"`
	Subgroups   []Subgroup          `json:"subgroups,omitempty"`
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

var errContract = errors.New("evaluation: not built yet")

// AssessBinary scores a binary classifier: scores are P(class 1), groups
// maps a field name to each example's value ("" = unknown).
func AssessBinary(scores []float64, labels []int, groups map[string][]string, opt AssessOptions) (Assessment, error) {
	return Assessment{}, errContract
}
