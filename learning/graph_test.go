package learning

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func no() *bool { b := false; return &b }

// head turns a [C,H,W] layer into 3 class logits.
var head = []Layer{{Name: "gap", Op: "globalavgpool"}, {Name: "fc", Op: "dense", Out: 3}}

// stem is a convolution before the op under test, so that its parameters'
// gradients pass through the op's backward pass.
var stem = Layer{Name: "c0", Op: "conv", Out: 4, Kernel: 3, Padding: 1}

// opCases hold, per op and variant, a small graph on a 2×8×8 input.
var opCases = []struct {
	name   string
	layers []Layer
	seg    int // 0: 3-class classifier; k: segmentation with k output channels
}{
	{"conv_stride_pad", []Layer{stem, {Name: "c", Op: "conv", Out: 4, Kernel: 3, Stride: 2, Padding: 1}}, 0},
	{"conv_dilation_groups", []Layer{stem, {Name: "c", Op: "conv", Out: 6, Kernel: 3, Padding: 2, Dilation: 2, Groups: 2}}, 0},
	{"conv_1x1", []Layer{stem, {Name: "c", Op: "conv", Out: 5, Kernel: 1}}, 0},
	{"conv_1x1_stride", []Layer{stem, {Name: "c", Op: "conv", Out: 5, Kernel: 1, Stride: 2, Bias: no()}}, 0},
	{"conv_ragged", []Layer{stem, {Name: "c", Op: "conv", Out: 3, Kernel: 2, Stride: 3}}, 0},
	{"conv_valid", []Layer{stem, {Name: "c", Op: "conv", Out: 5, Kernel: 3}}, 0},
	{"conv_full", []Layer{stem, {Name: "c", Op: "conv", Out: 3, Kernel: 3, Padding: 2, Bias: no()}}, 0},
	{"groupnorm", []Layer{stem, {Name: "n", Op: "groupnorm", Groups: 2}}, 0},
	{"layernorm", []Layer{stem, {Name: "n", Op: "layernorm", Eps: 1e-3}}, 0},
	{"relu", []Layer{stem, {Name: "a", Op: "relu"}}, 0},
	{"sigmoid", []Layer{stem, {Name: "a", Op: "sigmoid"}}, 0},
	{"tanh", []Layer{stem, {Name: "a", Op: "tanh"}}, 0},
	{"leakyrelu", []Layer{stem, {Name: "a", Op: "leakyrelu", Slope: 0.2}}, 0},
	{"maxpool", []Layer{stem, {Name: "p", Op: "maxpool", Kernel: 3, Stride: 2, Padding: 1}}, 0},
	{"maxpool2", []Layer{stem, {Name: "p", Op: "maxpool", Kernel: 2}}, 0},
	{"avgpool", []Layer{stem, {Name: "p", Op: "avgpool", Kernel: 3, Stride: 2, Padding: 1}}, 0},
	{"globalmaxpool", []Layer{stem, {Name: "p", Op: "globalmaxpool"}, {Name: "fc", Op: "dense", Out: 3}}, -1},
	{"add", []Layer{stem, {Name: "c", Op: "conv", Out: 4, Kernel: 3, Padding: 1}, {Name: "s", Op: "add", Inputs: []string{"c", "c0"}}}, 0},
	{"concat", []Layer{stem, {Name: "c", Op: "conv", Out: 2, Kernel: 1}, {Name: "j", Op: "concat", Inputs: []string{"c0", "c", "input"}}}, 0},
	{"dropout", []Layer{stem, {Name: "d", Op: "dropout", P: 0.3}}, 0},
	{"dense_flatten", []Layer{stem, {Name: "f1", Op: "dense", Out: 5}, {Name: "a", Op: "tanh"}, {Name: "fc", Op: "dense", Out: 3}}, -1},
	{"upsample", []Layer{stem, {Name: "p", Op: "maxpool", Kernel: 2}, {Name: "u", Op: "upsample"}, {Name: "u3", Op: "upsample", Scale: 3}}, 0},
	{"segment_binary", []Layer{stem, {Name: "a", Op: "tanh"}, {Name: "o", Op: "conv", Out: 1, Kernel: 1}}, 1},
	{"segment_3", []Layer{stem, {Name: "a", Op: "tanh"}, {Name: "o", Op: "conv", Out: 3, Kernel: 3, Padding: 1}}, 3},
}

func caseSpec(layers []Layer, seg int) Spec {
	s := Spec{Arch: "graph", Channels: 2, Height: 8, Width: 8, Classes: 3, Layers: layers}
	switch {
	case seg == 0:
		s.Layers = append(append([]Layer(nil), layers...), head...)
	case seg == 1:
		s.Classes = 2
	}
	return s
}

// graphData is n random examples for spec: labels, or masks of class
// indices for a segmenter with k output channels.
func graphData(s Spec, n int, seed uint64) Dataset {
	ds := randomData(n, s.Channels, s.Height, s.Width, s.Classes, seed)
	return ds
}

func segMasks(ds *Dataset, k int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 2))
	ds.Masks = make([]float32, ds.N*ds.H*ds.W)
	for i := range ds.Masks {
		if k == 1 {
			ds.Masks[i] = float32(rng.IntN(2))
		} else {
			ds.Masks[i] = float32(rng.IntN(k))
		}
	}
}

// graphLoss sums the examples' losses and, when grad is not nil, their
// gradients; dropout masks are fixed per example.
func graphLoss(m *Model, w []float32, ds Dataset, grad []float32) float64 {
	ws := m.graph.newWorker().(*graphWork)
	if grad == nil {
		grad = make([]float32, len(w))
	}
	px, hw := ds.C*ds.H*ds.W, ds.H*ds.W
	var s float64
	for i := 0; i < ds.N; i++ {
		copy(ws.x, ds.X[i*px:(i+1)*px])
		if ws.mask != nil {
			copy(ws.mask, ds.Masks[i*hw:(i+1)*hw])
		}
		ws.seedExample(1, 0, i)
		s += ws.gradStep(w, ds.Y[i], 1, grad)
	}
	return s
}

func TestGraphGradientsMatchFiniteDifferences(t *testing.T) {
	for _, tc := range opCases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(caseSpec(tc.layers, tc.seg), 5)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(9, 9))
			for _, e := range m.layout.Params {
				if len(e.Shape) == 1 { // biases and norm parameters away from 0 and 1
					for i := e.Offset; i < e.Offset+e.Size; i++ {
						m.w[i] += float32(rng.NormFloat64() * 0.2)
					}
				}
			}
			ds := graphData(m.spec, 3, 4)
			if m.graph.pl.seg {
				segMasks(&ds, m.graph.pl.k, 5)
			}
			w := m.Weights()
			grad := make([]float32, len(w))
			graphLoss(m, w, ds, grad)
			gradCheck(t, m.layout, w, grad, func(w []float32) float64 { return graphLoss(m, w, ds, nil) }, 2e-3, 12, 3e-3, 0.03, 25)
		})
	}
}

func TestResNetParameterCounts(t *testing.T) {
	// torchvision's resnet18/34 (BatchNorm has as many parameters as
	// GroupNorm) at 1000 classes.
	for _, tc := range []struct {
		arch string
		want uint64
	}{{"resnet18", 11689512}, {"resnet34", 21797672}} {
		n, err := ParamCount(Spec{Arch: tc.arch, Channels: 3, Height: 224, Width: 224, Classes: 1000})
		if err != nil || n != tc.want {
			t.Errorf("%s: %d parameters (%v), want %d", tc.arch, n, err, tc.want)
		}
	}
	c, err := Spec{Arch: "resnet18", Channels: 3, Height: 224, Width: 224, Classes: 1000}.Cost(8)
	// about 1.8 GFLOPs (multiply-adds) per 224×224 image
	if err != nil || c.FLOPsPerExample < 3.5e9 || c.FLOPsPerExample > 3.8e9 || c.Params != 11689512 {
		t.Errorf("resnet18 cost %+v (%v)", c, err)
	}
}

func TestGraphManifest(t *testing.T) {
	m, err := New(Spec{Arch: "resnet18", Channels: 1, Height: 64, Width: 64, Classes: 2, BaseWidth: 8}, 1)
	if err != nil {
		t.Fatal(err)
	}
	l := m.Layout()
	if l.Version != GraphVersion || l.Arch != "graph" || l.Family != "resnet18" || m.Spec().Arch != "graph" {
		t.Fatalf("layout %s/%s family %q", l.Version, l.Arch, l.Family)
	}
	var doc struct {
		Layers []map[string]any `json:"layers"`
	}
	if err := json.Unmarshal(l.JSON(), &doc); err != nil {
		t.Fatal(err)
	}
	first := doc.Layers[0]
	want := map[string]any{"name": "stem", "op": "conv", "inputs": []any{"input"}, "out": 8.0, "kernel": 7.0, "stride": 2.0,
		"padding": 3.0, "dilation": 1.0, "groups": 1.0, "bias": false}
	if len(first) != len(want) {
		t.Fatalf("first layer %v, want %v", first, want)
	}
	for k, v := range want {
		if b, _ := json.Marshal(first[k]); string(b) != mustJSON(v) {
			t.Errorf("first layer %s = %v, want %v", k, first[k], v)
		}
	}
	if relu := doc.Layers[2]; len(relu) != 3 || relu["inputs"].([]any)[0] != "stem_gn" {
		t.Errorf("relu layer %v: want name, op and explicit inputs only", relu)
	}
	if _, err := ParseLayout(l.JSON()); err != nil {
		t.Fatal(err)
	}
	// Initialisation by op: norm scales 1, shifts and the dense bias 0,
	// convolution weights He-scaled.
	w := m.Weights()
	for _, nd := range m.graph.pl.nodes {
		switch nd.Op {
		case "groupnorm":
			for j := range nd.shape[0] {
				if w[nd.wOff+j] != 1 || w[nd.bOff+j] != 0 {
					t.Fatalf("%s channel %d starts at scale %v shift %v", nd.Name, j, w[nd.wOff+j], w[nd.bOff+j])
				}
			}
		case "conv":
			var ss float64
			for _, v := range w[nd.wOff : nd.wOff+nd.wSize] {
				ss += float64(v) * float64(v)
			}
			std, want := math.Sqrt(ss/float64(nd.wSize)), math.Sqrt(2/float64(nd.wSize/nd.Out))
			if nd.wSize > 500 && math.Abs(std/want-1) > 0.15 {
				t.Errorf("%s weights have std %.4f, He-normal %.4f", nd.Name, std, want)
			}
		}
	}
	if fc, _ := l.Entry("fc.bias"); w[fc.Offset] != 0 {
		t.Errorf("fc.bias starts at %v", w[fc.Offset])
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestGraphRefusesBadDeclarations(t *testing.T) {
	base := func(ls ...Layer) Spec {
		return Spec{Arch: "graph", Channels: 1, Height: 8, Width: 8, Classes: 2, Layers: ls}
	}
	fc := Layer{Name: "fc", Op: "dense", Out: 2}
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{base(), "1..4096 layers"},
		{base(Layer{Name: "x", Op: "swish"}, fc), `layer 1 ("x"): op "swish"`},
		{base(Layer{Name: "x", Op: "relu", Kernel: 3}, fc), "field kernel does not apply to op relu"},
		{base(Layer{Name: "x", Op: "relu", Bias: no()}, fc), "field bias does not apply"},
		{base(Layer{Name: "fc", Op: "relu"}, fc), `layer 2 ("fc"): the name is used`},
		{base(Layer{Name: "input", Op: "relu"}, fc), "reserved"},
		{base(Layer{Name: "Bad-Name", Op: "relu"}, fc), "a-z, 0-9"},
		{base(Layer{Name: "a", Op: "relu", Inputs: []string{"later"}}, Layer{Name: "later", Op: "relu"}, fc), `input "later" is not an earlier layer`},
		{base(Layer{Name: "a", Op: "conv", Out: 2, Kernel: 3}, Layer{Name: "s", Op: "add", Inputs: []string{"a", "input"}}, fc), `layer 2 ("s", add): inputs have shapes [2 6 6] and [1 8 8]`},
		{base(Layer{Name: "a", Op: "maxpool", Kernel: 2}, Layer{Name: "j", Op: "concat", Inputs: []string{"a", "input"}}, fc), "concat needs [C,H,W] inputs of one H,W"},
		{base(Layer{Name: "s", Op: "add"}, fc), "add needs at least two inputs"},
		{base(Layer{Name: "a", Op: "conv", Out: 0, Kernel: 3}, fc), "out 0, want 1..65536"},
		{base(Layer{Name: "a", Op: "conv", Out: 2, Kernel: -1}, fc), "kernel -1"},
		{base(Layer{Name: "a", Op: "conv", Out: 3, Kernel: 1, Groups: 2}, fc), "groups 2 must divide"},
		{base(Layer{Name: "a", Op: "conv", Out: 2, Kernel: 9}, fc), "leaves no output"},
		{base(Layer{Name: "n", Op: "groupnorm"}, fc), "groups 0"},
		{base(Layer{Name: "d", Op: "dropout", P: 1}, fc), "p 1, want 0 <= p < 1"},
		{base(Layer{Name: "g", Op: "globalavgpool"}, Layer{Name: "p", Op: "maxpool", Kernel: 2}, fc), "needs a [C,H,W] input"},
		{base(Layer{Name: "fc", Op: "dense", Out: 5}), "neither [classes]"},
		{Spec{Arch: "resnet18", Channels: 1, Height: 48, Width: 64, Classes: 2}, "multiples of 32"},
		{Spec{Arch: "resnet18", Channels: 1, Height: 64, Width: 64, Classes: 2, Layers: []Layer{fc}}, "declares its own layers"},
		{Spec{Arch: "cnn", Channels: 1, Height: 28, Width: 28, Classes: 2, Layers: []Layer{fc}}, "arch graph only"},
	} {
		_, err := New(tc.spec, 1)
		if !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.spec.Layers, err, tc.want)
		}
	}
}

// bars is a two-class set: a bright vertical (class 0) or horizontal
// (class 1) bar on noise.
func bars(n, c, size int, seed uint64) Dataset {
	rng := rand.New(rand.NewPCG(seed, 7))
	ds := Dataset{N: n, C: c, H: size, W: size, X: make([]float32, n*c*size*size), Y: make([]int, n)}
	for i := 0; i < n; i++ {
		ds.Y[i] = i % 2
		at := rng.IntN(size-4) + 2
		for ch := 0; ch < c; ch++ {
			img := ds.X[(i*c+ch)*size*size : (i*c+ch+1)*size*size]
			for j := range img {
				img[j] = float32(rng.NormFloat64() * 0.3)
			}
			for k := 0; k < size; k++ {
				if ds.Y[i] == 0 {
					img[k*size+at] += 2
				} else {
					img[at*size+k] += 2
				}
			}
		}
	}
	return ds
}

func meanLoss(m *Model, ds Dataset) float64 {
	return graphLoss(m, m.Weights(), ds, nil) / float64(ds.N)
}

func TestGraphAndResNetTrain(t *testing.T) {
	small := Spec{Arch: "graph", Channels: 1, Height: 16, Width: 16, Classes: 2, Layers: []Layer{
		{Name: "c1", Op: "conv", Out: 8, Kernel: 3, Padding: 1},
		{Name: "n1", Op: "groupnorm", Groups: 2},
		{Name: "a1", Op: "relu"},
		{Name: "c2", Op: "conv", Out: 8, Kernel: 3, Padding: 1},
		{Name: "s", Op: "add", Inputs: []string{"c2", "a1"}},
		{Name: "p", Op: "maxpool", Kernel: 2},
		{Name: "d", Op: "dropout", P: 0.1},
		{Name: "gap", Op: "globalavgpool"},
		{Name: "fc", Op: "dense", Out: 2},
	}}
	for _, tc := range []struct {
		name  string
		spec  Spec
		steps int
	}{
		{"graph", small, 30},
		{"resnet18", Spec{Arch: "resnet18", Channels: 3, Height: 32, Width: 32, Classes: 2, BaseWidth: 4}, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(tc.spec, 3)
			if err != nil {
				t.Fatal(err)
			}
			ds := bars(32, tc.spec.Channels, tc.spec.Height, 1)
			before := meanLoss(m, ds)
			res, err := m.Train(context.Background(), ds, TrainConfig{Steps: tc.steps, BatchSize: 16, LR: 3e-3, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			after := meanLoss(m, ds)
			t.Logf("loss %.4f -> %.4f in %d steps (%.2fs)", before, after, res.Steps, res.Seconds)
			if !(after < 0.7*before) {
				t.Fatalf("loss %.4f -> %.4f: training did not lower it", before, after)
			}
			p, err := m.Predict(ds)
			if err != nil || len(p) != 2*ds.N {
				t.Fatalf("predict: %d values, %v", len(p), err)
			}
		})
	}
}

func TestGraphTrainingIsDeterministic(t *testing.T) {
	spec := caseSpec(opCases[17].layers, 0) // with dropout
	ds := bars(20, 2, 8, 3)
	var first []float32
	for run := 0; run < 2; run++ {
		m, _ := New(spec, 1)
		if _, err := m.Train(context.Background(), ds, TrainConfig{Steps: 3, BatchSize: 20, Seed: 4}); err != nil {
			t.Fatal(err)
		}
		if run == 0 {
			first = m.Weights()
			continue
		}
		for i, v := range m.Weights() {
			if v != first[i] {
				t.Fatalf("weight %d differs between runs: %v and %v", i, first[i], v)
			}
		}
	}
}

// BenchmarkResNet18Step is one training step of resnet18 (grey, 224×224,
// base width 64) at batch 8: the hot path of concord-bench train --model
// resnet18.
func BenchmarkResNet18Step(b *testing.B) {
	m, err := New(Spec{Arch: "resnet18", Channels: 1, Height: 224, Width: 224, Classes: 2}, 1)
	if err != nil {
		b.Fatal(err)
	}
	ds := bars(8, 1, 224, 1)
	cfg := TrainConfig{Steps: 1, BatchSize: 8}
	b.ResetTimer()
	for range b.N {
		if _, err := m.Train(context.Background(), ds, cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(8*b.N)/b.Elapsed().Seconds(), "samples/s")
}
