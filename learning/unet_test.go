package learning

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// discs is a segmentation set: noisy images with a bright disc whose pixels
// are the mask.
func discs(n, size int, seed uint64) Dataset {
	rng := rand.New(rand.NewPCG(seed, 4))
	hw := size * size
	ds := Dataset{N: n, C: 1, H: size, W: size, X: make([]float32, n*hw), Masks: make([]float32, n*hw)}
	for i := 0; i < n; i++ {
		cx, cy := 4+rng.Float64()*float64(size-8), 4+rng.Float64()*float64(size-8)
		r := 2 + rng.Float64()*float64(size)/6
		for y := 0; y < size; y++ {
			for x := 0; x < size; x++ {
				v := float32(rng.NormFloat64() * 0.3)
				if math.Hypot(float64(x)-cx, float64(y)-cy) <= r {
					v += 1
					ds.Masks[i*hw+y*size+x] = 1
				}
				ds.X[i*hw+y*size+x] = v
			}
		}
	}
	return ds
}

func TestUNetGradientMatchesFiniteDifferences(t *testing.T) {
	m, err := New(Spec{Arch: "unet", Channels: 1, Height: 16, Width: 20, BaseWidth: 2}, 5)
	if err != nil {
		t.Fatal(err)
	}
	w := m.Weights()
	for i := range w {
		if w[i] == 0 {
			w[i] = float32(math.Sin(float64(i))) * 0.05
		}
	}
	ds := discs(1, 16, 1)
	ds.W = 20
	ds.X = make([]float32, 16*20)
	ds.Masks = make([]float32, 16*20)
	rng := rand.New(rand.NewPCG(2, 2))
	for i := range ds.X {
		ds.X[i] = float32(rng.NormFloat64())
		if rng.IntN(3) == 0 {
			ds.Masks[i] = 1
		}
	}
	ws := m.impl.newWorker()
	lossAt := func(w []float32) float64 {
		x, mask, _ := ws.buffers()
		copy(x, ds.X)
		copy(mask, ds.Masks)
		g := make([]float32, len(w))
		return ws.gradStep(w, 0, 1, g)
	}
	grad := make([]float32, len(w))
	x, mask, _ := ws.buffers()
	copy(x, ds.X)
	copy(mask, ds.Masks)
	ws.gradStep(w, 0, 1, grad)
	gradCheck(t, m.Layout(), w, grad, lossAt, 2e-4, 4, 1e-3, 0.05, 20)
}

func diceOf(pred, truth []float32) float64 {
	var inter, ps, ts float64
	for i := range pred {
		p := 0.0
		if pred[i] >= 0.5 {
			p = 1
		}
		inter += p * float64(truth[i])
		ps += p
		ts += float64(truth[i])
	}
	return 2 * inter / math.Max(ps+ts, 1)
}

func TestUNetLearnsDiscs(t *testing.T) {
	m, err := New(Spec{Arch: "unet", Channels: 1, Height: 32, Width: 32, BaseWidth: 4}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if l := m.Layout(); l.Version != UNetVersion || l.Classes != 1 || len(l.Params) != 26 {
		t.Fatalf("layout %s classes %d with %d entries", l.Version, l.Classes, len(l.Params))
	}
	train, test := discs(48, 32, 1), discs(16, 32, 2)
	if _, err := m.Train(context.Background(), train, TrainConfig{Epochs: 6, BatchSize: 8, LR: 3e-3, Augment: true}); err != nil {
		t.Fatal(err)
	}
	p, err := m.Predict(test)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 16*32*32 {
		t.Fatalf("%d predictions, want one per pixel", len(p))
	}
	if d := diceOf(p, test.Masks); d < 0.8 {
		t.Fatalf("test Dice %.3f, want >= 0.8", d)
	}
}

func TestUNetBadInput(t *testing.T) {
	if _, err := New(Spec{Arch: "unet", Channels: 1, Height: 30, Width: 32}, 1); err == nil {
		t.Error("height 30 accepted")
	}
	if _, err := New(Spec{Arch: "unet", Channels: 1, Height: 32, Width: 32, Classes: 3}, 1); err == nil {
		t.Error("3 classes accepted")
	}
	m, _ := New(Spec{Arch: "unet", Channels: 1, Height: 32, Width: 32, BaseWidth: 2}, 1)
	ds := discs(2, 32, 1)
	bad := ds
	bad.Masks = bad.Masks[:5]
	if _, err := m.Train(context.Background(), bad, TrainConfig{}); err == nil {
		t.Error("short masks accepted")
	}
	bad = ds
	bad.Masks = append([]float32(nil), ds.Masks...)
	bad.Masks[3] = 2
	if _, err := m.Train(context.Background(), bad, TrainConfig{}); err == nil {
		t.Error("mask value 2 accepted")
	}
}
