package learning

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func tinySpec() Spec { return Spec{Channels: 1, Height: 28, Width: 28, Classes: 3, BaseWidth: 2} }

func randomData(n, c, h, w, k int, seed uint64) Dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	ds := Dataset{N: n, C: c, H: h, W: w, X: make([]float32, n*c*h*w), Y: make([]int, n)}
	for i := range ds.X {
		ds.X[i] = float32(rng.NormFloat64())
	}
	for i := range ds.Y {
		ds.Y[i] = rng.IntN(k)
	}
	return ds
}

// lossAt is the mean class-weighted cross-entropy of ds under weights w.
func lossAt(m *Model, w []float32, ds Dataset, cw []float32) float64 {
	ws := m.net.newWork()
	px := ds.C * ds.H * ds.W
	var s float64
	for i := 0; i < ds.N; i++ {
		copy(ws.x, ds.X[i*px:(i+1)*px])
		m.net.forward(w, ws)
		p := float64(ws.prob[ds.Y[i]])
		sc := 1.0
		if cw != nil {
			sc = float64(cw[ds.Y[i]])
		}
		s -= sc * math.Log(p)
	}
	return s / float64(ds.N)
}

func TestGradientMatchesFiniteDifferences(t *testing.T) {
	m, err := New(tinySpec(), 7)
	if err != nil {
		t.Fatal(err)
	}
	// Non-zero biases so that every bias gradient is exercised away from 0.
	rng := rand.New(rand.NewPCG(3, 3))
	for _, e := range m.layout.Params {
		if len(e.Shape) == 1 {
			base := float32(0)
			if strings.Contains(e.Name, ".norm") && strings.HasSuffix(e.Name, ".weight") {
				base = 1 // GroupNorm scales near one, as trained ones are
			}
			for i := e.Offset; i < e.Offset+e.Size; i++ {
				m.w[i] = base + float32(rng.NormFloat64()*0.1)
			}
		}
	}
	ds := randomData(3, 1, 28, 28, 3, 11)
	cw := []float32{1, 2, 0.5}
	grad := make([]float32, m.net.total)
	ws := m.net.newWork()
	for i := 0; i < ds.N; i++ {
		copy(ws.x, ds.X[i*784:(i+1)*784])
		m.net.forward(m.w, ws)
		m.net.backward(m.w, ws, ds.Y[i], cw[ds.Y[i]], grad)
	}
	for i := range grad {
		grad[i] /= float32(ds.N)
	}
	w := m.Weights()
	gradCheck(t, m.layout, w, grad, func(w []float32) float64 { return lossAt(m, w, ds, cw) }, 3e-3, 6, 2e-3, 0.05, 20)
}

func TestNewIsDeterministicAndHeScaled(t *testing.T) {
	a, err := New(Spec{Channels: 1, Height: 28, Width: 28, Classes: 2}, 42)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New(Spec{Channels: 1, Height: 28, Width: 28, Classes: 2}, 42)
	c, _ := New(Spec{Channels: 1, Height: 28, Width: 28, Classes: 2}, 43)
	if !slices.Equal(a.Weights(), b.Weights()) {
		t.Fatal("same seed gave different weights")
	}
	if slices.Equal(a.Weights(), c.Weights()) {
		t.Fatal("different seeds gave the same weights")
	}
	e, _ := a.Layout().Entry("block1.conv1.weight")
	var ss float64
	for _, v := range a.Weights()[e.Offset : e.Offset+e.Size] {
		ss += float64(v) * float64(v)
	}
	std := math.Sqrt(ss / float64(e.Size))
	if want := math.Sqrt(2.0 / 144); math.Abs(std-want) > 0.1*want {
		t.Fatalf("block1.conv1.weight std %.4f, want about %.4f", std, want)
	}
	bias, _ := a.Layout().Entry("head.fc2.bias")
	for _, v := range a.Weights()[bias.Offset : bias.Offset+bias.Size] {
		if v != 0 {
			t.Fatal("biases must start at zero")
		}
	}
}

type layoutWant struct {
	name  string
	shape []int
}

func TestLayoutContract(t *testing.T) {
	m, err := New(Spec{Channels: 3, Height: 32, Width: 32, Classes: 5, BaseWidth: 8}, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, m, CNNVersion, []layoutWant{
		{"stem.conv.weight", []int{8, 3, 3, 3}}, {"stem.conv.bias", []int{8}},
		{"stem.norm.weight", []int{8}}, {"stem.norm.bias", []int{8}},
		{"block1.conv1.weight", []int{8, 8, 3, 3}}, {"block1.conv1.bias", []int{8}},
		{"block1.norm1.weight", []int{8}}, {"block1.norm1.bias", []int{8}},
		{"block1.conv2.weight", []int{8, 8, 3, 3}}, {"block1.conv2.bias", []int{8}},
		{"block1.norm2.weight", []int{8}}, {"block1.norm2.bias", []int{8}},
		{"block2.conv1.weight", []int{16, 8, 3, 3}}, {"block2.conv1.bias", []int{16}},
		{"block2.norm1.weight", []int{16}}, {"block2.norm1.bias", []int{16}},
		{"block2.conv2.weight", []int{16, 16, 3, 3}}, {"block2.conv2.bias", []int{16}},
		{"block2.norm2.weight", []int{16}}, {"block2.norm2.bias", []int{16}},
		{"block2.shortcut.weight", []int{16, 8, 1, 1}}, {"block2.shortcut.bias", []int{16}},
		{"head.fc1.weight", []int{32, 16}}, {"head.fc1.bias", []int{32}},
		{"head.fc2.weight", []int{5, 32}}, {"head.fc2.bias", []int{5}},
	})
	if w := m.Weights(); w[m.net.off[pStemNW]] != 1 || w[m.net.off[pStemNB]] != 0 {
		t.Error("GroupNorm scales should start at 1 and shifts at 0")
	}
	plain, err := New(Spec{Channels: 3, Height: 32, Width: 32, Classes: 5, BaseWidth: 8, Norm: "none"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, plain, CNNVersionPlain, []layoutWant{
		{"stem.conv.weight", []int{8, 3, 3, 3}}, {"stem.conv.bias", []int{8}},
		{"block1.conv1.weight", []int{8, 8, 3, 3}}, {"block1.conv1.bias", []int{8}},
		{"block1.conv2.weight", []int{8, 8, 3, 3}}, {"block1.conv2.bias", []int{8}},
		{"block2.conv1.weight", []int{16, 8, 3, 3}}, {"block2.conv1.bias", []int{16}},
		{"block2.conv2.weight", []int{16, 16, 3, 3}}, {"block2.conv2.bias", []int{16}},
		{"block2.shortcut.weight", []int{16, 8, 1, 1}}, {"block2.shortcut.bias", []int{16}},
		{"head.fc1.weight", []int{32, 16}}, {"head.fc1.bias", []int{32}},
		{"head.fc2.weight", []int{5, 32}}, {"head.fc2.bias", []int{5}},
	})
	if _, err := New(Spec{Channels: 1, Height: 28, Width: 28, Classes: 2, Norm: "batch"}, 1); !errors.Is(err, ErrBadSpec) {
		t.Errorf("norm \"batch\": %v, want ErrBadSpec", err)
	}
	for c, want := range map[int]int{1: 1, 2: 1, 4: 2, 5: 1, 12: 6, 16: 8, 24: 8, 32: 8, 36: 6} {
		if got := normGroups(c); got != want {
			t.Errorf("normGroups(%d) = %d, want %d", c, got, want)
		}
	}
}

func checkLayout(t *testing.T, m *Model, version string, want []layoutWant) {
	t.Helper()
	l := m.Layout()
	if len(l.Params) != len(want) {
		t.Fatalf("%d params, want %d", len(l.Params), len(want))
	}
	off := 0
	for i, w := range want {
		p := l.Params[i]
		if p.Name != w.name || !slices.Equal(p.Shape, w.shape) || p.Offset != off {
			t.Fatalf("param %d = %+v, want %s %v at %d", i, p, w.name, w.shape, off)
		}
		off += p.Size
	}
	if l.Total != off || len(m.Weights()) != off {
		t.Fatalf("total %d, weights %d, want %d", l.Total, len(m.Weights()), off)
	}
	back, err := ParseLayout(l.JSON())
	if err != nil {
		t.Fatal(err)
	}
	if back.Hash() != l.Hash() || back.Version != version {
		t.Fatal("layout does not round-trip through JSON")
	}
	s := m.Spec()
	s.Classes--
	other, _ := New(s, 1)
	if other.Layout().Hash() == l.Hash() {
		t.Fatal("different class counts share a layout hash")
	}
}

func TestBadInputIsAnError(t *testing.T) {
	for _, s := range []Spec{
		{Arch: "vit", Channels: 1, Height: 28, Width: 28, Classes: 2},
		{Channels: 2, Height: 28, Width: 28, Classes: 2},
		{Channels: 1, Height: 30, Width: 28, Classes: 2},
		{Channels: 1, Height: 20, Width: 20, Classes: 2},
		{Channels: 1, Height: 28, Width: 28, Classes: 1},
	} {
		if _, err := New(s, 1); !errors.Is(err, ErrBadSpec) {
			t.Errorf("New(%+v) error %v, want ErrBadSpec", s, err)
		}
	}
	m, _ := New(tinySpec(), 1)
	if err := m.SetWeights(make([]float32, 3)); !errors.Is(err, ErrWeights) {
		t.Errorf("short vector: %v", err)
	}
	nan := m.Weights()
	nan[5] = float32(math.NaN())
	if err := m.SetWeights(nan); !errors.Is(err, ErrWeights) {
		t.Errorf("NaN vector: %v", err)
	}
	ds := randomData(4, 1, 28, 28, 3, 1)
	bad := ds
	bad.Y = []int{0, 1, 2, 3}
	if _, err := m.Train(context.Background(), bad, TrainConfig{}); !errors.Is(err, ErrData) {
		t.Errorf("label out of range: %v", err)
	}
	bad = ds
	bad.X = bad.X[:10]
	if _, err := m.Predict(bad); !errors.Is(err, ErrData) {
		t.Errorf("short pixels: %v", err)
	}
	if _, err := m.Train(context.Background(), ds, TrainConfig{Optimizer: "lbfgs"}); err == nil {
		t.Error("unknown optimizer accepted")
	}
	if _, err := m.Train(context.Background(), ds, TrainConfig{ClassWeights: []float32{1}}); err == nil {
		t.Error("wrong number of class weights accepted")
	}
}
