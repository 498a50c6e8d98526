package learning

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// everyOp is a classifier on a 3×8×8 input that uses every op of the
// vocabulary at least once, with non-default fields.
var everyOp = []Layer{
	{Name: "c1", Op: "conv", Out: 6, Kernel: 3, Padding: 1},
	{Name: "g1", Op: "groupnorm", Groups: 3},
	{Name: "a1", Op: "relu"},
	{Name: "c2", Op: "conv", Out: 6, Kernel: 3, Padding: 2, Dilation: 2, Groups: 2, Bias: no()},
	{Name: "ln", Op: "layernorm", Eps: 1e-4},
	{Name: "lk", Op: "leakyrelu", Slope: 0.1},
	{Name: "s", Op: "add", Inputs: []string{"lk", "a1"}},
	{Name: "mp", Op: "maxpool", Kernel: 3, Stride: 2, Padding: 1},
	{Name: "up", Op: "upsample"},
	{Name: "cat", Op: "concat", Inputs: []string{"up", "input"}},
	{Name: "ap", Op: "avgpool", Kernel: 3, Stride: 2, Padding: 1},
	{Name: "sg", Op: "sigmoid"},
	{Name: "th", Op: "tanh", Inputs: []string{"ap"}},
	{Name: "cat2", Op: "concat", Inputs: []string{"sg", "th"}},
	{Name: "dr", Op: "dropout", P: 0.5},
	{Name: "gmp", Op: "globalmaxpool"},
	{Name: "gap", Op: "globalavgpool", Inputs: []string{"dr"}},
	{Name: "v", Op: "add", Inputs: []string{"gmp", "gap"}},
	{Name: "fl", Op: "dense", Out: 18, Inputs: []string{"dr"}},
	{Name: "j", Op: "add", Inputs: []string{"v", "fl"}},
	{Name: "r2", Op: "relu"},
	{Name: "fc", Op: "dense", Out: 3},
}

// segment3 and segment1 are segmenters with three classes and one
// foreground.
var segment3 = []Layer{
	{Name: "c1", Op: "conv", Out: 4, Kernel: 3, Padding: 1},
	{Name: "a1", Op: "relu"},
	{Name: "o", Op: "conv", Out: 3, Kernel: 1},
}

var segment1 = []Layer{
	{Name: "c1", Op: "conv", Out: 4, Kernel: 3, Padding: 1},
	{Name: "a1", Op: "tanh"},
	{Name: "o", Op: "conv", Out: 1, Kernel: 3, Padding: 1},
}

// TestGraphMatchesPyTorch: deploy/trainer/graph_parity.py, given our
// manifest and weights, computes the same outputs, mean loss and gradient
// for a graph with every op, two segmenters and a small resnet18. Costs
// about 10 s (one python start per model).
func TestGraphMatchesPyTorch(t *testing.T) {
	script := filepath.Join(testenv.RepoRoot(), "deploy", "trainer", "graph_parity.py")
	if _, err := os.Stat(script); err != nil {
		t.Skip("graph_parity.py not present")
	}
	py := testenv.Python(t, "torch", "numpy")
	for _, tc := range []struct {
		name string
		spec Spec
	}{
		{"every_op", Spec{Arch: "graph", Channels: 3, Height: 8, Width: 8, Classes: 3, Layers: everyOp}},
		{"segment3", Spec{Arch: "graph", Channels: 2, Height: 8, Width: 8, Classes: 3, Layers: segment3}},
		{"segment1", Spec{Arch: "graph", Channels: 1, Height: 8, Width: 8, Classes: 2, Layers: segment1}},
		{"resnet18", Spec{Arch: "resnet18", Channels: 3, Height: 32, Width: 32, Classes: 3, BaseWidth: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(tc.spec, 11)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(2, 2))
			for _, e := range m.layout.Params {
				if len(e.Shape) == 1 { // biases and norm parameters away from 0 and 1
					for i := e.Offset; i < e.Offset+e.Size; i++ {
						m.w[i] += float32(rng.NormFloat64() * 0.2)
					}
				}
			}
			s := m.Spec()
			ds := graphData(s, 3, 6)
			in := map[string]any{"manifest": json.RawMessage(m.Layout().JSON()), "weights": m.w, "train": false}
			px := s.Channels * s.Height * s.Width
			var xs, masks [][]float32
			for i := 0; i < ds.N; i++ {
				xs = append(xs, ds.X[i*px:(i+1)*px])
			}
			in["input"] = xs
			if m.graph.pl.seg {
				segMasks(&ds, m.graph.pl.k, 7)
				hw := s.Height * s.Width
				for i := 0; i < ds.N; i++ {
					masks = append(masks, ds.Masks[i*hw:(i+1)*hw])
				}
				in["masks"] = masks
			} else {
				in["labels"] = ds.Y
			}
			outs, loss, grad := evalNoDropout(m, ds)
			dir := t.TempDir()
			b, err := json.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "in.json"), b, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(py, script, filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json"))
			cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("graph_parity.py: %v\n%s", err, out)
			}
			var got struct {
				Output [][]float64 `json:"output"`
				Loss   float64     `json:"loss"`
				Grad   []float64   `json:"grad"`
			}
			b, err = os.ReadFile(filepath.Join(dir, "out.json"))
			if err == nil {
				err = json.Unmarshal(b, &got)
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Output) != ds.N || len(got.Grad) != len(grad) {
				t.Fatalf("torch gave %d outputs and %d gradient values, want %d and %d", len(got.Output), len(got.Grad), ds.N, len(grad))
			}
			for i, o := range outs {
				if d, scale := maxDiff(o, got.Output[i]); d > 1e-4*scale {
					t.Errorf("example %d: outputs differ by %.3g (largest output %.3g)", i, d, scale)
				}
			}
			if math.Abs(loss-got.Loss) > 1e-5*max(1, math.Abs(loss)) {
				t.Errorf("loss %.7f, torch %.7f", loss, got.Loss)
			}
			d, scale := maxDiff(grad, got.Grad)
			t.Logf("loss %.6f (torch %.6f), largest gradient difference %.3g of %.3g", loss, got.Loss, d, scale)
			if d > 1e-3*scale {
				for _, e := range m.layout.Params {
					if d, sc := maxDiff(grad[e.Offset:e.Offset+e.Size], got.Grad[e.Offset:e.Offset+e.Size]); d > 1e-3*scale {
						t.Errorf("%s: gradient differs by %.3g (its largest %.3g)", e.Name, d, sc)
					}
				}
			}
		})
	}
}

// evalNoDropout returns each example's raw output, the mean loss and the
// gradient of the mean loss, with dropout off (graph_parity's train:false).
func evalNoDropout(m *Model, ds Dataset) ([][]float32, float64, []float32) {
	ws := m.graph.newWorker().(*graphWork)
	grad := make([]float32, len(m.w))
	px, hw := ds.C*ds.H*ds.W, ds.H*ds.W
	last := len(ws.act) - 1
	var outs [][]float32
	var loss float64
	for i := 0; i < ds.N; i++ {
		copy(ws.x, ds.X[i*px:(i+1)*px])
		if ws.mask != nil {
			copy(ws.mask, ds.Masks[i*hw:(i+1)*hw])
		}
		ws.forward(m.w)
		outs = append(outs, slices.Clone(ws.act[last]))
		for _, d := range ws.d {
			clear(d)
		}
		loss += ws.loss(ws.act[last], ds.Y[i], ws.d[last])
		ws.backward(m.w, grad)
	}
	for i := range grad {
		grad[i] /= float32(ds.N)
	}
	return outs, loss / float64(ds.N), grad
}

// maxDiff is the largest |a−b| and the largest |b| (at least 1e-6).
func maxDiff(a []float32, b []float64) (d, scale float64) {
	scale = 1e-6
	for i, v := range b {
		d = max(d, math.Abs(float64(a[i])-v))
		scale = max(scale, math.Abs(v))
	}
	return d, scale
}
