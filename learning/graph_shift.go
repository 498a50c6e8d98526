package learning

// A stride-1 convolution whose padding is at most its reach d·(k−1) (every
// 3×3 of a ResNet or a U-Net) runs on shifted windows instead of im2col:
// with the input copied once into a zero-padded plane, row (ci, ky, kx) of
// the unfolded matrix is the plane itself read from offset ky·d·wp + kx·d,
// so the GEMM reads it in place (matmulAccOff). The output comes out wp
// wide, its last wp − ow columns garbage that is dropped. The weight
// gradient reads the same windows (matmulAccTOff) against the output
// gradient laid out wp wide with those columns zero. The input gradient is
// the convolution of the output gradient, zero-padded by q = d·(k−1) − p,
// with the kernel turned by 180° (the turn is in the window offsets, the
// swap of input and output channels in a copy of the weights): one more
// shifted-window GEMM, and no col2im. That copy depends only on the
// weights, so Train makes it once per step, for all its workers.

// shiftGeom is the padded layouts of one shifted-window convolution.
type shiftGeom struct {
	wp, plane  int   // the input padded by p: row width, channel stride
	wq, planeQ int   // the output gradient padded by q: row width, channel stride
	q          int   // d·(k−1) − p
	offF       []int // row (ci, ky, kx) of one group's windows in the padded input
	offB       []int // row (co, ky, kx) of one group's windows in the padded output gradient
}

// shifted reports whether a convolution runs on shifted windows.
func (n *gnode) shifted() bool {
	if n.Op != "conv" {
		return false
	}
	g := n.geom()
	return g.s == 1 && g.k > 1 && g.p <= g.d*(g.k-1)
}

func (n *gnode) shiftGeom() *shiftGeom {
	g := n.geom()
	cig, og := g.cin/n.Groups, n.Out/n.Groups
	reach := g.d * (g.k - 1)
	sg := &shiftGeom{wp: g.w + 2*g.p, q: reach - g.p}
	sg.plane = (g.h+2*g.p)*sg.wp + reach // the slack keeps the last window's garbage columns inside
	sg.wq = g.ow + 2*sg.q
	sg.planeQ = (g.oh+2*sg.q)*sg.wq + reach
	for ci := 0; ci < cig; ci++ {
		for ky := 0; ky < g.k; ky++ {
			for kx := 0; kx < g.k; kx++ {
				sg.offF = append(sg.offF, ci*sg.plane+ky*g.d*sg.wp+kx*g.d)
			}
		}
	}
	for co := 0; co < og; co++ {
		for ky := 0; ky < g.k; ky++ {
			for kx := 0; kx < g.k; kx++ {
				// The kernel turned by 180°: tap (ky, kx) reads the window
				// at (k−1−ky, k−1−kx).
				sg.offB = append(sg.offB, co*sg.planeQ+(g.k-1-ky)*g.d*sg.wq+(g.k-1-kx)*g.d)
			}
		}
	}
	return sg
}

// shiftScratch is the unfolding scratch (the padded planes and the wide
// outputs) and the GEMM padding a shifted-window convolution needs.
func (n *gnode) shiftScratch(sg *shiftGeom) (col, pad int) {
	g := n.geom()
	cig, og := g.cin/n.Groups, n.Out/n.Groups
	wide := g.oh * sg.wp
	fwd := g.cin*sg.plane + og*wide
	bwd := n.Out*sg.planeQ + cig*g.h*sg.wq
	return max(fwd, bwd), padLen(max(cig*g.k*g.k, og*g.k*g.k, wide))
}

// padPlanes copies c channels of h×w from in into dst, each channel a
// plane of stride plane with rows wp wide, the image at row and column
// off, everything else zero.
func padPlanes(in []float32, c, h, w, off, wp, plane int, dst []float32) {
	dst = dst[:c*plane]
	clear(dst)
	for ch := 0; ch < c; ch++ {
		for y := 0; y < h; y++ {
			o := ch*plane + (y+off)*wp + off
			copy(dst[o:o+w], in[(ch*h+y)*w:(ch*h+y+1)*w])
		}
	}
}

// padInput copies a shifted-window convolution's input into its padded
// planes at the start of the scratch, and returns them and the scratch for
// one group's wide output (or output gradient) after them.
func (ws *graphWork) padInput(n *gnode, sg *shiftGeom, in []float32) (xp, wide []float32) {
	g := n.geom()
	xp = ws.col[:g.cin*sg.plane]
	padPlanes(in, g.cin, g.h, g.w, g.p, sg.wp, sg.plane, xp)
	return xp, ws.col[len(xp) : len(xp)+n.Out/n.Groups*g.oh*sg.wp]
}

func (ws *graphWork) convFwdShift(n *gnode, sg *shiftGeom, wt, in, out []float32) {
	g := n.geom()
	ohw := g.oh * g.ow
	cig, og := g.cin/n.Groups, n.Out/n.Groups
	kk, wide := cig*g.k*g.k, g.oh*sg.wp
	xp, outp := ws.padInput(n, sg, in)
	for gi := 0; gi < n.Groups; gi++ {
		clear(outp)
		W := wt[n.wOff+gi*og*kk : n.wOff+(gi+1)*og*kk]
		matmulAccOff(og, wide, kk, W, kk, 1, xp[gi*cig*sg.plane:(gi+1)*cig*sg.plane], sg.offF, outp, wide, ws.pad)
		for o := 0; o < og; o++ {
			co := gi*og + o
			var b float32
			if n.bOff >= 0 {
				b = wt[n.bOff+co]
			}
			for oy := 0; oy < g.oh; oy++ {
				src := outp[o*wide+oy*sg.wp : o*wide+oy*sg.wp+g.ow]
				dst := out[co*ohw+oy*g.ow : co*ohw+(oy+1)*g.ow]
				for x, v := range src {
					dst[x] = v + b
				}
			}
		}
	}
}

// convBwdShift is convBwd's weight and input gradients for a
// shifted-window convolution (the bias gradient is convBwd's).
func (ws *graphWork) convBwdShift(i int, n *gnode, sg *shiftGeom, wt, grad, in, dOut, din []float32) {
	g := n.geom()
	ohw, hw := g.oh*g.ow, g.h*g.w
	cig, og := g.cin/n.Groups, n.Out/n.Groups
	kk, wide := cig*g.k*g.k, g.oh*sg.wp
	xp, dop := ws.padInput(n, sg, in)
	for gi := 0; gi < n.Groups; gi++ {
		for o := 0; o < og; o++ {
			for oy := 0; oy < g.oh; oy++ {
				row := dop[o*wide+oy*sg.wp : o*wide+(oy+1)*sg.wp]
				copy(row, dOut[(gi*og+o)*ohw+oy*g.ow:(gi*og+o)*ohw+(oy+1)*g.ow])
				clear(row[g.ow:])
			}
		}
		gW := grad[n.wOff+gi*og*kk : n.wOff+(gi+1)*og*kk]
		matmulAccTOff(og, kk, wide, dop, wide, 1, xp[gi*cig*sg.plane:(gi+1)*cig*sg.plane], sg.offF, gW, kk, ws.pad)
	}
	if din == nil {
		return
	}
	dq := ws.col[:n.Out*sg.planeQ]
	padPlanes(dOut, n.Out, g.oh, g.ow, sg.q, sg.wq, sg.planeQ, dq)
	hq := g.h * sg.wq
	dxp := ws.col[n.Out*sg.planeQ : n.Out*sg.planeQ+cig*hq]
	wsw := ws.n.swap[i]
	kb := og * g.k * g.k
	for gi := 0; gi < n.Groups; gi++ {
		clear(dxp)
		matmulAccOff(cig, hq, kb, wsw[gi*cig*kb:(gi+1)*cig*kb], kb, 1, dq[gi*og*sg.planeQ:(gi+1)*og*sg.planeQ], sg.offB, dxp, hq, ws.pad)
		for c := 0; c < cig; c++ {
			for y := 0; y < g.h; y++ {
				addTo(din[(gi*cig+c)*hw+y*g.w:(gi*cig+c)*hw+(y+1)*g.w], dxp[c*hq+y*sg.wq:])
			}
		}
	}
}

// newStep computes, for weights w, each shifted-window convolution's
// kernels for the input gradient (stepCacher): per group a cig × (og·k·k)
// matrix whose row ci holds, for each output channel co, the k×k kernel
// from input ci to co.
func (n *graphNet) newStep(w []float32) {
	if n.swap == nil {
		n.swap = make([][]float32, len(n.pl.nodes))
	}
	for i := range n.pl.nodes {
		nd := &n.pl.nodes[i]
		if n.shift[i] == nil {
			continue
		}
		if n.swap[i] == nil {
			n.swap[i] = make([]float32, nd.wSize)
		}
		g := nd.geom()
		cig, og := g.cin/nd.Groups, nd.Out/nd.Groups
		k2 := g.k * g.k
		kk, kb := cig*k2, og*k2
		f := n.swap[i]
		for gi := 0; gi < nd.Groups; gi++ {
			for o := 0; o < og; o++ {
				src := w[nd.wOff+(gi*og+o)*kk : nd.wOff+(gi*og+o+1)*kk]
				for c := 0; c < cig; c++ {
					at := gi*cig*kb + c*kb + o*k2
					copy(f[at:at+k2], src[c*k2:(c+1)*k2])
				}
			}
		}
	}
	n.stepped = true
}

// endSteps releases the swapped kernels when Train returns (stepCacher).
func (n *graphNet) endSteps() {
	n.swap, n.stepped = nil, false
}
