package siteagent

import (
	"math"
	"testing"

	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// TestPredictionBaseline: the kept model scores every baseline example
// into the probability bins, scores the same data again to a PSI of 0,
// and a segmentation model keeps no prediction baseline.
func TestPredictionBaseline(t *testing.T) {
	spec := &pb.JobSpec{Model: &pb.ModelSpec{Arch: "cnn", Channels: 1, Height: 28, Width: 28, Classes: 2, BaseWidth: 4, Norm: "group"}}
	m, err := learning.New(learning.Spec{Arch: "cnn", Channels: 1, Height: 28, Width: 28, Classes: 2, BaseWidth: 4, Norm: "group"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	ds := learning.Dataset{N: 300, C: 1, H: 28, W: 28, X: make([]float32, 300*28*28)}
	for i := range ds.X {
		ds.X[i] = float32(math.Sin(float64(i) * 0.37))
	}
	dm, h := predictionBaseline(spec, m.Weights(), ds)
	if dm == nil || h == nil || h.N() != 300 {
		t.Fatalf("prediction baseline: model %v, histogram %v", dm != nil, h)
	}
	s, err := newScorer(dm)
	if err != nil {
		t.Fatal(err)
	}
	again := evaluation.NewHistogram(h.Edges)
	if err := s.add(ds, &again); err != nil {
		t.Fatal(err)
	}
	if psi := h.PSI(again); psi != 0 {
		t.Fatalf("the same data scored again: PSI %v", psi)
	}
	unet := &pb.JobSpec{Model: &pb.ModelSpec{Arch: "unet", Channels: 1, Height: 32, Width: 32, Classes: 2, BaseWidth: 4}}
	if dm, h := predictionBaseline(unet, nil, ds); dm != nil || h != nil {
		t.Fatal("a segmentation model kept a prediction baseline")
	}
}
