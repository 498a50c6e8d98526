package learning

import (
	"strings"
	"testing"
)

// TestBuiltinCosts: the parameter count is the layout's; the FLOPs are the
// convolutions' and dense layers' multiply-adds counted by hand from the
// architecture (below), plus at most a few percent for normalisation,
// pooling and activations; activations grow linearly with the batch.
func TestBuiltinCosts(t *testing.T) {
	for _, tc := range []struct {
		spec  Spec
		macs2 int64 // 2 × multiply-adds of the convolutions and dense layers
	}{
		// stem 16·784·1·9, block 1 2×16·784·16·9, block 2 32·196·16·9 and
		// 32·196·32·9, shortcut 32·196·16, fc 64·32 and 2·64; ×2.
		{Spec{Arch: "cnn", Channels: 1, Height: 28, Width: 28, Classes: 2}, 13_075_200},
		// enc1 4·1024·(1+4)·9, enc2 8·256·(4+8)·9, mid 16·64·(8+16)·9,
		// up2 8·64·16, dec2 8·256·(16+8)·9, up1 4·256·8, dec1 4·1024·(8+4)·9,
		// head 1024·4; ×2.
		{Spec{Arch: "unet", Channels: 1, Height: 32, Width: 32, BaseWidth: 4}, 3_063_808},
	} {
		c1, err := tc.spec.Cost(1)
		if err != nil {
			t.Fatal(err)
		}
		c8, _ := tc.spec.Cost(8)
		n, _ := ParamCount(tc.spec)
		if c1.Params != int64(n) || c8.ActivationBytes != 8*c1.ActivationBytes || c1.ActivationBytes <= 0 {
			t.Errorf("%s: cost %+v at 1, %+v at 8; %d parameters", tc.spec.Arch, c1, c8, n)
		}
		if f := c1.FLOPsPerExample; f < tc.macs2 || float64(f) > 1.03*float64(tc.macs2) {
			t.Errorf("%s: %d FLOPs per example; the convolutions alone are %d", tc.spec.Arch, f, tc.macs2)
		}
	}
}

func TestLimitsExceeded(t *testing.T) {
	c, err := Spec{Arch: "resnet18", Channels: 1, Height: 224, Width: 224, Classes: 2}.Cost(32)
	if err != nil {
		t.Fatal(err)
	}
	if x := (Limits{}).Exceeded(c); len(x) != 0 {
		t.Errorf("no limits: %v", x)
	}
	if x := (Limits{MaxParams: c.Params, MaxTrainingBytes: c.TrainingBytes(), MaxFLOPsPerExample: c.FLOPsPerExample}).Exceeded(c); len(x) != 0 {
		t.Errorf("limits equal to the cost: %v", x)
	}
	x := (Limits{MaxParams: 1e6, MaxTrainingBytes: 1 << 30, MaxFLOPsPerExample: 1e9}).Exceeded(c)
	if len(x) != 3 {
		t.Fatalf("exceeded %v, want all three", x)
	}
	for _, w := range []struct {
		i    int
		says string
	}{
		{0, "the model has 11171266 parameters, over the limit of 1000000"},
		{1, "training at batch size 32 needs "}, {1, "over the limit of 1.0 GiB"},
		{2, "one example's forward pass takes "},
	} {
		if !strings.Contains(x[w.i].String(), w.says) {
			t.Errorf("%q does not say %q", x[w.i], w.says)
		}
	}
}
