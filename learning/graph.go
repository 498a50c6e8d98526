package learning

import (
	"math"
	"math/rand/v2"
)

// graphNet runs a compiled declaration. Every layer's output and its
// gradient have their own buffer in a worker, allocated once; convolutions
// share one unfolding buffer, recomputed in the backward pass rather than
// kept per layer.
type graphNet struct {
	pl       *graphPlan
	c, h, w  int
	col, pad int          // scratch sizes
	shift    []*shiftGeom // per layer: a shifted-window convolution's layouts, or nil
	uses     []int        // per layer: how many layers read its output
	// swap holds, per shifted-window convolution, its kernels with input
	// and output channels swapped, for the current step's weights; Train
	// sets it once per step for all workers (stepCacher), stepped says so.
	swap    [][]float32
	stepped bool
}

func newGraphNet(s Spec, pl *graphPlan) *graphNet {
	n := &graphNet{pl: pl, c: s.Channels, h: s.Height, w: s.Width, pad: padLen(1), shift: make([]*shiftGeom, len(pl.nodes))}
	n.uses = make([]int, len(pl.nodes))
	for i := range pl.nodes {
		for _, j := range pl.nodes[i].in {
			if j >= 0 {
				n.uses[j]++
			}
		}
	}
	for i := range pl.nodes {
		nd := &pl.nodes[i]
		if nd.Op != "conv" {
			continue
		}
		c, p := nd.convScratch()
		if nd.shifted() {
			n.shift[i] = nd.shiftGeom()
			c, p = nd.shiftScratch(n.shift[i])
		}
		n.col, n.pad = max(n.col, c), max(n.pad, p)
	}
	return n
}

// graphWork is one goroutine's buffers.
type graphWork struct {
	n            *graphNet
	x, mask, tmp []float32
	act, d       [][]float32 // per layer: output, gradient at the output
	aux          [][]float32 // per layer: GroupNorm's x̂ or dropout's mask
	rstd         [][]float32 // per layer: GroupNorm's 1/σ per group
	idx          [][]int32   // per layer: max pooling's winners
	col, pad     []float32
	segTmp       []float64 // multiSegLoss scratch
	pcg          *rand.PCG
	rng          *rand.Rand // dropout, from pcg, seeded per example by Train
	train        bool       // dropout active
}

func (n *graphNet) newWorker() worker {
	pl := n.pl
	ws := &graphWork{n: n, x: make([]float32, n.c*n.h*n.w), tmp: make([]float32, (n.c+1)*n.h*n.w),
		col: make([]float32, n.col), pad: make([]float32, n.pad), pcg: rand.NewPCG(0, 0)}
	ws.rng = rand.New(ws.pcg)
	if pl.seg {
		ws.mask, ws.segTmp = make([]float32, n.h*n.w), make([]float64, 5*pl.k)
	}
	k := len(pl.nodes)
	ws.act, ws.d, ws.aux = make([][]float32, k), make([][]float32, k), make([][]float32, k)
	ws.rstd, ws.idx = make([][]float32, k), make([][]int32, k)
	for i, nd := range pl.nodes {
		ws.act[i], ws.d[i] = make([]float32, nd.size), make([]float32, nd.size)
		switch nd.Op {
		case "groupnorm", "layernorm":
			ws.aux[i], ws.rstd[i] = make([]float32, nd.size), make([]float32, max(nd.Groups, 1))
		case "dropout":
			ws.aux[i] = make([]float32, nd.size)
		case "maxpool", "globalmaxpool":
			ws.idx[i] = make([]int32, nd.size)
		}
	}
	return ws
}

func (ws *graphWork) buffers() (x, mask, tmp []float32) { return ws.x, ws.mask, ws.tmp }

// seedExample fixes the dropout masks of the next example (exampleSeeder).
func (ws *graphWork) seedExample(seed int64, step, j int) {
	ws.pcg.Seed(uint64(seed), 0xd40<<32|uint64(step)<<20^uint64(j))
}

// input returns the output buffer of layer i's input j.
func (ws *graphWork) input(nd *gnode, j int) []float32 {
	if nd.in[j] < 0 {
		return ws.x
	}
	return ws.act[nd.in[j]]
}

// inputGrad returns the gradient buffer of layer i's input j, or nil for
// the model's input, whose gradient nobody needs.
func (ws *graphWork) inputGrad(nd *gnode, j int) []float32 {
	if nd.in[j] < 0 {
		return nil
	}
	return ws.d[nd.in[j]]
}

func (ws *graphWork) forward(wt []float32) {
	for i := range ws.n.pl.nodes {
		nd := &ws.n.pl.nodes[i]
		ws.fwdLayer(i, nd, wt, ws.input(nd, 0), ws.act[i])
	}
}

func (ws *graphWork) backward(wt, grad []float32) {
	if !ws.n.stepped { // called outside Train (one goroutine): the weights may have changed
		ws.n.newStep(wt)
		defer ws.n.endSteps()
	}
	for i := len(ws.n.pl.nodes) - 1; i >= 0; i-- {
		nd := &ws.n.pl.nodes[i]
		ws.bwdLayer(i, nd, wt, grad)
	}
}

func (ws *graphWork) gradStep(wt []float32, y int, scale float32, grad []float32) float64 {
	ws.train = true // dropout on, in the forward and the backward pass
	defer func() { ws.train = false }()
	ws.forward(wt)
	for _, d := range ws.d {
		clear(d)
	}
	last := len(ws.d) - 1
	loss := ws.loss(ws.act[last], y, ws.d[last])
	if scale != 1 {
		for i := range ws.d[last] {
			ws.d[last][i] *= scale
		}
	}
	ws.backward(wt, grad)
	return loss
}

func (ws *graphWork) infer(wt []float32, out []float32) {
	ws.forward(wt)
	z := ws.act[len(ws.act)-1]
	pl := ws.n.pl
	switch {
	case !pl.seg:
		softmax(z, out)
	case pl.k == 1:
		for i, v := range z {
			out[i] = sigmoid(v)
		}
	default:
		hw := len(z) / pl.k
		for p := 0; p < hw; p++ {
			pixelSoftmax(z, out, p, hw, pl.k)
		}
	}
}

// pixelSoftmax writes the softmax over the k channels of pixel p of z
// (k×hw) to the same positions of out.
func pixelSoftmax(z, out []float32, p, hw, k int) {
	m := z[p]
	for c := 1; c < k; c++ {
		m = max(m, z[c*hw+p])
	}
	var s float64
	for c := 0; c < k; c++ {
		e := math.Exp(float64(z[c*hw+p] - m))
		out[c*hw+p] = float32(e)
		s += e
	}
	for c := 0; c < k; c++ {
		out[c*hw+p] = float32(float64(out[c*hw+p]) / s)
	}
}

// init draws the initial weights by op, in layout order: He-normal (fan-in)
// for convolution and dense weights, 1 for normalisation scales, 0 for every
// bias and shift.
func (n *graphNet) init(w []float32, rng *rand.Rand) {
	for i := range n.pl.nodes {
		nd := &n.pl.nodes[i]
		switch nd.Op {
		case "conv", "dense":
			dst := w[nd.wOff : nd.wOff+nd.wSize]
			std := math.Sqrt(2 / float64(nd.wSize/nd.Out))
			for j := range dst {
				dst[j] = float32(rng.NormFloat64() * std)
			}
		case "groupnorm", "layernorm":
			for j := range nd.shape[0] {
				w[nd.wOff+j] = 1
			}
		}
	}
}
