package learning

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func customSpec() Spec {
	return Spec{Arch: ArchCustom, Channels: 1, Height: 28, Width: 28, Classes: 2, CodeSHA256: strings.Repeat("ab", 32),
		Custom: []CustomParam{{"conv.weight", []int{4, 1, 3, 3}}, {"conv.bias", []int{4}}, {"norm.weight", []int{4}},
			{"norm.bias", []int{4}}, {"fc.weight", []int{2, 4}}, {"fc.bias", []int{2}}}}
}

func TestCustomLayoutAndInit(t *testing.T) {
	m, err := New(customSpec(), 7)
	if err != nil {
		t.Fatal(err)
	}
	l := m.Layout()
	var names []string
	for _, e := range l.Params {
		names = append(names, e.Name)
	}
	if want := []string{"conv.weight", "conv.bias", "norm.weight", "norm.bias", "fc.weight", "fc.bias"}; !slices.Equal(names, want) {
		t.Fatalf("layout order %v, want the declared %v", names, want)
	}
	if l.Version != CustomVersion || l.Total != 36+4+4+4+8+2 || l.Code != customSpec().CodeSHA256 {
		t.Fatalf("layout %s total %d code %q", l.Version, l.Total, l.Code)
	}
	if n, err := ParamCount(customSpec()); err != nil || n != uint64(l.Total) {
		t.Fatalf("ParamCount %d, %v; layout %d", n, err, l.Total)
	}
	if c, err := customSpec().Cost(16); err != nil || c != (Cost{Params: int64(l.Total), Batch: 16}) {
		t.Fatalf("cost %+v, %v: want the parameters only", c, err)
	}
	w := m.Weights()
	if w[36] != 0 || w[40] != 1 || w[44] != 0 || w[0] == 0 {
		t.Fatalf("init: bias %v, norm scale %v, norm shift %v, first weight %v", w[36], w[40], w[44], w[0])
	}
	m2, _ := New(customSpec(), 7)
	if !slices.Equal(w, m2.Weights()) {
		t.Fatal("the same seed drew different weights")
	}
	other := customSpec()
	other.CodeSHA256 = strings.Repeat("cd", 32)
	m3, _ := New(other, 7)
	if m3.Layout().Hash() == l.Hash() {
		t.Fatal("two modules with the same shapes share a layout hash")
	}
	ds := Dataset{N: 1, C: 1, H: 28, W: 28, X: make([]float32, 784), Y: []int{0}}
	if _, err := m.Train(context.Background(), ds, TrainConfig{}); !errors.Is(err, ErrCustomCode) {
		t.Fatalf("Train on a custom model: %v, want ErrCustomCode", err)
	}
	if _, err := m.Predict(ds); !errors.Is(err, ErrCustomCode) {
		t.Fatalf("Predict on a custom model: %v, want ErrCustomCode", err)
	}
}

func TestCustomSpecRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{"duplicate name", func(s *Spec) { s.Custom[1].Name = "conv.weight" }, "declared twice"},
		{"zero dimension", func(s *Spec) { s.Custom[0].Shape = []int{4, 0, 3, 3} }, "every dimension"},
		{"no dimensions", func(s *Spec) { s.Custom[0].Shape = nil }, "0 dimensions"},
		{"bad name", func(s *Spec) { s.Custom[0].Name = "conv weight" }, "not a PyTorch parameter name"},
		{"no params", func(s *Spec) { s.Custom = nil }, "0 parameter tensors"},
		{"bad hash", func(s *Spec) { s.CodeSHA256 = "ABC" }, "64 lowercase hex"},
		{"base width", func(s *Spec) { s.BaseWidth = 16 }, "module defines its own"},
		{"huge", func(s *Spec) { s.Custom[0].Shape = []int{1 << 20, 1 << 20} }, "at most"},
		{"hash on cnn", func(s *Spec) { s.Arch = "cnn"; s.Custom = nil }, "arch custom only"},
	} {
		s := customSpec()
		tc.edit(&s)
		_, err := New(s, 1)
		if !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrBadSpec with %q", tc.name, err, tc.want)
		}
	}
}
