package learning

import (
	"fmt"
	"slices"
)

// gnode is one layer of a compiled graph: its declaration, where its
// inputs come from, its output shape and where its parameters live.
type gnode struct {
	Layer
	in      []int // indices of the input layers; -1 is the model's input
	inShape []int // the first input's shape
	shape   []int // output: [C, H, W] or [C]
	size    int   // values in the output
	wOff    int   // offset of NAME.weight, -1 if none
	bOff    int   // offset of NAME.bias, -1 if none
	wSize   int
}

// graphPlan is a compiled declaration: nodes in order and the layout.
type graphPlan struct {
	nodes  []gnode
	params []LayoutEntry
	total  int
	seg    bool // the output is [k, H, W]: segmentation
	k      int  // output channels (segmentation) or classes
}

func convSide(n, k, s, p, d int) int { return (n+2*p-d*(k-1)-1)/s + 1 }

// compileGraph infers every layer's shape from a normalised declaration,
// refusing mismatches, and lays out the parameters in declaration order
// (weight before bias).
func compileGraph(s Spec) (*graphPlan, error) {
	pl := &graphPlan{}
	shapes := map[string]int{"input": -1}
	input := []int{s.Channels, s.Height, s.Width}
	shapeOf := func(i int) []int {
		if i < 0 {
			return input
		}
		return pl.nodes[i].shape
	}
	var params uint64
	for i, l := range s.Layers {
		bad := func(format string, a ...any) error {
			return fmt.Errorf("%w: layer %d (%q, %s): %s", ErrBadSpec, i+1, l.Name, l.Op, fmt.Sprintf(format, a...))
		}
		n := gnode{Layer: l, wOff: -1, bOff: -1}
		for _, name := range l.Inputs {
			n.in = append(n.in, shapes[name])
		}
		x := shapeOf(n.in[0])
		n.inShape = x
		spatial := len(x) == 3
		if !spatial && !slices.Contains([]string{"relu", "sigmoid", "tanh", "leakyrelu", "dropout", "dense", "add"}, l.Op) {
			return nil, bad("needs a [C,H,W] input, got %v", x)
		}
		var ps [][]int // weight and bias shapes
		switch l.Op {
		case "conv":
			if x[0]%l.Groups != 0 || l.Out%l.Groups != 0 {
				return nil, bad("groups %d must divide the input channels %d and out %d", l.Groups, x[0], l.Out)
			}
			h, w := convSide(x[1], l.Kernel, l.Stride, l.Padding, l.Dilation), convSide(x[2], l.Kernel, l.Stride, l.Padding, l.Dilation)
			if h < 1 || w < 1 {
				return nil, bad("kernel %d (dilation %d, padding %d) leaves no output from %v", l.Kernel, l.Dilation, l.Padding, x)
			}
			n.shape = []int{l.Out, h, w}
			ps = append(ps, []int{l.Out, x[0] / l.Groups, l.Kernel, l.Kernel})
			if *l.Bias {
				ps = append(ps, []int{l.Out})
			}
		case "groupnorm", "layernorm":
			if l.Op == "groupnorm" && x[0]%l.Groups != 0 {
				return nil, bad("%d groups do not divide %d channels", l.Groups, x[0])
			}
			n.shape = x
			ps = append(ps, []int{x[0]}, []int{x[0]})
		case "maxpool", "avgpool":
			h, w := convSide(x[1], l.Kernel, l.Stride, l.Padding, 1), convSide(x[2], l.Kernel, l.Stride, l.Padding, 1)
			if h < 1 || w < 1 {
				return nil, bad("kernel %d leaves no output from %v", l.Kernel, x)
			}
			n.shape = []int{x[0], h, w}
		case "globalavgpool", "globalmaxpool":
			n.shape = []int{x[0]}
		case "add":
			for _, j := range n.in[1:] {
				if !slices.Equal(shapeOf(j), x) {
					return nil, bad("inputs have shapes %v and %v; add needs identical shapes", x, shapeOf(j))
				}
			}
			n.shape = x
		case "concat":
			c := 0
			for _, j := range n.in {
				y := shapeOf(j)
				if len(y) != 3 || y[1] != x[1] || y[2] != x[2] {
					return nil, bad("inputs have shapes %v and %v; concat needs [C,H,W] inputs of one H,W", x, y)
				}
				c += y[0]
			}
			n.shape = []int{c, x[1], x[2]}
		case "dense":
			in := 1
			for _, d := range x {
				in *= d
			}
			n.shape = []int{l.Out}
			ps = append(ps, []int{l.Out, in})
			if *l.Bias {
				ps = append(ps, []int{l.Out})
			}
		case "upsample":
			n.shape = []int{x[0], x[1] * l.Scale, x[2] * l.Scale}
		default: // relu, sigmoid, tanh, leakyrelu, dropout
			n.shape = x
		}
		n.size = 1
		for _, d := range n.shape {
			n.size *= d
		}
		if n.size > maxActivation {
			return nil, bad("output %v holds more than %d values per example", n.shape, maxActivation)
		}
		for pi, shp := range ps {
			size := 1
			for _, d := range shp {
				size *= d // each factor is bounded, and so is the product of the others
			}
			params += uint64(size)
			if params > maxGraphParams {
				return nil, bad("the model would have more than %d parameters", maxGraphParams)
			}
			name := l.Name + ".weight"
			if pi == 0 {
				n.wOff, n.wSize = pl.total, size
			} else {
				name = l.Name + ".bias"
				n.bOff = pl.total
			}
			pl.params = append(pl.params, LayoutEntry{Name: name, Shape: shp, Offset: pl.total, Size: size})
			pl.total += size
		}
		shapes[l.Name] = i
		pl.nodes = append(pl.nodes, n)
	}
	last := pl.nodes[len(pl.nodes)-1].shape
	switch {
	case len(last) == 1 && last[0] == s.Classes && s.Classes >= 2:
		pl.k = s.Classes
	case len(last) == 3 && last[1] == s.Height && last[2] == s.Width && (last[0] == 1 || last[0] == s.Classes):
		pl.seg, pl.k = true, last[0]
	default:
		return nil, fmt.Errorf("%w: the last layer's output %v is neither [classes] = [%d] (at least 2 classes) nor [k, %d, %d] with k 1 or classes",
			ErrBadSpec, last, s.Classes, s.Height, s.Width)
	}
	return pl, nil
}

// graphLayout is the manifest of a normalised graph spec.
func graphLayout(s Spec, pl *graphPlan) Layout {
	return Layout{Version: GraphVersion, Arch: "graph", Family: s.Family, Input: []int{s.Channels, s.Height, s.Width},
		Classes: s.Classes, Width: s.BaseWidth, Params: slices.Clone(pl.params), Total: pl.total, Layers: s.Layers}
}

// graphCost is costOf["graph"]: activations and their gradients at the
// batch size, and forward FLOPs per example (a multiply-add is two).
func graphCost(s Spec, batch int) Cost {
	pl, err := compileGraph(s)
	if err != nil {
		return Cost{} // s is normalised, so compileGraph has accepted it already
	}
	var acts, flops int64
	for _, n := range pl.nodes {
		acts += int64(n.size)
		switch n.Op {
		case "conv":
			flops += 2 * int64(n.size) * int64(n.inShape[0]/n.Groups) * int64(n.Kernel*n.Kernel)
		case "dense":
			flops += 2 * int64(n.size) * int64(n.wSize/n.Out)
		case "groupnorm", "layernorm":
			flops += 4 * int64(n.size)
		case "maxpool", "avgpool":
			flops += int64(n.size) * int64(n.Kernel*n.Kernel)
		default:
			flops += int64(n.size) * int64(len(n.in))
		}
	}
	return Cost{Params: int64(pl.total), Batch: batch, ActivationBytes: 2 * 4 * acts * int64(batch), FLOPsPerExample: flops}
}

func init() { costOf["graph"] = graphCost }
