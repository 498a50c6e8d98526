package evaluation

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// The vectors and expected values come from testdata/sklearn_ref.py, run with
// Debian's python3-sklearn; rerun it to regenerate both files.

type refVectors struct {
	Binary map[string]struct {
		Scores []float64 `json:"scores"`
		Labels []int     `json:"labels"`
	} `json:"binary"`
	Multiclass map[string]struct {
		Probs  [][]float64 `json:"probs"`
		Labels []int       `json:"labels"`
	} `json:"multiclass"`
	Segmentation map[string]struct {
		Threshold float32     `json:"threshold"`
		Preds     [][]float32 `json:"preds"`
		Truths    [][]float32 `json:"truths"`
	} `json:"segmentation"`
}

type refAt struct {
	Threshold        float64    `json:"threshold"`
	Tp               int        `json:"tp"`
	Fp               int        `json:"fp"`
	Tn               int        `json:"tn"`
	Fn               int        `json:"fn"`
	Sens             float64    `json:"sensitivity"`
	Spec             float64    `json:"specificity"`
	Prec             float64    `json:"precision"`
	F1s              float64    `json:"f1"`
	Acc              float64    `json:"accuracy"`
	BalancedAccuracy float64    `json:"balanced_accuracy"`
	WSens            [3]float64 `json:"wilson_sensitivity"`
	WSpec            [3]float64 `json:"wilson_specificity"`
	WPrec            [3]float64 `json:"wilson_precision"`
	WAcc             [3]float64 `json:"wilson_accuracy"`
}

type refExpected struct {
	Binary map[string]struct {
		AUC      float64            `json:"auc"`
		DeLongSE float64            `json:"auc_delong_se"`
		Youden   float64            `json:"youden"`
		AtSens   map[string]float64 `json:"threshold_at_sensitivity"`
		AtYouden refAt              `json:"at_youden"`
		AtHalf   refAt              `json:"at_half"`
	} `json:"binary"`
	Multiclass map[string]struct {
		Accuracy    float64   `json:"accuracy"`
		MacroAUC    float64   `json:"macro_auc"`
		PerClassAUC []float64 `json:"per_class_auc"`
		Confusion   [][]int   `json:"confusion"`
	} `json:"multiclass"`
	Segmentation map[string]struct {
		PerImageDice []float64 `json:"per_image_dice"`
		PerImageIoU  []float64 `json:"per_image_iou"`
		MeanDice     float64   `json:"mean_dice"`
		MeanIoU      float64   `json:"mean_iou"`
	} `json:"segmentation"`
}

func loadRef(t *testing.T) (refVectors, refExpected) {
	t.Helper()
	var v refVectors
	var e refExpected
	for name, dst := range map[string]any{"sklearn_vectors.json": &v, "sklearn_expected.json": &e} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if len(v.Binary) == 0 || len(e.Binary) != len(v.Binary) {
		t.Fatalf("reference files hold %d binary vectors and %d expectations", len(v.Binary), len(e.Binary))
	}
	return v, e
}

const tol = 1e-9

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > tol || math.IsNaN(got) {
		t.Errorf("%s = %.15g, scikit-learn says %.15g", what, got, want)
	}
}

func TestBinaryMatchesSklearn(t *testing.T) {
	vec, exp := loadRef(t)
	for name, in := range vec.Binary {
		want := exp.Binary[name]
		t.Run(name, func(t *testing.T) {
			auc, err := AUC(in.Scores, in.Labels)
			if err != nil {
				t.Fatal(err)
			}
			near(t, "auc", auc, want.AUC)

			y, err := Youden(in.Scores, in.Labels)
			if err != nil {
				t.Fatal(err)
			}
			near(t, "youden threshold", y, want.Youden)

			for ts, wantThr := range want.AtSens {
				target, _ := strconv.ParseFloat(ts, 64)
				got, err := ThresholdAtSensitivity(in.Scores, in.Labels, target)
				if err != nil {
					t.Fatal(err)
				}
				near(t, "threshold at sensitivity "+ts, got, wantThr)
			}

			for _, at := range []refAt{want.AtYouden, want.AtHalf} {
				rep, err := Binary(in.Scores, in.Labels, at.Threshold)
				if err != nil {
					t.Fatal(err)
				}
				if rep.TP != at.Tp || rep.FP != at.Fp || rep.TN != at.Tn || rep.FN != at.Fn {
					t.Errorf("at %v: confusion tp=%d fp=%d tn=%d fn=%d, scikit-learn tp=%d fp=%d tn=%d fn=%d",
						at.Threshold, rep.TP, rep.FP, rep.TN, rep.FN, at.Tp, at.Fp, at.Tn, at.Fn)
				}
				near(t, "sensitivity", rep.Sensitivity.Value, at.Sens)
				near(t, "specificity", rep.Specificity.Value, at.Spec)
				near(t, "precision", rep.Precision.Value, at.Prec)
				near(t, "f1", rep.F1.Value, at.F1s)
				near(t, "accuracy", rep.Accuracy.Value, at.Acc)
				near(t, "balanced accuracy", rep.BalancedAccuracy.Value, at.BalancedAccuracy)
				near(t, "auc in report", rep.AUC.Value, want.AUC)
				for _, w := range []struct {
					name string
					got  Estimate
					want [3]float64
				}{
					{"sensitivity", rep.Sensitivity, at.WSens},
					{"specificity", rep.Specificity, at.WSpec},
					{"precision", rep.Precision, at.WPrec},
					{"accuracy", rep.Accuracy, at.WAcc},
				} {
					near(t, w.name+" wilson lower", w.got.Lower, w.want[1])
					near(t, w.name+" wilson upper", w.got.Upper, w.want[2])
				}
				for _, e := range []struct {
					name string
					est  Estimate
				}{{"f1", rep.F1}, {"balanced accuracy", rep.BalancedAccuracy}, {"auc", rep.AUC}} {
					if !(e.est.Lower <= e.est.Value && e.est.Value <= e.est.Upper) {
						t.Errorf("%s interval [%v, %v] does not contain %v", e.name, e.est.Lower, e.est.Upper, e.est.Value)
					}
				}
			}
			// The bootstrap interval should be about as wide as the normal
			// interval from DeLong's variance; the bootstrap is noisier on
			// small sets, hence the loose bound.
			rep, err := Binary(in.Scores, in.Labels, want.Youden)
			if err != nil {
				t.Fatal(err)
			}
			width := rep.AUC.Upper - rep.AUC.Lower
			delong := 2 * z975 * want.DeLongSE
			t.Logf("bootstrap/DeLong width ratio %.3f", width/delong)
			if r := width / delong; r < 0.7 || r > 1.3 {
				t.Errorf("bootstrap auc interval width %.4f is %.2f x DeLong's %.4f", width, r, delong)
			}
		})
	}
}

func TestMultiClassMatchesSklearn(t *testing.T) {
	vec, exp := loadRef(t)
	for name, in := range vec.Multiclass {
		want := exp.Multiclass[name]
		rep, err := MultiClass(in.Probs, in.Labels)
		if err != nil {
			t.Fatal(err)
		}
		near(t, name+" accuracy", rep.Accuracy.Value, want.Accuracy)
		near(t, name+" macro auc", rep.MacroAUC.Value, want.MacroAUC)
		for c := range want.PerClassAUC {
			near(t, name+" class auc", rep.PerClassAUC[c], want.PerClassAUC[c])
		}
		for i := range want.Confusion {
			for j := range want.Confusion[i] {
				if rep.Confusion[i][j] != want.Confusion[i][j] {
					t.Errorf("%s confusion[%d][%d] = %d, scikit-learn %d", name, i, j, rep.Confusion[i][j], want.Confusion[i][j])
				}
			}
		}
		if !(rep.MacroAUC.Lower < rep.MacroAUC.Value && rep.MacroAUC.Value < rep.MacroAUC.Upper) {
			t.Errorf("%s macro auc interval %+v does not contain the value", name, rep.MacroAUC)
		}
	}
}

func TestDiceMatchesSklearn(t *testing.T) {
	vec, exp := loadRef(t)
	for name, in := range vec.Segmentation {
		want := exp.Segmentation[name]
		rep, err := Dice(in.Preds, in.Truths, in.Threshold)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want.PerImageDice {
			near(t, name+" dice", rep.PerImageDice[i], want.PerImageDice[i])
			near(t, name+" iou", rep.PerImageIoU[i], want.PerImageIoU[i])
		}
		near(t, name+" mean dice", rep.Dice.Value, want.MeanDice)
		near(t, name+" mean iou", rep.IoU.Value, want.MeanIoU)
		for _, e := range []Estimate{rep.Dice, rep.IoU} {
			if !(e.Lower < e.Value && e.Value < e.Upper && e.Lower >= 0 && e.Upper <= 1) {
				t.Errorf("%s interval %+v is not a proper interval around the mean", name, e)
			}
		}
	}
}
