package learning

import (
	"fmt"
	"math"
)

// UNetVersion is the layout version of the "unet" architecture.
const UNetVersion = "concord.unet/1"

// The "unet" is a two-level 2D U-Net for binary segmentation:
//
//	enc1 (b) -> pool -> enc2 (2b) -> pool -> mid (4b)
//	-> up ×2 (1×1 projection to 2b) ++ enc2 -> dec2 (2b)
//	-> up ×2 (1×1 projection to b)  ++ enc1 -> dec1 (b) -> head (1×1 to 1 logit)
//
// Each stage is two 3×3 convolutions with padding 1 and ReLU. Upsampling is
// nearest-neighbour; because the projection is 1×1, it is applied before the
// upsampling, which gives the same values at a quarter of the cost. The loss
// per image is the mean binary cross-entropy of the pixels plus 1 − soft
// Dice (smoothing 1).

func (s Spec) unetNormalised() (Spec, error) {
	if s.BaseWidth == 0 {
		s.BaseWidth = 8
	}
	switch {
	case s.Channels != 1 && s.Channels != 3:
		return s, fmt.Errorf("%w: channels %d, want 1 (grey) or 3 (RGB)", ErrBadSpec, s.Channels)
	case s.Height < 16 || s.Height > 512 || s.Width < 16 || s.Width > 512:
		return s, fmt.Errorf("%w: unet input %dx%d, want 16..512 on each side", ErrBadSpec, s.Height, s.Width)
	case s.Height%4 != 0 || s.Width%4 != 0:
		return s, fmt.Errorf("%w: input %dx%d, both sides must be divisible by 4", ErrBadSpec, s.Height, s.Width)
	case s.Classes != 0 && s.Classes != 1:
		return s, fmt.Errorf("%w: unet segments one foreground; classes %d, want 0 or 1", ErrBadSpec, s.Classes)
	case s.BaseWidth < 1 || s.BaseWidth > 128:
		return s, fmt.Errorf("%w: base width %d, want 1..128", ErrBadSpec, s.BaseWidth)
	}
	s.Classes = 1
	return s, nil
}

// unetConvs lists the convolutions in layout order: name, cin, cout, k.
func unetConvs(c, b int) []struct {
	name            string
	cin, cout, kern int
} {
	return []struct {
		name            string
		cin, cout, kern int
	}{
		{"enc1.conv1", c, b, 3}, {"enc1.conv2", b, b, 3},
		{"enc2.conv1", b, 2 * b, 3}, {"enc2.conv2", 2 * b, 2 * b, 3},
		{"mid.conv1", 2 * b, 4 * b, 3}, {"mid.conv2", 4 * b, 4 * b, 3},
		{"up2.proj", 4 * b, 2 * b, 1},
		{"dec2.conv1", 4 * b, 2 * b, 3}, {"dec2.conv2", 2 * b, 2 * b, 3},
		{"up1.proj", 2 * b, b, 1},
		{"dec1.conv1", 2 * b, b, 3}, {"dec1.conv2", b, b, 3},
		{"head.conv", b, 1, 1},
	}
}

func unetLayout(s Spec) Layout {
	l := Layout{Version: UNetVersion, Arch: "unet", Input: []int{s.Channels, s.Height, s.Width}, Classes: 1, Width: s.BaseWidth}
	off := 0
	for _, cv := range unetConvs(s.Channels, s.BaseWidth) {
		wn := cv.cout * cv.cin * cv.kern * cv.kern
		l.Params = append(l.Params,
			LayoutEntry{Name: cv.name + ".weight", Shape: []int{cv.cout, cv.cin, cv.kern, cv.kern}, Offset: off, Size: wn},
			LayoutEntry{Name: cv.name + ".bias", Shape: []int{cv.cout}, Offset: off + wn, Size: cv.cout})
		off += wn + cv.cout
	}
	l.Total = off
	return l
}

// Indices of the convolutions in unetConvs.
const (
	uE1a = iota
	uE1b
	uE2a
	uE2b
	uMa
	uMb
	uUp2
	uD2a
	uD2b
	uUp1
	uD1a
	uD1b
	uHead
)

type uconv struct {
	wOff, bOff, cin, cout, k int
}

type unetNet struct {
	c, b          int
	h, w, h2, w2  int
	h4, w4        int
	hw, hw2, hw4  int
	convs         []uconv
	maxCol, total int
}

func newUNet(s Spec, l Layout) *unetNet {
	n := &unetNet{c: s.Channels, b: s.BaseWidth, h: s.Height, w: s.Width}
	n.h2, n.w2, n.h4, n.w4 = n.h/2, n.w/2, n.h/4, n.w/4
	n.hw, n.hw2, n.hw4 = n.h*n.w, n.h2*n.w2, n.h4*n.w4
	for i, cv := range unetConvs(s.Channels, s.BaseWidth) {
		n.convs = append(n.convs, uconv{wOff: l.Params[2*i].Offset, bOff: l.Params[2*i+1].Offset, cin: cv.cin, cout: cv.cout, k: cv.kern})
	}
	b := n.b
	n.maxCol = max(max(n.c, 2*b)*9*n.hw, 4*b*9*n.hw2, 4*b*9*n.hw4)
	n.total = l.Total
	return n
}

type unetWork struct {
	n                *unetNet
	x, mask, tmp     []float32
	e1a, e1, p1      []float32
	idx1             []int32
	e2a, e2, p2      []float32
	idx2             []int32
	ma, mo, proj2    []float32
	cat2, d2a, d2    []float32
	proj1, cat1      []float32
	d1a, d1, logit   []float32
	col, dcol        []float32
	doutT, wtmp, pad []float32
	wflip            []float32
	// gradient buffers
	g1, g2, g3, g4 []float32
	gl2a, gl2b     []float32
	gl4a, gl4b     []float32
}

func (n *unetNet) newWorker() worker {
	b := n.b
	f := func(k int) []float32 { return make([]float32, k) }
	return &unetWork{
		n: n, x: f(n.c * n.hw), mask: f(n.hw), tmp: f((n.c + 1) * n.hw),
		e1a: f(b * n.hw), e1: f(b * n.hw), p1: f(b * n.hw2), idx1: make([]int32, b*n.hw2),
		e2a: f(2 * b * n.hw2), e2: f(2 * b * n.hw2), p2: f(2 * b * n.hw4), idx2: make([]int32, 2*b*n.hw4),
		ma: f(4 * b * n.hw4), mo: f(4 * b * n.hw4), proj2: f(2 * b * n.hw4),
		cat2: f(4 * b * n.hw2), d2a: f(2 * b * n.hw2), d2: f(2 * b * n.hw2),
		proj1: f(b * n.hw2), cat1: f(2 * b * n.hw),
		d1a: f(b * n.hw), d1: f(b * n.hw), logit: f(n.hw),
		col: f(n.maxCol), dcol: f(n.maxCol),
		doutT: f(4 * b * n.hw), wtmp: f(16 * 9 * b * b), wflip: f(16 * 9 * b * b), pad: f(padLen(max(n.hw, 36*b))),
		g1: f(2 * b * n.hw), g2: f(2 * b * n.hw), g3: f(b * n.hw), g4: f(b * n.hw),
		gl2a: f(4 * b * n.hw2), gl2b: f(4 * b * n.hw2),
		gl4a: f(4 * b * n.hw4), gl4b: f(4 * b * n.hw4),
	}
}

func (ws *unetWork) buffers() (x, mask, tmp []float32) { return ws.x, ws.mask, ws.tmp }

// fwd runs convolution i on in (cin×h×w) into out, with ReLU if relu.
func (ws *unetWork) fwd(wt []float32, i int, in []float32, h, w int, out []float32, relu bool) {
	cv := ws.n.convs[i]
	hw := h * w
	W, B := wt[cv.wOff:cv.wOff+cv.cout*cv.cin*cv.k*cv.k], wt[cv.bOff:cv.bOff+cv.cout]
	col := in
	if cv.k == 3 {
		col = ws.col[:cv.cin*9*hw]
		im2col3(in, cv.cin, h, w, col)
	}
	convFwd(W, B, col, cv.cout, cv.cin*cv.k*cv.k, hw, out[:cv.cout*hw], ws.pad)
	if relu {
		reluInPlace(out[:cv.cout*hw])
	}
}

// bwd adds convolution i's weight gradient for input in and output
// gradient dOut into grad, and adds the input gradient into dIn (if non-nil).
func (ws *unetWork) bwd(wt, grad []float32, i int, in []float32, h, w int, dOut, dIn []float32) {
	cv := ws.n.convs[i]
	hw := h * w
	kk := cv.cin * cv.k * cv.k
	W := wt[cv.wOff : cv.wOff+cv.cout*kk]
	col := in[:cv.cin*hw]
	if cv.k == 3 {
		col = ws.col[:kk*hw]
		im2col3(in, cv.cin, h, w, col)
	}
	ws.weightGrad(dOut[:cv.cout*hw], cv.cout, hw, col, kk, grad[cv.wOff:cv.wOff+cv.cout*kk], grad[cv.bOff:cv.bOff+cv.cout])
	if dIn == nil {
		return
	}
	if cv.k == 3 {
		wf := ws.wflip[:cv.cout*kk]
		flip3(W, cv.cout, cv.cin, wf)
		convInputGrad(wf, dOut, cv.cout, cv.cin, h, w, dIn, ws.dcol, ws.pad)
		return
	}
	dcol := ws.inputGrad(W, dOut[:cv.cout*hw], cv.cout, kk, hw)
	for j, v := range dcol {
		dIn[j] += v
	}
}

// weightGrad adds dOut·colᵀ to gW (cout×k) and the row sums of dOut to gB.
// It computes (col·dOutᵀ)ᵀ so that the long hw dimension is the kernel's
// inner loop and both operands stream contiguously.
func (ws *unetWork) weightGrad(dOut []float32, cout, hw int, col []float32, k int, gW, gB []float32) {
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

// inputGrad returns Wᵀ·dOut (k×hw), the gradient of the unfolded input of
// a convolution (the U-Net's 1×1 convolutions use it directly).
func (ws *unetWork) inputGrad(wt, dOut []float32, cout, k, hw int) []float32 {
	dcol := ws.dcol[:k*hw]
	clear(dcol)
	matmulAcc(k, hw, cout, wt, 1, k, dOut, hw, dcol, hw, ws.pad)
	return dcol
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

// upsample2 is nearest-neighbour ×2 of a c×h×w image into out (c×2h×2w).
func upsample2(in []float32, c, h, w int, out []float32) {
	w2 := 2 * w
	for ch := 0; ch < c; ch++ {
		src := in[ch*h*w : (ch+1)*h*w]
		dst := out[ch*4*h*w : (ch+1)*4*h*w]
		for y := 0; y < h; y++ {
			r0 := dst[2*y*w2 : (2*y+1)*w2]
			for x, v := range src[y*w : (y+1)*w] {
				r0[2*x], r0[2*x+1] = v, v
			}
			copy(dst[(2*y+1)*w2:(2*y+2)*w2], r0)
		}
	}
}

// upsample2Back sums each 2×2 block of dout (c×2h×2w) into din (c×h×w).
func upsample2Back(dout []float32, c, h, w int, din []float32) {
	w2 := 2 * w
	for ch := 0; ch < c; ch++ {
		src := dout[ch*4*h*w : (ch+1)*4*h*w]
		dst := din[ch*h*w : (ch+1)*h*w]
		for y := 0; y < h; y++ {
			r0, r1 := src[2*y*w2:(2*y+1)*w2], src[(2*y+1)*w2:(2*y+2)*w2]
			for x := 0; x < w; x++ {
				dst[y*w+x] = r0[2*x] + r0[2*x+1] + r1[2*x] + r1[2*x+1]
			}
		}
	}
}

func (ws *unetWork) forward(wt []float32) {
	n, b := ws.n, ws.n.b
	ws.fwd(wt, uE1a, ws.x, n.h, n.w, ws.e1a, true)
	ws.fwd(wt, uE1b, ws.e1a, n.h, n.w, ws.e1, true)
	maxpool2(ws.e1, b, flat(n.h, n.w), ws.p1, flat(n.h2, n.w2), ws.idx1)
	ws.fwd(wt, uE2a, ws.p1, n.h2, n.w2, ws.e2a, true)
	ws.fwd(wt, uE2b, ws.e2a, n.h2, n.w2, ws.e2, true)
	maxpool2(ws.e2, 2*b, flat(n.h2, n.w2), ws.p2, flat(n.h4, n.w4), ws.idx2)
	ws.fwd(wt, uMa, ws.p2, n.h4, n.w4, ws.ma, true)
	ws.fwd(wt, uMb, ws.ma, n.h4, n.w4, ws.mo, true)
	ws.fwd(wt, uUp2, ws.mo, n.h4, n.w4, ws.proj2, false)
	upsample2(ws.proj2, 2*b, n.h4, n.w4, ws.cat2[:2*b*n.hw2])
	copy(ws.cat2[2*b*n.hw2:], ws.e2)
	ws.fwd(wt, uD2a, ws.cat2, n.h2, n.w2, ws.d2a, true)
	ws.fwd(wt, uD2b, ws.d2a, n.h2, n.w2, ws.d2, true)
	ws.fwd(wt, uUp1, ws.d2, n.h2, n.w2, ws.proj1, false)
	upsample2(ws.proj1, b, n.h2, n.w2, ws.cat1[:b*n.hw])
	copy(ws.cat1[b*n.hw:], ws.e1)
	ws.fwd(wt, uD1a, ws.cat1, n.h, n.w, ws.d1a, true)
	ws.fwd(wt, uD1b, ws.d1a, n.h, n.w, ws.d1, true)
	ws.fwd(wt, uHead, ws.d1, n.h, n.w, ws.logit, false)
}

func sigmoid(z float32) float32 { return float32(1 / (1 + math.Exp(-float64(z)))) }

// segLoss returns BCE + (1 − Dice) for the logits against mask and writes
// ∂loss/∂logit into dl.
func segLoss(logit, mask, dl []float32) float64 {
	var bce, inter, ps, ts float64
	for i, z := range logit {
		t := float64(mask[i])
		zf := float64(z)
		// softplus(z) − t·z, computed stably.
		bce += math.Max(zf, 0) + math.Log1p(math.Exp(-math.Abs(zf))) - t*zf
		p := float64(sigmoid(z))
		inter += p * t
		ps += p
		ts += t
	}
	hw := float64(len(logit))
	const smooth = 1
	den := ps + ts + smooth
	dice := (2*inter + smooth) / den
	for i, z := range logit {
		t := float64(mask[i])
		p := float64(sigmoid(z))
		dDice := (2*t*den - (2*inter + smooth)) / (den * den)
		dl[i] = float32((p-t)/hw - dDice*p*(1-p))
	}
	return bce/hw + 1 - dice
}

func (ws *unetWork) gradStep(wt []float32, _ int, scale float32, grad []float32) float64 {
	n, b := ws.n, ws.n.b
	ws.forward(wt)
	dl := ws.g3[:n.hw]
	loss := segLoss(ws.logit, ws.mask, dl)
	if scale != 1 {
		for i := range dl {
			dl[i] *= scale
		}
	}
	// head and dec1
	dd1 := ws.g4[:b*n.hw]
	clear(dd1)
	ws.bwd(wt, grad, uHead, ws.d1, n.h, n.w, dl, dd1)
	reluMask(dd1, ws.d1)
	dd1a := ws.g3[:b*n.hw]
	clear(dd1a)
	ws.bwd(wt, grad, uD1b, ws.d1a, n.h, n.w, dd1, dd1a)
	reluMask(dd1a, ws.d1a)
	dcat1 := ws.g1[:2*b*n.hw]
	clear(dcat1)
	ws.bwd(wt, grad, uD1a, ws.cat1, n.h, n.w, dd1a, dcat1)
	// split: first b channels go up to proj1, the rest is the skip into e1.
	dproj1 := ws.gl2a[:b*n.hw2]
	upsample2Back(dcat1[:b*n.hw], b, n.h2, n.w2, dproj1)
	de1 := ws.g2[:b*n.hw]
	copy(de1, dcat1[b*n.hw:])
	dd2 := ws.gl2b[:2*b*n.hw2]
	clear(dd2)
	ws.bwd(wt, grad, uUp1, ws.d2, n.h2, n.w2, dproj1, dd2)
	reluMask(dd2, ws.d2)
	dd2a := ws.gl2a[:2*b*n.hw2]
	clear(dd2a)
	ws.bwd(wt, grad, uD2b, ws.d2a, n.h2, n.w2, dd2, dd2a)
	reluMask(dd2a, ws.d2a)
	dcat2 := ws.gl2b[:4*b*n.hw2]
	clear(dcat2)
	ws.bwd(wt, grad, uD2a, ws.cat2, n.h2, n.w2, dd2a, dcat2)
	dproj2 := ws.gl4a[:2*b*n.hw4]
	upsample2Back(dcat2[:2*b*n.hw2], 2*b, n.h4, n.w4, dproj2)
	de2 := ws.gl2a[:2*b*n.hw2]
	copy(de2, dcat2[2*b*n.hw2:])
	// mid
	dmo := ws.gl4b[:4*b*n.hw4]
	clear(dmo)
	ws.bwd(wt, grad, uUp2, ws.mo, n.h4, n.w4, dproj2, dmo)
	reluMask(dmo, ws.mo)
	dma := ws.gl4a[:4*b*n.hw4]
	clear(dma)
	ws.bwd(wt, grad, uMb, ws.ma, n.h4, n.w4, dmo, dma)
	reluMask(dma, ws.ma)
	dp2 := ws.gl4b[:2*b*n.hw4]
	clear(dp2)
	ws.bwd(wt, grad, uMa, ws.p2, n.h4, n.w4, dma, dp2)
	// enc2: the pooled path plus the skip from dec2.
	tmp2 := ws.gl2b[:2*b*n.hw2]
	maxpool2Back(dp2, 2*b, flat(n.h4, n.w4), ws.idx2, tmp2)
	for i, v := range tmp2 {
		de2[i] += v
	}
	reluMask(de2, ws.e2)
	de2a := ws.gl2b[:2*b*n.hw2]
	clear(de2a)
	ws.bwd(wt, grad, uE2b, ws.e2a, n.h2, n.w2, de2, de2a)
	reluMask(de2a, ws.e2a)
	dp1 := ws.gl2a[:b*n.hw2]
	clear(dp1)
	ws.bwd(wt, grad, uE2a, ws.p1, n.h2, n.w2, de2a, dp1)
	// enc1
	tmp1 := ws.g3[:b*n.hw]
	maxpool2Back(dp1, b, flat(n.h2, n.w2), ws.idx1, tmp1)
	for i, v := range tmp1 {
		de1[i] += v
	}
	reluMask(de1, ws.e1)
	de1a := ws.g4[:b*n.hw]
	clear(de1a)
	ws.bwd(wt, grad, uE1b, ws.e1a, n.h, n.w, de1, de1a)
	reluMask(de1a, ws.e1a)
	ws.bwd(wt, grad, uE1a, ws.x, n.h, n.w, de1a, nil)
	return loss
}

func (ws *unetWork) infer(wt []float32, out []float32) {
	ws.forward(wt)
	for i, z := range ws.logit {
		out[i] = sigmoid(z)
	}
}

// convInputGrad adds the input gradient of a 3×3, padding-1 convolution to
// dIn (cin×h×w). That gradient is itself a 3×3 convolution of dOut
// (cout×h×w) with the flipped kernel wf (flip3), so it runs as im2col and
// one GEMM whose inner dimension is cout·9, like the forward pass, instead
// of a GEMM over cout followed by a scatter-add (col2im). col is scratch of
// cout·9·h·w values, pad of padLen(cout·9).
func convInputGrad(wf, dOut []float32, cout, cin, h, w int, dIn, col, pad []float32) {
	hw := h * w
	col = col[:cout*9*hw]
	im2col3(dOut[:cout*hw], cout, h, w, col)
	matmulAcc(cin, hw, cout*9, wf[:cin*cout*9], cout*9, 1, col, hw, dIn[:cin*hw], hw, pad)
}
