package learning

import (
	"math"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// gorgoniaCNN builds the "cnn" contract in gorgonia from a flat vector and
// returns the class-weighted mean cross-entropy node, the logits node and the
// parameter nodes in layout order.
func gorgoniaCNN(t *testing.T, g *G.ExprGraph, l Layout, w []float32, ds Dataset, cw []float32) (cost, logits *G.Node, params []*G.Node) {
	t.Helper()
	must := func(n *G.Node, err error) *G.Node {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, e := range l.Params {
		data := append([]float32(nil), w[e.Offset:e.Offset+e.Size]...)
		v := tensor.New(tensor.WithShape(e.Shape...), tensor.WithBacking(data))
		params = append(params, G.NewTensor(g, tensor.Float32, len(e.Shape), G.WithShape(e.Shape...), G.WithName(e.Name), G.WithValue(v)))
	}
	P := func(name string) *G.Node {
		for i, e := range l.Params {
			if e.Name == name {
				return params[i]
			}
		}
		t.Fatalf("no parameter %s", name)
		return nil
	}
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(ds.N, ds.C, ds.H, ds.W), G.WithName("x"),
		G.WithValue(tensor.New(tensor.WithShape(ds.N, ds.C, ds.H, ds.W), tensor.WithBacking(append([]float32(nil), ds.X...)))))
	conv := func(in *G.Node, name string, k int) *G.Node {
		wt, b := P(name+".weight"), P(name+".bias")
		pad := k / 2
		out := must(G.Conv2d(in, wt, tensor.Shape{k, k}, []int{pad, pad}, []int{1, 1}, []int{1, 1}))
		br := must(G.Reshape(b, tensor.Shape{1, b.Shape()[0], 1, 1}))
		return must(G.BroadcastAdd(out, br, nil, []byte{0, 2, 3}))
	}
	dense := func(in *G.Node, name string) *G.Node {
		wt, b := P(name+".weight"), P(name+".bias")
		out := must(G.Mul(in, must(G.Transpose(wt))))
		br := must(G.Reshape(b, tensor.Shape{1, b.Shape()[0]}))
		return must(G.BroadcastAdd(out, br, nil, []byte{0}))
	}
	a1 := must(G.Rectify(conv(x, "stem.conv", 3)))
	a2 := must(G.Rectify(conv(a1, "block1.conv1", 3)))
	a3 := must(G.Rectify(must(G.Add(a1, conv(a2, "block1.conv2", 3)))))
	p1 := must(G.MaxPool2D(a3, tensor.Shape{2, 2}, []int{0, 0}, []int{2, 2}))
	a4 := must(G.Rectify(conv(p1, "block2.conv1", 3)))
	a5 := must(G.Rectify(must(G.Add(conv(p1, "block2.shortcut", 1), conv(a4, "block2.conv2", 3)))))
	p2 := must(G.MaxPool2D(a5, tensor.Shape{2, 2}, []int{0, 0}, []int{2, 2}))
	// One axis at a time: gorgonia's Sum(p2, 2, 3) does not reduce both.
	gap := must(G.Mul(must(G.Sum(must(G.Sum(p2, 3)), 2)), G.NewConstant(float32(1/float64(ds.H/4*ds.W/4)))))

	h := must(G.Rectify(dense(gap, "head.fc1")))
	logits = dense(h, "head.fc2")
	k := l.Classes
	target := make([]float32, ds.N*k)
	for i, y := range ds.Y {
		target[i*k+y] = cw[y]
	}
	tn := G.NewConstant(tensor.New(tensor.WithShape(ds.N, k), tensor.WithBacking(target)))
	lsm := must(G.LogSoftMax(logits))
	sum := must(G.Sum(must(G.HadamardProd(lsm, tn))))
	cost = must(G.Mul(sum, G.NewConstant(float32(-1/float64(ds.N)))))
	return cost, logits, params
}

// TestMatchesGorgonia checks the hand-written forward and backward passes
// against gorgonia's symbolic differentiation of the same network.
func TestMatchesGorgonia(t *testing.T) {
	for _, spec := range []Spec{
		{Channels: 1, Height: 28, Width: 28, Classes: 3, BaseWidth: 4, Norm: "none"},
		{Channels: 3, Height: 28, Width: 32, Classes: 3, BaseWidth: 4, Norm: "none"},
	} {
		t.Run("", func(t *testing.T) { matchGorgonia(t, spec) })
	}
}

func matchGorgonia(t *testing.T, spec Spec) {
	m, err := New(spec, 11)
	if err != nil {
		t.Fatal(err)
	}
	ds := randomData(4, spec.Channels, spec.Height, spec.Width, 3, 12)
	cw := []float32{1, 0.5, 2}
	w := m.Weights()
	for i := range w { // non-zero biases too
		if w[i] == 0 {
			w[i] = float32(math.Sin(float64(i))) * 0.05
		}
	}
	if err := m.SetWeights(w); err != nil {
		t.Fatal(err)
	}

	g := G.NewGraph()
	cost, logits, params := gorgoniaCNN(t, g, m.Layout(), w, ds, cw)
	var logitsVal G.Value
	G.Read(logits, &logitsVal)
	if _, err := G.Grad(cost, params...); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g, G.BindDualValues(params...))
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}

	// Ours.
	grad := make([]float32, len(w))
	ws := m.net.newWork()
	px := ds.C * ds.H * ds.W
	var loss float64
	for i := 0; i < ds.N; i++ {
		copy(ws.x, ds.X[i*px:(i+1)*px])
		m.net.forward(w, ws)
		gl := logitsVal.Data().([]float32)[i*3 : i*3+3]
		for c := range gl {
			if math.Abs(float64(gl[c]-ws.logits[c])) > 1e-4*(1+math.Abs(float64(gl[c]))) {
				t.Fatalf("example %d logit %d: gorgonia %v, ours %v", i, c, gl[c], ws.logits[c])
			}
		}
		loss += float64(cw[ds.Y[i]]) * m.net.backward(w, ws, ds.Y[i], cw[ds.Y[i]], grad)
	}
	loss /= float64(ds.N)
	if gc := float64(cost.Value().Data().(float32)); math.Abs(gc-loss) > 1e-4*(1+loss) {
		t.Fatalf("loss: gorgonia %v, ours %v", gc, loss)
	}
	for pi, e := range m.Layout().Params {
		gv, err := params[pi].Grad()
		if err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		gg := gv.Data().([]float32)
		var num, den float64
		for j, v := range gg {
			ours := float64(grad[e.Offset+j]) / float64(ds.N)
			num += (ours - float64(v)) * (ours - float64(v))
			den += float64(v) * float64(v)
		}
		if rel := math.Sqrt(num / math.Max(den, 1e-20)); rel > 1e-3 {
			t.Errorf("%s: gradient differs from gorgonia's by %.2g (relative L2)", e.Name, rel)
		}
	}
}
