package learning

import "math"

// cnnNet holds the shape arithmetic of one "cnn" spec and the offsets of
// its tensors inside the flat vector; it carries no weights.
//
// Activations of the two convolutional stages live in padded planes (see
// plane): a 3×3 convolution then reads its nine shifted input windows in
// place (matmulAccOff) instead of unfolding them (im2col), and the input
// gradient is a convolution with the flipped kernel, read the same way.
type cnnNet struct {
	c, h, w, k, bw int
	norm           bool  // GroupNorm after each 3×3 convolution (layout concord.cnn/2)
	s1, s2         plane // stage 1 (h×w) and stage 2 (h/2×w/2)
	hw4            int
	off            [nCNNParams]int // offset and size of each tensor, by p… index
	size           [nCNNParams]int
	total          int
}

// Indices of the cnn's tensors (cnnNames); the layout orders them. A 3×3
// convolution's weight w is followed by its bias (w+1) and its GroupNorm
// scale and shift (w+2, w+3), which convNorm and normBack rely on.
const (
	pStemW = iota
	pStemB
	pStemNW
	pStemNB
	pB1C1W
	pB1C1B
	pB1N1W
	pB1N1B
	pB1C2W
	pB1C2B
	pB1N2W
	pB1N2B
	pB2C1W
	pB2C1B
	pB2N1W
	pB2N1B
	pB2C2W
	pB2C2B
	pB2N2W
	pB2N2B
	pB2ScW
	pB2ScB
	pFc1W
	pFc1B
	pFc2W
	pFc2B
	nCNNParams
)

func newCNNNet(s Spec, l Layout) *cnnNet {
	n := &cnnNet{c: s.Channels, h: s.Height, w: s.Width, k: s.Classes, bw: s.BaseWidth, norm: s.Norm == "group"}
	n.s1 = newPlane(n.h, n.w, max(n.c, n.bw))
	n.s2 = newPlane(n.h/2, n.w/2, 2*n.bw)
	n.hw4 = (n.h / 4) * (n.w / 4)
	for i, name := range cnnNames {
		if e, ok := l.Entry(name); ok {
			n.off[i], n.size[i] = e.Offset, e.Size
		}
	}
	n.total = l.Total
	return n
}

func (n *cnnNet) p(v []float32, i int) []float32 { return v[n.off[i] : n.off[i]+n.size[i]] }

// plane is the padded layout of one resolution: each channel an
// (h+2)×(w+2) image whose one-pixel border is zero, channels s apart.
// A 3×3 convolution with padding 1 computes its output on the grid of the
// g = h·wp positions starting at pixel (0,0) (offset o): each row of the grid
// runs on through the right border and the next row's left border, so input
// window (ky, kx) of channel c is the contiguous run at c·s + ky·wp + kx
// (off), and the two border positions per row get junk that clearBorders
// zeroes. Buffers carry two spare values so the last window stays in range.
type plane struct {
	h, w, wp, s, g, o int
	off               []int // off[c·9+ky·3+kx] = c·s + ky·wp + kx
}

func newPlane(h, w, channels int) plane {
	p := plane{h: h, w: w, wp: w + 2, s: (h + 2) * (w + 2), g: h * (w + 2), o: w + 3}
	p.off = make([]int, 9*channels)
	for i := range p.off {
		c, kk := i/9, i%9
		p.off[i] = c*p.s + (kk/3)*p.wp + kk%3
	}
	return p
}

// size is the length of a buffer of c channels in this plane.
func (p plane) size(c int) int { return c*p.s + 2 }

// pack copies a c×h×w image into the interior of a padded buffer.
func (p plane) pack(src []float32, c int, dst []float32) {
	for ch := 0; ch < c; ch++ {
		for y := 0; y < p.h; y++ {
			copy(dst[ch*p.s+p.o+y*p.wp:ch*p.s+p.o+y*p.wp+p.w], src[(ch*p.h+y)*p.w:(ch*p.h+y+1)*p.w])
		}
	}
}

// fillBias sets the grid of each channel of out to its bias.
func (p plane) fillBias(out, bias []float32) {
	for ch, b := range bias {
		g := out[ch*p.s+p.o : ch*p.s+p.o+p.g]
		for i := range g {
			g[i] = b
		}
	}
}

// addBias adds each channel's bias to its grid.
func (p plane) addBias(out, bias []float32) {
	for ch, b := range bias {
		g := out[ch*p.s+p.o : ch*p.s+p.o+p.g]
		for i := range g {
			g[i] += b
		}
	}
}

// clearBorders zeroes the border positions the grid ran over in c channels.
func (p plane) clearBorders(buf []float32, c int) {
	for ch := 0; ch < c; ch++ {
		base := ch*p.s + p.o + p.w
		for y := 0; y < p.h; y++ {
			buf[base+y*p.wp] = 0
			buf[base+y*p.wp+1] = 0
		}
	}
}

// conv adds the 3×3 convolution of in (cin channels, padded) with wt
// ([cout, cin, 3, 3]) to the grid of out (cout channels).
func (p plane) conv(wt []float32, cout, cin int, in, out, pad []float32) {
	matmulAccOff(cout, p.g, cin*9, wt, cin*9, 1, in, p.off, out[p.o:], p.s, pad)
}

// cnnWork is one worker's scratch space: the activations of one example kept
// for its backward pass, and the gradient buffers of that pass. Names ending
// in a stage's activations are padded planes (s1 or s2).
type cnnWork struct {
	net                *cnnNet
	x                  []float32 // the example, c×h×w
	xp                 []float32 // s1, c channels
	a1, a2, a3         []float32 // s1, bw channels
	p1, a4, a5         []float32 // s2
	idx1, idx2         []int32
	p2                 []float32 // 2bw×(h/4)×(w/4), unpadded
	g, h, logits, prob []float32

	dA, dB          []float32 // s1
	dp1, da4, da5   []float32 // s2
	dp2             []float32
	dg, dh, dlogits []float32
	augTmp          []float32
	pad             []float32
	ones            []float32 // s1.g ones: bias gradients are dot products with it
	// GroupNorm (n.norm): the normalised outputs of the stem, block 1 conv 1
	// and 2 (s1) and block 2 conv 1 and 2 (s2), each group's 1/σ, and the
	// gradients at the normalised convolutions whose output gradient is
	// still needed for a skip path.
	xh   [5][]float32
	rstd [5][]float32
	dz1  []float32 // s1, bw channels
	dz2  []float32 // s2, 2bw channels
	// wf holds the 3×3 kernels of block 1 conv 1 and 2, block 2 conv 1 and
	// 2 as flip3 leaves them for their input gradients; backward refreshes
	// them.
	wf [4][]float32
}

func (n *cnnNet) newWork() *cnnWork {
	w := n.bw
	f := func(k int) []float32 { return make([]float32, k) }
	ws := &cnnWork{
		net: n,
		x:   f(n.c * n.h * n.w), xp: f(n.s1.size(n.c)),
		a1: f(n.s1.size(w)), a2: f(n.s1.size(w)), a3: f(n.s1.size(w)),
		p1: f(n.s2.size(w)), a4: f(n.s2.size(2 * w)), a5: f(n.s2.size(2 * w)),
		idx1: make([]int32, w*n.s2.h*n.s2.w), idx2: make([]int32, 2*w*n.hw4),
		p2: f(2 * w * n.hw4),
		g:  f(2 * w), h: f(4 * w), logits: f(n.k), prob: f(n.k),
		dA: f(n.s1.size(w)), dB: f(n.s1.size(w)),
		dp1: f(n.s2.size(w)), da4: f(n.s2.size(2 * w)), da5: f(n.s2.size(2 * w)),
		dp2: f(2 * w * n.hw4),
		dg:  f(2 * w), dh: f(4 * w), dlogits: f(n.k),
		augTmp: f((n.c + 1) * n.h * n.w),
		pad:    f(padLen(max(n.s1.g, 18*w))),
		ones:   ones(n.s1.g),
		wf:     [4][]float32{f(9 * w * w), f(9 * w * w), f(18 * w * w), f(36 * w * w)},
	}
	if n.norm {
		ws.xh = [5][]float32{f(n.s1.size(w)), f(n.s1.size(w)), f(n.s1.size(w)), f(n.s2.size(2 * w)), f(n.s2.size(2 * w))}
		g1, g2 := normGroups(w), normGroups(2*w)
		ws.rstd = [5][]float32{f(g1), f(g1), f(g1), f(g2), f(g2)}
		ws.dz1, ws.dz2 = f(n.s1.size(w)), f(n.s2.size(2*w))
	}
	return ws
}

// convNorm writes into out (plane p, cout channels, borders zero) the 3×3
// convolution of in whose weight is tensor pw (bias pw+1), normalised, when
// the network has GroupNorm, by GroupNorm i (0 stem, 1–2 block 1, 3–4
// block 2) with scale and shift pw+2 and pw+3. The ReLU is the caller's.
func (n *cnnNet) convNorm(wt []float32, ws *cnnWork, p plane, pw, cout, cin int, in, out []float32, i int) {
	p.fillBias(out, n.p(wt, pw+1))
	p.conv(n.p(wt, pw), cout, cin, in, out, ws.pad)
	p.clearBorders(out, cout)
	if n.norm {
		groupNorm(p, out, cout, normGroups(cout), n.p(wt, pw+2), n.p(wt, pw+3), ws.xh[i], ws.rstd[i])
		p.clearBorders(out, cout)
	}
}

// normBack turns d, the gradient at the output of convNorm(…, pw, …, i),
// into the gradient at its convolution's output, in place, adding the
// GroupNorm's scale and shift gradients to grad; the borders of d are zero
// before and after. Without GroupNorm it does nothing.
func (n *cnnNet) normBack(wt []float32, ws *cnnWork, p plane, pw int, d []float32, c, i int, grad []float32) {
	if n.norm {
		groupNormBack(p, d, c, normGroups(c), n.p(wt, pw+2), ws.xh[i], ws.rstd[i], n.p(grad, pw+2), n.p(grad, pw+3))
		p.clearBorders(d, c)
	}
}

func ones(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 1
	}
	return v
}

// flipKernels flips the kernels whose input gradients the backward pass
// needs (a copy of 21k values at width 16, noise next to one example's
// 40 MFLOP).
func (ws *cnnWork) flipKernels(wt []float32) {
	n, w := ws.net, ws.net.bw
	flip3(n.p(wt, pB1C1W), w, w, ws.wf[0])
	flip3(n.p(wt, pB1C2W), w, w, ws.wf[1])
	flip3(n.p(wt, pB2C1W), 2*w, w, ws.wf[2])
	flip3(n.p(wt, pB2C2W), 2*w, 2*w, ws.wf[3])
}

// forward runs one example (already in ws.x) through the network and leaves
// softmax probabilities in ws.prob.
func (n *cnnNet) forward(wt []float32, ws *cnnWork) {
	w, s1, s2 := n.bw, n.s1, n.s2
	s1.pack(ws.x, n.c, ws.xp)
	// stem
	n.convNorm(wt, ws, s1, pStemW, w, n.c, ws.xp, ws.a1, 0)
	reluInPlace(ws.a1)
	// block 1
	n.convNorm(wt, ws, s1, pB1C1W, w, w, ws.a1, ws.a2, 1)
	reluInPlace(ws.a2)
	n.convNorm(wt, ws, s1, pB1C2W, w, w, ws.a2, ws.a3, 2)
	addTo(ws.a3, ws.a1)
	reluInPlace(ws.a3)
	maxpool2(ws.a3, w, s1, ws.p1, s2, ws.idx1)
	// block 2: conv 2 (normalised) plus the 1×1 shortcut
	n.convNorm(wt, ws, s2, pB2C1W, 2*w, w, ws.p1, ws.a4, 3)
	reluInPlace(ws.a4)
	n.convNorm(wt, ws, s2, pB2C2W, 2*w, 2*w, ws.a4, ws.a5, 4)
	s2.addBias(ws.a5, n.p(wt, pB2ScB))
	matmulAcc(2*w, s2.g, w, n.p(wt, pB2ScW), w, 1, ws.p1[s2.o:], s2.s, ws.a5[s2.o:], s2.s, ws.pad)
	s2.clearBorders(ws.a5, 2*w)
	reluInPlace(ws.a5)
	maxpool2(ws.a5, 2*w, s2, ws.p2, flat(n.h/4, n.w/4), ws.idx2)
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
//
// Gradients at activations are padded like the activations; reluMask zeroes
// their borders (a border activation is +0), which the weight gradients
// rely on, since they sum over the whole grid.
func (n *cnnNet) backward(wt []float32, ws *cnnWork, y int, scale float32, grad []float32) float64 {
	w, s1, s2 := n.bw, n.s1, n.s2
	loss := -math.Log(math.Max(float64(ws.prob[y]), 1e-30))
	for i, p := range ws.prob {
		ws.dlogits[i] = scale * p
	}
	ws.dlogits[y] -= scale
	ws.flipKernels(wt)
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
	// block 2: ds2 is the gradient at conv 2 (normalised) plus shortcut.
	maxpool2Back(ws.dp2, 2*w, flat(n.h/4, n.w/4), ws.idx2, ws.da5)
	reluMask(ws.da5, ws.a5)
	ds2 := ws.da5
	ws.gridWeightGrad(s2, ds2, 2*w, ws.p1, w, 1, n.p(grad, pB2ScW), n.p(grad, pB2ScB))
	clear(ws.dp1)
	matmulAcc(w, s2.g, 2*w, n.p(wt, pB2ScW), 1, w, ds2[s2.o:], s2.s, ws.dp1[s2.o:], s2.s, ws.pad)
	dz := ds2
	if n.norm {
		dz = ws.dz2
		copy(dz, ds2)
		n.normBack(wt, ws, s2, pB2C2W, dz, 2*w, 4, grad)
	}
	ws.gridWeightGrad(s2, dz, 2*w, ws.a4, 2*w, 3, n.p(grad, pB2C2W), n.p(grad, pB2C2B))
	clear(ws.da4)
	s2.conv(ws.wf[3], 2*w, 2*w, dz, ws.da4, ws.pad)
	reluMask(ws.da4, ws.a4)
	n.normBack(wt, ws, s2, pB2C1W, ws.da4, 2*w, 3, grad)
	ws.gridWeightGrad(s2, ws.da4, 2*w, ws.p1, w, 3, n.p(grad, pB2C1W), n.p(grad, pB2C1B))
	s2.conv(ws.wf[2], w, 2*w, ws.da4, ws.dp1, ws.pad)
	// block 1: ds1 is the gradient at conv 2 (normalised) plus the skip.
	ds1 := ws.dA
	maxpool2Back(ws.dp1, w, s2, ws.idx1, ds1)
	reluMask(ds1, ws.a3)
	dz = ds1
	if n.norm {
		dz = ws.dz1
		copy(dz, ds1)
		n.normBack(wt, ws, s1, pB1C2W, dz, w, 2, grad)
	}
	ws.gridWeightGrad(s1, dz, w, ws.a2, w, 3, n.p(grad, pB1C2W), n.p(grad, pB1C2B))
	da2 := ws.dB
	clear(da2)
	s1.conv(ws.wf[1], w, w, dz, da2, ws.pad)
	reluMask(da2, ws.a2)
	n.normBack(wt, ws, s1, pB1C1W, da2, w, 1, grad)
	// ds1 now becomes the gradient at a1: the skip path plus conv1's input.
	ws.gridWeightGrad(s1, da2, w, ws.a1, w, 3, n.p(grad, pB1C1W), n.p(grad, pB1C1B))
	da1 := ds1
	s1.conv(ws.wf[0], w, w, da2, da1, ws.pad)
	reluMask(da1, ws.a1)
	n.normBack(wt, ws, s1, pStemW, da1, w, 0, grad)
	// stem
	ws.gridWeightGrad(s1, da1, w, ws.xp, n.c, 3, n.p(grad, pStemW), n.p(grad, pStemB))
	return loss
}

// gridWeightGrad adds the weight and bias gradients of a ks×ks convolution
// (ks 3, or 1 for the shortcut) in plane p to gW ([cout, cin, ks, ks]) and
// gB: for each kernel position q, the dot products of dOut's grid rows
// (cout channels; borders zero) with the input window at q, both running
// along the grid (dotAcc).
func (ws *cnnWork) gridWeightGrad(p plane, dOut []float32, cout int, in []float32, cin, ks int, gW, gB []float32) {
	kk := ks * ks
	for q := 0; q < kk; q++ {
		start := q/ks*p.wp + q%ks
		if ks == 1 {
			start = p.o
		}
		dotAcc(cout, cin, p.g, dOut[p.o:], p.s, in[start:], p.s, gW[q:], cin*kk, kk)
	}
	dotAcc(cout, 1, p.g, dOut[p.o:], p.s, ws.ones[:p.g], 0, gB, 1, 1)
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

// softmax writes softmax(logits) to out (the cnn and declared graphs).
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

// flip3 writes the kernel of a 3×3 convolution, [cout, cin, 3, 3], as the
// kernel of its transpose: [cin, cout, 3, 3], each 3×3 rotated by 180°.
func flip3(wt []float32, cout, cin int, dst []float32) {
	for co := 0; co < cout; co++ {
		for ci := 0; ci < cin; ci++ {
			src := wt[(co*cin+ci)*9 : (co*cin+ci)*9+9]
			d := dst[(ci*cout+co)*9 : (ci*cout+co)*9+9]
			for kk, v := range src {
				d[8-kk] = v
			}
		}
	}
}
