package learning

import (
	"errors"
	"math"
	"testing"
)

// TestParamCountMatchesModel: the analytic count is what New allocates, for
// every architecture and normalisation, and for sizes, widths and class
// counts that move different terms of the sum.
func TestParamCountMatchesModel(t *testing.T) {
	specs := []Spec{
		{Channels: 1, Height: 28, Width: 28, Classes: 2},
		{Channels: 3, Height: 64, Width: 32, Classes: 7, BaseWidth: 8, Norm: "group"},
		{Channels: 1, Height: 28, Width: 28, Classes: 2, BaseWidth: 5, Norm: "none"},
		{Channels: 3, Height: 224, Width: 224, Classes: 1000, BaseWidth: 3, Norm: "none"},
		{Channels: 1, Height: 96, Width: 28, Classes: 11, BaseWidth: 24, Norm: "group"},
		{Arch: "unet", Channels: 1, Height: 32, Width: 32},
		{Arch: "unet", Channels: 3, Height: 16, Width: 48, Classes: 1, BaseWidth: 5},
	}
	for _, s := range specs {
		got, err := ParamCount(s)
		if err != nil {
			t.Errorf("%+v: %v", s, err)
			continue
		}
		m, err := New(s, 1)
		if err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		if want := uint64(len(m.Weights())); got != want || uint64(m.Layout().Total) != want {
			t.Errorf("%+v: ParamCount %d, the model has %d weights (layout total %d)", s, got, want, m.Layout().Total)
		}
	}
}

// TestParamCountHuge: specs too large to allocate are counted, or reported,
// without allocating them.
func TestParamCountHuge(t *testing.T) {
	cases := []struct {
		spec    Spec
		want    uint64
		wantErr error
	}{
		// The head grows with the class count: 4294967295 classes at width 16
		// is about 275 billion parameters, counted exactly.
		{Spec{Channels: 1, Height: 28, Width: 28, Classes: math.MaxUint32}, 0, nil},
		// Base width 1024 is about 86 million parameters.
		{Spec{Channels: 3, Height: 224, Width: 224, Classes: 2, BaseWidth: 1024}, 0, nil},
		{Spec{Channels: 1, Height: 28, Width: 28, Classes: math.MaxInt}, 0, ErrBadSpec},
		{Spec{Channels: 1, Height: 28, Width: 28, Classes: 2, BaseWidth: 2048}, 0, ErrBadSpec},
	}
	small, err := ParamCount(Spec{Channels: 1, Height: 28, Width: 28, Classes: 2})
	if err != nil {
		t.Fatal(err)
	}
	// The fc2 head is classes×(4·16) weights plus classes biases.
	cases[0].want = small - 2*65 + math.MaxUint32*65
	w := uint64(1024)
	cases[1].want = (w*3*9 + 3*w) + 2*(w*w*9+3*w) + (2*w*w*9 + 6*w) + (4*w*w*9 + 6*w) + (2*w*w + 2*w) + (8*w*w + 4*w) + (2*4*w + 2)
	for _, c := range cases {
		got, err := ParamCount(c.spec)
		if c.wantErr != nil {
			if !errors.Is(err, c.wantErr) {
				t.Errorf("%+v: got %d, %v, want %v", c.spec, got, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%+v: got %d, %v, want %d", c.spec, got, err, c.want)
		}
	}
}
