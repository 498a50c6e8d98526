package learning

// A declared convolution of any kernel, stride, padding, dilation and group
// count runs as im2col and one GEMM per group on the SIMD kernels; a 1×1,
// stride-1, unpadded convolution reads its input as the unfolded matrix
// directly. The weight gradient is dOut·colᵀ (matmulAccT, which reads the
// unfolded input as it lies), the input gradient Wᵀ·dOut folded back by
// col2im.

// convGeom is the geometry of one convolution (or pooling window).
type convGeom struct {
	cin, h, w  int // input
	oh, ow     int // output
	k, s, p, d int // kernel, stride, padding, dilation
}

// direct reports whether the input itself is the unfolded matrix.
func (g convGeom) direct() bool { return g.k == 1 && g.s == 1 && g.p == 0 }

// span is the range [lo, hi) of output positions whose input position
// o·s − p + off falls inside [0, n).
func span(n, outN, s, p, off int) (lo, hi int) {
	// smallest o with o·s ≥ p − off
	lo = 0
	if p-off > 0 {
		lo = (p - off + s - 1) / s
	}
	// largest o with o·s − p + off ≤ n − 1
	top := n - 1 + p - off
	if top < 0 {
		return 0, 0
	}
	hi = min(top/s+1, outN)
	return min(lo, hi), hi
}

// im2col unfolds channels of in (c×h×w) into col, (c·k·k)×(oh·ow) with
// rows ld ≥ oh·ow apart (the gap zeroed): row (ci·k+ky)·k+kx matches
// PyTorch's weight layout [out, in, kh, kw].
func im2col(in []float32, c int, g convGeom, col []float32, ld int) {
	hw, ohw := g.h*g.w, g.oh*g.ow
	r := 0
	for ci := 0; ci < c; ci++ {
		src := in[ci*hw : (ci+1)*hw]
		for ky := 0; ky < g.k; ky++ {
			ylo, yhi := span(g.h, g.oh, g.s, g.p, ky*g.d)
			for kx := 0; kx < g.k; kx++ {
				dst := col[r*ld : r*ld+ohw]
				clear(col[r*ld+ohw : (r+1)*ld])
				r++
				xlo, xhi := span(g.w, g.ow, g.s, g.p, kx*g.d)
				clear(dst[:ylo*g.ow])
				clear(dst[yhi*g.ow:])
				for oy := ylo; oy < yhi; oy++ {
					row := dst[oy*g.ow : (oy+1)*g.ow]
					clear(row[:xlo])
					clear(row[xhi:])
					srow := src[(oy*g.s-g.p+ky*g.d)*g.w:]
					ix := xlo*g.s - g.p + kx*g.d
					if g.s == 1 {
						copy(row[xlo:xhi], srow[ix:ix+xhi-xlo])
						continue
					}
					for ox := xlo; ox < xhi; ox++ {
						row[ox] = srow[ix]
						ix += g.s
					}
				}
			}
		}
	}
}

// col2im adds the unfolded gradient col back onto din (c×h×w): the
// transpose of im2col.
func col2im(col []float32, c int, g convGeom, din []float32) {
	hw, ohw := g.h*g.w, g.oh*g.ow
	r := 0
	for ci := 0; ci < c; ci++ {
		dst := din[ci*hw : (ci+1)*hw]
		for ky := 0; ky < g.k; ky++ {
			ylo, yhi := span(g.h, g.oh, g.s, g.p, ky*g.d)
			for kx := 0; kx < g.k; kx++ {
				src := col[r*ohw : (r+1)*ohw]
				r++
				xlo, xhi := span(g.w, g.ow, g.s, g.p, kx*g.d)
				for oy := ylo; oy < yhi; oy++ {
					row := src[oy*g.ow : (oy+1)*g.ow]
					drow := dst[(oy*g.s-g.p+ky*g.d)*g.w:]
					ix := xlo*g.s - g.p + kx*g.d
					if g.s == 1 {
						addTo(drow[ix:ix+xhi-xlo], row[xlo:xhi])
						continue
					}
					for ox := xlo; ox < xhi; ox++ {
						drow[ix] += row[ox]
						ix += g.s
					}
				}
			}
		}
	}
}

func (n *gnode) geom() convGeom {
	d := n.Dilation
	if n.Op != "conv" {
		d = 1
	}
	return convGeom{cin: n.inShape[0], h: n.inShape[1], w: n.inShape[2], oh: n.shape[1], ow: n.shape[2],
		k: n.Kernel, s: n.Stride, p: n.Padding, d: d}
}

// convScratch is the scratch a convolution needs: the unfolded input and
// the GEMM padding (whose inner dimension is the image for the weight
// gradient).
func (n *gnode) convScratch() (col, pad int) {
	g := n.geom()
	cig, og := g.cin/n.Groups, n.Out/n.Groups
	kk := cig * g.k * g.k
	return kk * g.oh * g.ow, padLen(max(kk, og, g.oh*g.ow))
}

func (ws *graphWork) convFwd(n *gnode, wt, in, out []float32) {
	g := n.geom()
	ohw, hw := g.oh*g.ow, g.h*g.w
	cig, og := g.cin/n.Groups, n.Out/n.Groups
	kk := cig * g.k * g.k
	if n.bOff >= 0 {
		for c, v := range wt[n.bOff : n.bOff+n.Out] {
			row := out[c*ohw : (c+1)*ohw]
			for i := range row {
				row[i] = v
			}
		}
	} else {
		clear(out)
	}
	for gi := 0; gi < n.Groups; gi++ {
		x := in[gi*cig*hw : (gi+1)*cig*hw]
		col := x
		if !g.direct() {
			col = ws.col[:kk*ohw]
			im2col(x, cig, g, col, ohw)
		}
		W := wt[n.wOff+gi*og*kk : n.wOff+(gi+1)*og*kk]
		matmulAcc(og, ohw, kk, W, kk, 1, col, ohw, out[gi*og*ohw:(gi+1)*og*ohw], ohw, ws.pad)
	}
}

// convBwd adds the weight and bias gradients for output gradient dOut to
// grad and, when din is not nil, the input gradient to din.
func (ws *graphWork) convBwd(i int, n *gnode, wt, grad, in, dOut, din []float32) {
	g := n.geom()
	ohw, hw := g.oh*g.ow, g.h*g.w
	cig, og := g.cin/n.Groups, n.Out/n.Groups
	kk := cig * g.k * g.k
	if n.bOff >= 0 {
		rowSums(dOut, n.Out, ohw, grad[n.bOff:n.bOff+n.Out])
	}
	if sg := ws.n.shift[i]; sg != nil {
		ws.convBwdShift(i, n, sg, wt, grad, in, dOut, din)
		return
	}
	for gi := 0; gi < n.Groups; gi++ {
		x := in[gi*cig*hw : (gi+1)*cig*hw]
		col := x
		if !g.direct() {
			col = ws.col[:kk*ohw]
			im2col(x, cig, g, col, ohw)
		}
		dog := dOut[gi*og*ohw : (gi+1)*og*ohw]
		gW := grad[n.wOff+gi*og*kk : n.wOff+(gi+1)*og*kk]
		matmulAccT(og, kk, ohw, dog, ohw, 1, col, ohw, gW, kk, ws.pad)
		if din == nil {
			continue
		}
		W := wt[n.wOff+gi*og*kk : n.wOff+(gi+1)*og*kk]
		dx := din[gi*cig*hw : (gi+1)*cig*hw]
		if g.direct() {
			matmulAcc(kk, ohw, og, W, 1, kk, dog, ohw, dx, ohw, ws.pad)
			continue
		}
		dcol := ws.col[:kk*ohw]
		clear(dcol)
		matmulAcc(kk, ohw, og, W, 1, kk, dog, ohw, dcol, ohw, ws.pad)
		col2im(dcol, cig, g, dx)
	}
}
