package evaluation

import (
	"encoding/binary"
	"math"
	"testing"
)

// FuzzBinary feeds arbitrary scores and labels (8 bytes of score and one of
// label per sample, at most 512 samples) to every binary entry point: they
// must return an error or sane values, never panic.
func FuzzBinary(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0xf8, 0x7f, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		n := min(len(b)/9, 512)
		scores := make([]float64, n)
		labels := make([]int, n)
		for i := range n {
			scores[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[9*i:]))
			labels[i] = int(b[9*i+8] % 3) // 2 is invalid on purpose
		}
		if a, err := AUC(scores, labels); err == nil && !(a >= 0 && a <= 1) {
			t.Errorf("AUC %v outside [0, 1]", a)
		}
		if thr, err := Youden(scores, labels); err == nil {
			rep, err := Binary(scores, labels, thr)
			if err != nil {
				t.Fatalf("Binary at Youden's threshold %v: %v", thr, err)
			}
			for _, e := range []Estimate{rep.Sensitivity, rep.Specificity, rep.Precision, rep.F1, rep.Accuracy, rep.BalancedAccuracy, rep.AUC} {
				if !(e.Lower <= e.Value+1e-12 && e.Value <= e.Upper+1e-12 && e.Lower >= 0 && e.Upper <= 1) {
					t.Errorf("estimate %+v is not an interval around its value inside [0, 1]", e)
				}
			}
		}
		groups := map[string][]string{"g": make([]string, n)}
		for i := range n {
			groups["g"][i] = []string{"", "a", "b"}[int(b[9*i+8]/3)%3]
		}
		if a, err := AssessBinary(scores, labels, groups, AssessOptions{AtSpecificity: 0.9, MinSubgroup: 2}); err == nil {
			// Every figure must be one a signed receipt accepts.
			for _, m := range append([]map[string]Estimate{a.Metrics}, func() (ms []map[string]Estimate) {
				for _, g := range a.Subgroups {
					ms = append(ms, g.Metrics)
				}
				return ms
			}()...) {
				for k, e := range m {
					if !(e.Lower >= 0 && e.Upper <= 1 && e.Value >= 0 && e.Value <= 1) {
						t.Errorf("%s = %+v outside [0, 1]", k, e)
					}
				}
			}
		}
		_, _ = ThresholdAtSensitivity(scores, labels, 0.9)
		_, _ = StratifiedKFold(labels, 3, 1)
	})
}
