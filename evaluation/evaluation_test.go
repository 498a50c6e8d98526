package evaluation

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestBadInputIsAnError(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		name string
		run  func() error
	}{
		{"length mismatch", func() error { _, err := AUC([]float64{1, 2}, []int{1}); return err }},
		{"empty", func() error { _, err := AUC(nil, nil); return err }},
		{"nan score", func() error { _, err := AUC([]float64{nan, 1}, []int{0, 1}); return err }},
		{"label 2", func() error { _, err := AUC([]float64{0, 1}, []int{0, 2}); return err }},
		{"one class auc", func() error { _, err := AUC([]float64{0, 1}, []int{1, 1}); return err }},
		{"one class binary", func() error { _, err := Binary([]float64{0, 1}, []int{0, 0}, 0.5); return err }},
		{"nan threshold", func() error { _, err := Binary([]float64{0, 1}, []int{0, 1}, nan); return err }},
		{"youden without signal", func() error { _, err := Youden([]float64{1, 0}, []int{0, 1}); return err }},
		{"sensitivity target 0", func() error { _, err := ThresholdAtSensitivity([]float64{0, 1}, []int{0, 1}, 0); return err }},
		{"sensitivity target 1.5", func() error { _, err := ThresholdAtSensitivity([]float64{0, 1}, []int{0, 1}, 1.5); return err }},
		{"wilson s > n", func() error { _, err := Wilson(3, 2); return err }},
		{"wilson negative", func() error { _, err := Wilson(-1, 2); return err }},
		{"multiclass ragged", func() error { _, err := MultiClass([][]float64{{1, 0}, {1}}, []int{0, 1}); return err }},
		{"multiclass missing class", func() error { _, err := MultiClass([][]float64{{1, 0, 0}, {0, 1, 0}}, []int{0, 1}); return err }},
		{"multiclass label range", func() error { _, err := MultiClass([][]float64{{1, 0}, {0, 1}}, []int{0, 2}); return err }},
		{"dice size mismatch", func() error { _, err := Dice([][]float32{{1, 0}}, [][]float32{{1}}, 0.5); return err }},
		{"dice no images", func() error { _, err := Dice(nil, nil, 0.5); return err }},
		{"dice nan", func() error { _, err := Dice([][]float32{{float32(nan)}}, [][]float32{{1}}, 0.5); return err }},
		{"k-fold k=1", func() error { _, err := StratifiedKFold([]int{0, 1, 0, 1}, 1, 1); return err }},
		{"k-fold rare class", func() error { _, err := StratifiedKFold([]int{0, 0, 0, 0, 1}, 2, 1); return err }},
		{"k-fold negative label", func() error { _, err := StratifiedKFold([]int{0, -1, 0, -1}, 2, 1); return err }},
		{"loso one site", func() error { _, err := LeaveOneSiteOut([]string{"a", "a"}); return err }},
		{"loso empty site", func() error { _, err := LeaveOneSiteOut([]string{"a", ""}); return err }},
	}
	for _, c := range cases {
		if err := c.run(); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	if _, err := AUC([]float64{0, 1}, []int{0, 0}); !errors.Is(err, ErrOneClass) {
		t.Errorf("one-class AUC error %v is not ErrOneClass", err)
	}
}

func TestWilsonKnownValues(t *testing.T) {
	// Newcombe (1998), Table I, examples 1 and 5: 81/263 and 0/10.
	for _, c := range []struct {
		s, n   int
		lo, hi float64
	}{{81, 263, 0.2553, 0.3662}, {0, 10, 0, 0.2775}, {10, 10, 0.7225, 1}} {
		e, err := Wilson(c.s, c.n)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(e.Lower-c.lo) > 5e-5 || math.Abs(e.Upper-c.hi) > 5e-5 {
			t.Errorf("Wilson(%d, %d) = [%.4f, %.4f], want [%.4f, %.4f]", c.s, c.n, e.Lower, e.Upper, c.lo, c.hi)
		}
	}
	if e, _ := Wilson(0, 0); e != (Estimate{0, 0, 1}) {
		t.Errorf("Wilson(0, 0) = %+v, want the uninformative interval", e)
	}
}

func TestBootstrapIsDeterministic(t *testing.T) {
	scores, labels := synthetic(300, 7)
	a, err := Binary(scores, labels, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Binary(scores, labels, 0.5)
	if a != b {
		t.Errorf("two runs differ: %+v vs %+v", a.AUC, b.AUC)
	}
}

func TestStratifiedKFold(t *testing.T) {
	labels := make([]int, 103)
	for i := range labels {
		switch {
		case i%10 == 0:
			labels[i] = 2
		case i%3 == 0:
			labels[i] = 1
		}
	}
	for _, k := range []int{2, 5, 10} {
		folds, err := StratifiedKFold(labels, k, 42)
		if err != nil {
			t.Fatal(err)
		}
		if len(folds) != k {
			t.Fatalf("k=%d: %d folds", k, len(folds))
		}
		seen := make([]int, len(labels))
		counts := map[int][]int{}
		for f, fold := range folds {
			if len(fold.Train)+len(fold.Test) != len(labels) {
				t.Errorf("k=%d fold %d: %d train + %d test != %d", k, f, len(fold.Train), len(fold.Test), len(labels))
			}
			if !slices.IsSorted(fold.Test) || !slices.IsSorted(fold.Train) {
				t.Errorf("k=%d fold %d: indices not sorted", k, f)
			}
			inTest := map[int]bool{}
			for _, i := range fold.Test {
				seen[i]++
				inTest[i] = true
				if counts[labels[i]] == nil {
					counts[labels[i]] = make([]int, k)
				}
				counts[labels[i]][f]++
			}
			for _, i := range fold.Train {
				if inTest[i] {
					t.Errorf("k=%d fold %d: sample %d in train and test", k, f, i)
				}
			}
		}
		for i, n := range seen {
			if n != 1 {
				t.Errorf("k=%d: sample %d tested %d times", k, i, n)
			}
		}
		for c, per := range counts {
			if slices.Max(per)-slices.Min(per) > 1 {
				t.Errorf("k=%d class %d: per-fold counts %v differ by more than one", k, c, per)
			}
		}
		sizes := make([]int, k)
		for f := range folds {
			sizes[f] = len(folds[f].Test)
		}
		if slices.Max(sizes)-slices.Min(sizes) > 1 {
			t.Errorf("k=%d: fold sizes %v differ by more than one", k, sizes)
		}
	}
	a, _ := StratifiedKFold(labels, 5, 1)
	b, _ := StratifiedKFold(labels, 5, 1)
	c, _ := StratifiedKFold(labels, 5, 2)
	if !slices.Equal(a[0].Test, b[0].Test) {
		t.Error("same seed gave different folds")
	}
	if slices.Equal(a[0].Test, c[0].Test) {
		t.Error("different seeds gave the same folds")
	}
}

func TestLeaveOneSiteOut(t *testing.T) {
	sites := []string{"st-marys", "guys", "st-marys", "kings", "guys", "guys"}
	folds, err := LeaveOneSiteOut(sites)
	if err != nil {
		t.Fatal(err)
	}
	want := []Fold{
		{Name: "guys", Train: []int{0, 2, 3}, Test: []int{1, 4, 5}},
		{Name: "kings", Train: []int{0, 1, 2, 4, 5}, Test: []int{3}},
		{Name: "st-marys", Train: []int{1, 3, 4, 5}, Test: []int{0, 2}},
	}
	if len(folds) != len(want) {
		t.Fatalf("%d folds, want %d", len(folds), len(want))
	}
	for i := range want {
		if folds[i].Name != want[i].Name || !slices.Equal(folds[i].Train, want[i].Train) || !slices.Equal(folds[i].Test, want[i].Test) {
			t.Errorf("fold %d = %+v, want %+v", i, folds[i], want[i])
		}
	}
}

func TestOverlapBothEmpty(t *testing.T) {
	d, j, err := Overlap([]float32{0.1, 0.2}, []float32{0, 0}, 0.5)
	if err != nil || d != 1 || j != 1 {
		t.Errorf("both empty: dice %v iou %v err %v, want 1 1 nil", d, j, err)
	}
	d, j, _ = Overlap([]float32{0.9, 0.2}, []float32{0, 0}, 0.5)
	if d != 0 || j != 0 {
		t.Errorf("false positive only: dice %v iou %v, want 0 0", d, j)
	}
}

// synthetic returns n scores where positives score higher on average.
func synthetic(n int, seed uint64) ([]float64, []int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	scores := make([]float64, n)
	labels := make([]int, n)
	for i := range scores {
		if rng.Float64() < 0.3 {
			labels[i] = 1
		}
		scores[i] = 1 / (1 + math.Exp(-(rng.NormFloat64() + 1.5*float64(labels[i]) - 0.7)))
	}
	return scores, labels
}

// BenchmarkBinary measures a full report with its 2000 bootstrap
// replicates on a PneumoniaMNIST-sized test set (624 images).
func BenchmarkBinary(b *testing.B) {
	scores, labels := synthetic(624, 3)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Binary(scores, labels, 0.5); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAUC(b *testing.B) {
	scores, labels := synthetic(100_000, 3)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := AUC(scores, labels); err != nil {
			b.Fatal(err)
		}
	}
}
