package learning

import "math"

// cnnNet holds the shape arithmetic of one "cnn" spec and the offsets of
// its tensors inside the flat vector; it carries no weights.
type cnnNet struct {
	c, h, w, k, bw  int
	hw, h2, w2, hw2 int
	hw4             int
	off             [16]int // offsets of the 16 layout entries, in layout order
	size            [16]int
	total           int
}

// Indices into cnnNet.off, in layout order.
const (
	pStemW = iota
	pStemB
	pB1C1W
	pB1C1B
	pB1C2W
	pB1C2B
	pB2C1W
	pB2C1B
	pB2C2W
	pB2C2B
	pB2ScW
	pB2ScB
	pFc1W
	pFc1B
	pFc2W
	pFc2B
)

func newCNNNet(s Spec, l Layout) *cnnNet {
	n := &cnnNet{c: s.Channels, h: s.Height, w: s.Width, k: s.Classes, bw: s.BaseWidth}
	n.hw = n.h * n.w
	n.h2, n.w2 = n.h/2, n.w/2
	n.hw2 = n.h2 * n.w2
	n.hw4 = (n.h / 4) * (n.w / 4)
	for i, e := range l.Params {
		n.off[i], n.size[i] = e.Offset, e.Size
	}
	n.total = l.Total
	return n
}

func (n *cnnNet) p(v []float32, i int) []float32 { return v[n.off[i] : n.off[i]+n.size[i]] }

// cnnWork is one worker's scratch space: the activations of one example kept
// for its backward pass, and the gradient buffers of that pass.
type cnnWork struct {
	net                *cnnNet
	x                  []float32
	col0, col1, col2   []float32
	col3, col4         []float32
	a1, a2, a3         []float32
	p1                 []float32
	idx1               []int32
	a4, a5             []float32
	p2                 []float32
	idx2               []int32
	g, h, logits, prob []float32

	dcol            []float32
	dA, dB          []float32
	dp1, da4, da5   []float32
	dp2             []float32
	dg, dh, dlogits []float32
	augTmp          []float32
	doutT, wtmp     []float32
	pad             []float32
}

func (n *cnnNet) newWork() *cnnWork {
	w := n.bw
	return &cnnWork{
		net:     n,
		x:       make([]float32, n.c*n.hw),
		col0:    make([]float32, n.c*9*n.hw),
		col1:    make([]float32, w*9*n.hw),
		col2:    make([]float32, w*9*n.hw),
		col3:    make([]float32, w*9*n.hw2),
		col4:    make([]float32, 2*w*9*n.hw2),
		a1:      make([]float32, w*n.hw),
		a2:      make([]float32, w*n.hw),
		a3:      make([]float32, w*n.hw),
		p1:      make([]float32, w*n.hw2),
		idx1:    make([]int32, w*n.hw2),
		a4:      make([]float32, 2*w*n.hw2),
		a5:      make([]float32, 2*w*n.hw2),
		p2:      make([]float32, 2*w*n.hw4),
		idx2:    make([]int32, 2*w*n.hw4),
		g:       make([]float32, 2*w),
		h:       make([]float32, 4*w),
		logits:  make([]float32, n.k),
		prob:    make([]float32, n.k),
		dcol:    make([]float32, w*9*n.hw),
		dA:      make([]float32, w*n.hw),
		dB:      make([]float32, w*n.hw),
		dp1:     make([]float32, w*n.hw2),
		da4:     make([]float32, 2*w*n.hw2),
		da5:     make([]float32, 2*w*n.hw2),
		dp2:     make([]float32, 2*w*n.hw4),
		dg:      make([]float32, 2*w),
		dh:      make([]float32, 4*w),
		dlogits: make([]float32, n.k),
		augTmp:  make([]float32, (n.c+1)*n.hw),
		doutT:   make([]float32, w*n.hw),
		wtmp:    make([]float32, max(36*w*w, n.c*9*w)),
		pad:     make([]float32, padLen(max(n.hw, 18*w))),
	}
}

// forward runs one example (already in ws.x) through the network and leaves
// softmax probabilities in ws.prob.
func (n *cnnNet) forward(wt []float32, ws *cnnWork) {
	w := n.bw
	// stem
	im2col3(ws.x, n.c, n.h, n.w, ws.col0)
	convFwd(n.p(wt, pStemW), n.p(wt, pStemB), ws.col0, w, n.c*9, n.hw, ws.a1, ws.pad)
	reluInPlace(ws.a1)
	// block 1
	im2col3(ws.a1, w, n.h, n.w, ws.col1)
	convFwd(n.p(wt, pB1C1W), n.p(wt, pB1C1B), ws.col1, w, w*9, n.hw, ws.a2, ws.pad)
	reluInPlace(ws.a2)
	im2col3(ws.a2, w, n.h, n.w, ws.col2)
	convFwd(n.p(wt, pB1C2W), n.p(wt, pB1C2B), ws.col2, w, w*9, n.hw, ws.a3, ws.pad)
	for i, v := range ws.a1 {
		ws.a3[i] += v
	}
	reluInPlace(ws.a3)
	maxpool2(ws.a3, w, n.h, n.w, ws.p1, ws.idx1)
	// block 2
	im2col3(ws.p1, w, n.h2, n.w2, ws.col3)
	convFwd(n.p(wt, pB2C1W), n.p(wt, pB2C1B), ws.col3, 2*w, w*9, n.hw2, ws.a4, ws.pad)
	reluInPlace(ws.a4)
	im2col3(ws.a4, 2*w, n.h2, n.w2, ws.col4)
	convFwd(n.p(wt, pB2C2W), n.p(wt, pB2C2B), ws.col4, 2*w, 2*w*9, n.hw2, ws.a5, ws.pad)
	addBias(ws.a5, n.p(wt, pB2ScB), n.hw2)
	matmulAcc(2*w, n.hw2, w, n.p(wt, pB2ScW), w, 1, ws.p1, n.hw2, ws.a5, n.hw2, ws.pad)
	reluInPlace(ws.a5)
	maxpool2(ws.a5, 2*w, n.h2, n.w2, ws.p2, ws.idx2)
	// head
	inv := 1 / float32(n.hw4)
	for c := 0; c < 2*w; c++ {
		var s float32
		for _, v := range ws.p2[c*n.hw4 : (c+1)*n.hw4] {
			s += v
		}
		ws.g[c] = s * inv
	}
	dense(n.p(wt, pFc1W), n.p(wt, pFc1B), ws.g, ws.h)
	reluInPlace(ws.h)
	dense(n.p(wt, pFc2W), n.p(wt, pFc2B), ws.h, ws.logits)
	softmax(ws.logits, ws.prob)
}

// backward adds scale·∂CE(y)/∂w of the example last passed to forward into
// grad and returns its unscaled cross-entropy.
func (n *cnnNet) backward(wt []float32, ws *cnnWork, y int, scale float32, grad []float32) float64 {
	w := n.bw
	loss := -math.Log(math.Max(float64(ws.prob[y]), 1e-30))
	for i, p := range ws.prob {
		ws.dlogits[i] = scale * p
	}
	ws.dlogits[y] -= scale
	// head
	denseBack(n.p(wt, pFc2W), ws.h, ws.dlogits, n.p(grad, pFc2W), n.p(grad, pFc2B), ws.dh)
	reluMask(ws.dh, ws.h)
	denseBack(n.p(wt, pFc1W), ws.g, ws.dh, n.p(grad, pFc1W), n.p(grad, pFc1B), ws.dg)
	inv := 1 / float32(n.hw4)
	for c := 0; c < 2*w; c++ {
		d := ws.dg[c] * inv
		row := ws.dp2[c*n.hw4 : (c+1)*n.hw4]
		for i := range row {
			row[i] = d
		}
	}
	// block 2
	maxpool2Back(ws.dp2, ws.idx2, ws.da5)
	reluMask(ws.da5, ws.a5)
	ds2 := ws.da5
	ws.weightGrad(ds2, 2*w, n.hw2, ws.p1, w, n.p(grad, pB2ScW), n.p(grad, pB2ScB))
	clear(ws.dp1)
	matmulAcc(w, n.hw2, 2*w, n.p(wt, pB2ScW), 1, w, ds2, n.hw2, ws.dp1, n.hw2, ws.pad)
	ws.weightGrad(ds2, 2*w, n.hw2, ws.col4, 2*w*9, n.p(grad, pB2C2W), n.p(grad, pB2C2B))
	dcol := ws.inputGrad(n.p(wt, pB2C2W), ds2, 2*w, 2*w*9, n.hw2)
	clear(ws.da4)
	col2im3(dcol, 2*w, n.h2, n.w2, ws.da4)
	reluMask(ws.da4, ws.a4)
	ws.weightGrad(ws.da4, 2*w, n.hw2, ws.col3, w*9, n.p(grad, pB2C1W), n.p(grad, pB2C1B))
	dcol = ws.inputGrad(n.p(wt, pB2C1W), ws.da4, 2*w, w*9, n.hw2)
	col2im3(dcol, w, n.h2, n.w2, ws.dp1)
	// block 1
	ds1 := ws.dA
	maxpool2Back(ws.dp1, ws.idx1, ds1)
	reluMask(ds1, ws.a3)
	ws.weightGrad(ds1, w, n.hw, ws.col2, w*9, n.p(grad, pB1C2W), n.p(grad, pB1C2B))
	dcol = ws.inputGrad(n.p(wt, pB1C2W), ds1, w, w*9, n.hw)
	da2 := ws.dB
	clear(da2)
	col2im3(dcol, w, n.h, n.w, da2)
	reluMask(da2, ws.a2)
	// ds1 now becomes the gradient at a1: the skip path plus conv1's input.
	ws.weightGrad(da2, w, n.hw, ws.col1, w*9, n.p(grad, pB1C1W), n.p(grad, pB1C1B))
	dcol = ws.inputGrad(n.p(wt, pB1C1W), da2, w, w*9, n.hw)
	da1 := ds1
	col2im3(dcol, w, n.h, n.w, da1)
	reluMask(da1, ws.a1)
	// stem
	ws.weightGrad(da1, w, n.hw, ws.col0, n.c*9, n.p(grad, pStemW), n.p(grad, pStemB))
	return loss
}

// dense computes out = W·in + b for W of shape [len(out), len(in)].
func dense(wt, b, in, out []float32) {
	k := len(in)
	for o := range out {
		row := wt[o*k : (o+1)*k]
		s := b[o]
		for i, v := range in {
			s += row[i] * v
		}
		out[o] = s
	}
}

// denseBack adds dOut⊗in to gW, dOut to gB and writes Wᵀ·dOut to dIn.
func denseBack(wt, in, dOut, gW, gB, dIn []float32) {
	k := len(in)
	clear(dIn)
	for o, d := range dOut {
		gB[o] += d
		if d == 0 {
			continue
		}
		row := wt[o*k : (o+1)*k]
		grow := gW[o*k : (o+1)*k]
		for i, v := range in {
			grow[i] += d * v
			dIn[i] += d * row[i]
		}
	}
}

func softmax(logits, out []float32) {
	m := logits[0]
	for _, v := range logits[1:] {
		m = max(m, v)
	}
	var s float64
	for i, v := range logits {
		e := math.Exp(float64(v - m))
		out[i] = float32(e)
		s += e
	}
	for i := range out {
		out[i] = float32(float64(out[i]) / s)
	}
}

// convFwd computes out = W·col + b for a convolution unfolded by im2col:
// W is cout×k, col is k×hw.
func convFwd(wt, b, col []float32, cout, k, hw int, out, pad []float32) {
	for c, v := range b {
		row := out[c*hw : (c+1)*hw]
		for i := range row {
			row[i] = v
		}
	}
	matmulAcc(cout, hw, k, wt, k, 1, col, hw, out, hw, pad)
}

// weightGrad adds dOut·colᵀ to gW (cout×k) and the row sums of dOut to gB.
// It computes (col·dOutᵀ)ᵀ so that the long hw dimension is the kernel's
// inner loop and both operands stream contiguously.
func (ws *cnnWork) weightGrad(dOut []float32, cout, hw int, col []float32, k int, gW, gB []float32) {
	dT := ws.doutT[:hw*cout]
	transpose(dOut[:cout*hw], cout, hw, dT)
	tmp := ws.wtmp[:k*cout]
	clear(tmp)
	matmulAcc(k, cout, hw, col, hw, 1, dT, cout, tmp, cout, ws.pad)
	for o := 0; o < cout; o++ {
		g := gW[o*k : (o+1)*k]
		for kk := range g {
			g[kk] += tmp[kk*cout+o]
		}
	}
	rowSums(dOut, cout, hw, gB)
}

// inputGrad returns Wᵀ·dOut (k×hw), the gradient of the unfolded input.
func (ws *cnnWork) inputGrad(wt, dOut []float32, cout, k, hw int) []float32 {
	dcol := ws.dcol[:k*hw]
	clear(dcol)
	matmulAcc(k, hw, cout, wt, 1, k, dOut, hw, dcol, hw, ws.pad)
	return dcol
}
