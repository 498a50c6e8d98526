package learning

import (
	"math"
	"testing"
)

// gradCheck compares grad, the analytic gradient of loss at w, with central
// differences of step eps on up to perTensor entries of each tensor of l
// (spread over the tensor). An entry disagrees when it is off by more than
// abs + rel·|numeric|; a ReLU or max-pool switch within ±eps can spoil a
// rare entry, so the check fails only when more than 1/tolerated of them
// do: more means the backward pass is wrong. w is restored.
func gradCheck(t *testing.T, l Layout, w, grad []float32, loss func(w []float32) float64, eps float32, perTensor int, abs, rel float64, tolerated int) {
	t.Helper()
	checked, bad := 0, 0
	for _, e := range l.Params {
		for j := 0; j < min(e.Size, perTensor); j++ {
			i := e.Offset + (j*7919)%e.Size
			orig := w[i]
			w[i] = orig + eps
			lp := loss(w)
			w[i] = orig - eps
			lm := loss(w)
			w[i] = orig
			num := (lp - lm) / (2 * float64(eps))
			got := float64(grad[i])
			checked++
			if math.Abs(num-got) > abs+rel*math.Abs(num) {
				bad++
				t.Logf("%s[%d]: analytic %.6g, numeric %.6g", e.Name, i-e.Offset, got, num)
			}
		}
	}
	if bad > checked/tolerated {
		t.Fatalf("%d of %d gradient entries disagree with finite differences", bad, checked)
	}
}
