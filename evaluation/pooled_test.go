package evaluation

import (
	"testing"
)

// TestSubgroupCounts: each example counts once per field, in its cell's
// tp/fp/tn/fn, with missing and out-of-vocabulary values as unknown.
func TestSubgroupCounts(t *testing.T) {
	scores := []float64{0.9, 0.2, 0.7, 0.1, 0.6}
	labels := []int{1, 1, 0, 0, 1}
	groups := map[string][]string{"sex": {"F", "F", "M", "X", ""}, "age": {"65+", "65+", "0-17", "18-39", "40-64"}}
	got, err := SubgroupCounts(scores, labels, groups, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	at := func(field, value, count string) float32 {
		for i, c := range PooledCells {
			if c.Field == field && c.Value == value {
				for k, n := range PooledCounts {
					if n == count {
						return got[i*len(PooledCounts)+k]
					}
				}
			}
		}
		t.Fatalf("no cell %s=%q", field, value)
		return 0
	}
	tests := []struct {
		field, value, count string
		want                float32
	}{
		{"sex", "F", "tp", 1}, {"sex", "F", "fn", 1}, {"sex", "M", "fp", 1}, {"sex", "", "tn", 1}, {"sex", "", "tp", 1},
		{"age", "65+", "tp", 1}, {"age", "65+", "fn", 1}, {"age", "0-17", "fp", 1}, {"age", "18-39", "tn", 1}, {"age", "40-64", "tp", 1},
	}
	var total float32
	for _, v := range got {
		total += v
	}
	if total != 10 {
		t.Fatalf("%v counts in all, want 2 per example", total)
	}
	for _, tt := range tests {
		if g := at(tt.field, tt.value, tt.count); g != tt.want {
			t.Errorf("%s=%q %s = %v, want %v", tt.field, tt.value, tt.count, g, tt.want)
		}
	}
	if _, err := SubgroupCounts(scores, labels, map[string][]string{"sex": {"F"}}, 0.5); err == nil {
		t.Error("a group table not aligned with the examples was accepted")
	}
}

// TestPooledReport: noise is rounded away, empty cells are left out,
// small cells are suppressed, a lone small cell takes the smallest shown
// one with it, and intervals are Wilson's.
func TestPooledReport(t *testing.T) {
	sum := make([]float64, PooledLen())
	set := func(cell int, tp, fp, tn, fn float64) {
		copy(sum[cell*4:], []float64{tp + 1e-5, fp - 1e-5, tn, fn})
	}
	set(0, 10, 2, 20, 3) // sex F: 35
	set(1, 8, 1, 9, 2)   // sex M: 20
	set(2, 1, 0, 1, 0)   // sex O: 2, small
	set(4, 5, 5, 5, 5)   // age 0-17: 20
	set(5, 6, 6, 6, 6)   // age 18-39: 24
	got, err := PooledReport(sum, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"sex=F": false, "sex=M": true, "sex=O": true, "age=0-17": false, "age=18-39": false}
	if len(got) != len(want) {
		t.Fatalf("%d cells, want %d: %+v", len(got), len(want), got)
	}
	for _, g := range got {
		key := g.Field + "=" + g.Value
		if sup, ok := want[key]; !ok || g.Suppressed != sup {
			t.Errorf("%s suppressed %v, want %v", key, g.Suppressed, sup)
		}
		if g.Suppressed && (g.Examples != 0 || g.Confusion != nil) {
			t.Errorf("%s is suppressed but shows %d examples", key, g.Examples)
		}
	}
	if f := got[0]; f.Confusion["tp"] != 10 || f.Confusion["fp"] != 2 || f.Examples != 35 {
		t.Fatalf("sex=F: %+v", f)
	}
	w, _ := Wilson(10, 13)
	if got[0].Metrics["sensitivity"] != w {
		t.Errorf("sensitivity %v, want %v", got[0].Metrics["sensitivity"], w)
	}
	sum[0] = -3
	if _, err := PooledReport(sum, 10); err == nil {
		t.Error("a negative count was accepted")
	}
	if _, err := PooledReport(sum[:4], 10); err == nil {
		t.Error("a vector of the wrong length was accepted")
	}
}
