package learning

import "math"

// fwdLayer computes layer i's output from its inputs.
func (ws *graphWork) fwdLayer(i int, nd *gnode, wt, x, out []float32) {
	switch nd.Op {
	case "conv":
		if sg := ws.n.shift[i]; sg != nil {
			ws.convFwdShift(nd, sg, wt, x, out)
			return
		}
		ws.convFwd(nd, wt, x, out)
	case "groupnorm", "layernorm":
		c := nd.shape[0]
		copy(out, x)
		groupNorm(flat(nd.shape[1], nd.shape[2]), out, c, nd.normGroups(), wt[nd.wOff:nd.wOff+c], wt[nd.bOff:nd.bOff+c], ws.aux[i], ws.rstd[i])
	case "relu":
		reluTo(out, x)
	case "sigmoid":
		for j, v := range x {
			out[j] = sigmoid(v)
		}
	case "tanh":
		for j, v := range x {
			out[j] = float32(math.Tanh(float64(v)))
		}
	case "leakyrelu":
		a := float32(nd.Slope)
		for j, v := range x {
			if v < 0 {
				v *= a
			}
			out[j] = v
		}
	case "dropout":
		if !ws.train || nd.P == 0 {
			copy(out, x)
			return
		}
		keep := float32(1 / (1 - nd.P))
		m := ws.aux[i]
		for j, v := range x {
			m[j] = 0
			if ws.rng.Float64() >= nd.P {
				m[j] = keep
			}
			out[j] = v * m[j]
		}
	case "maxpool":
		maxPoolFwd(nd.geom(), x, out, ws.idx[i])
	case "avgpool":
		avgPoolFwd(nd.geom(), x, out)
	case "globalavgpool":
		hw := len(x) / len(out)
		for c := range out {
			s, _ := sumSq(x[c*hw : (c+1)*hw])
			out[c] = float32(s / float64(hw))
		}
	case "globalmaxpool":
		hw := len(x) / len(out)
		for c := range out {
			best, bi := x[c*hw], c*hw
			for j := c*hw + 1; j < (c+1)*hw; j++ {
				if x[j] > best {
					best, bi = x[j], j
				}
			}
			out[c], ws.idx[i][c] = best, int32(bi)
		}
	case "add":
		copy(out, x)
		for j := 1; j < len(nd.in); j++ {
			addTo(out, ws.input(nd, j))
		}
	case "concat":
		o := 0
		for j := range nd.in {
			o += copy(out[o:], ws.input(nd, j))
		}
	case "dense":
		in := len(x)
		if nd.bOff >= 0 {
			copy(out, wt[nd.bOff:nd.bOff+nd.Out])
		} else {
			clear(out)
		}
		dotAcc(nd.Out, 1, in, wt[nd.wOff:nd.wOff+nd.wSize], in, x, in, out, 1, 1)
	case "upsample":
		upsampleFwd(nd.inShape, nd.Scale, x, out)
	}
}

// bwdLayer adds layer i's parameter gradients to grad and the gradient at
// its inputs to their gradient buffers. It may overwrite ws.d[i], which no
// later step reads.
func (ws *graphWork) bwdLayer(i int, nd *gnode, wt, grad []float32) {
	d, x, dx := ws.d[i], ws.input(nd, 0), ws.inputGrad(nd, 0)
	out := ws.act[i]
	switch nd.Op {
	case "conv":
		ws.convBwd(i, nd, wt, grad, x, d, dx)
		return
	case "dense":
		ws.denseBwd(nd, wt, grad, x, d, dx)
		return
	case "groupnorm", "layernorm":
		c := nd.shape[0]
		groupNormBack(flat(nd.shape[1], nd.shape[2]), d, c, nd.normGroups(), wt[nd.wOff:nd.wOff+c], ws.aux[i], ws.rstd[i],
			grad[nd.wOff:nd.wOff+c], grad[nd.bOff:nd.bOff+c])
	case "add":
		for j := range nd.in {
			if g := ws.inputGrad(nd, j); g != nil {
				addTo(g, d)
			}
		}
		return
	case "concat":
		o := 0
		for j := range nd.in {
			n := len(ws.input(nd, j))
			if g := ws.inputGrad(nd, j); g != nil {
				addTo(g, d[o:o+n])
			}
			o += n
		}
		return
	}
	if dx == nil {
		return // the model's input: no gradient wanted, and no parameters here
	}
	switch nd.Op {
	case "groupnorm", "layernorm":
		ws.passGrad(i, nd)
	case "relu":
		reluMask(d, out)
		ws.passGrad(i, nd)
	case "sigmoid":
		for j, y := range out {
			dx[j] += d[j] * y * (1 - y)
		}
	case "tanh":
		for j, y := range out {
			dx[j] += d[j] * (1 - y*y)
		}
	case "leakyrelu":
		a := float32(nd.Slope)
		for j, v := range x {
			if v < 0 {
				dx[j] += a * d[j]
			} else {
				dx[j] += d[j]
			}
		}
	case "dropout":
		if !ws.train || nd.P == 0 {
			addTo(dx, d)
			return
		}
		for j, m := range ws.aux[i] {
			dx[j] += d[j] * m
		}
	case "maxpool", "globalmaxpool":
		for j, g := range d {
			dx[ws.idx[i][j]] += g
		}
	case "avgpool":
		avgPoolBwd(nd.geom(), d, dx)
	case "globalavgpool":
		hw := len(x) / len(d)
		for c, g := range d {
			g /= float32(hw)
			row := dx[c*hw : (c+1)*hw]
			for j := range row {
				row[j] += g
			}
		}
	case "upsample":
		upsampleBwd(nd.inShape, nd.Scale, d, dx)
	}
}

// normGroups is the group count of a normalisation layer.
func (n *gnode) normGroups() int {
	if n.Op == "layernorm" {
		return 1
	}
	return n.Groups
}

func (ws *graphWork) denseBwd(nd *gnode, wt, grad, x, d, dx []float32) {
	in := len(x)
	if nd.bOff >= 0 {
		addTo(grad[nd.bOff:nd.bOff+nd.Out], d)
	}
	for o, g := range d {
		if g == 0 {
			continue
		}
		gw := grad[nd.wOff+o*in : nd.wOff+(o+1)*in]
		for j, v := range x {
			gw[j] += g * v
		}
		if dx != nil {
			w := wt[nd.wOff+o*in : nd.wOff+(o+1)*in]
			for j, v := range w {
				dx[j] += g * v
			}
		}
	}
}

// maxPoolFwd takes the maximum of each window, ignoring padding, and
// records the winner's index in x; ties go to the first in row-major order,
// as in PyTorch.
func maxPoolFwd(g convGeom, x, out []float32, idx []int32) {
	hw, ohw := g.h*g.w, g.oh*g.ow
	for c := 0; c < g.cin; c++ {
		xc := x[c*hw : (c+1)*hw]
		oc, ic := out[c*ohw:(c+1)*ohw], idx[c*ohw:(c+1)*ohw]
		for oy := 0; oy < g.oh; oy++ {
			y0, y1 := max(oy*g.s-g.p, 0), min(oy*g.s-g.p+g.k, g.h)
			for ox := 0; ox < g.ow; ox++ {
				x0, x1 := max(ox*g.s-g.p, 0), min(ox*g.s-g.p+g.k, g.w)
				var best float32
				var bi int
				if g.k == 3 && y1-y0 == 3 && x1-x0 == 3 {
					best, bi = max3x3(xc, y0*g.w+x0, g.w)
				} else {
					bi = y0*g.w + x0
					best = xc[bi]
					for y := y0; y < y1; y++ {
						base := y*g.w + x0
						for j, v := range xc[base : y*g.w+x1] {
							if v > best {
								best, bi = v, base+j
							}
						}
					}
				}
				oc[oy*g.ow+ox], ic[oy*g.ow+ox] = best, int32(c*hw+bi)
			}
		}
	}
}

// max3x3 is the largest value of the 3×3 window at x[o:] (rows w apart)
// and its index, the first in row-major order on ties. It selects with
// masks on order-preserving integer keys: pooled activations make a
// comparison's branch unpredictable, and the compiler emits no conditional
// move for floats.
func max3x3(x []float32, o, w int) (float32, int) {
	r0, r1, r2 := x[o:o+3:o+3], x[o+w:o+w+3:o+w+3], x[o+2*w:o+2*w+3:o+2*w+3]
	bk, bi := sortKey(r0[0]), 0
	bk, bi = pickMax(bk, bi, r0[1], 1)
	bk, bi = pickMax(bk, bi, r0[2], 2)
	bk, bi = pickMax(bk, bi, r1[0], w)
	bk, bi = pickMax(bk, bi, r1[1], w+1)
	bk, bi = pickMax(bk, bi, r1[2], w+2)
	bk, bi = pickMax(bk, bi, r2[0], 2*w)
	bk, bi = pickMax(bk, bi, r2[1], 2*w+1)
	_, bi = pickMax(bk, bi, r2[2], 2*w+2)
	return x[o+bi], o + bi
}

// pickMax returns (key(v), d) when key(v) > bk, else (bk, bi), without a
// branch.
func pickMax(bk int64, bi int, v float32, d int) (int64, int) {
	k := sortKey(v)
	m := (bk - k) >> 63 // all ones when k > bk
	return bk ^ (bk^k)&m, bi ^ (bi^d)&int(m)
}

// sortKey maps a float to an int32 in the same order (−0 and +0 equal, a
// NaN above +Inf as PyTorch's pooling lets it win).
func sortKey(v float32) int64 {
	b := int32(math.Float32bits(v + 0)) // −0 + 0 is +0
	return int64(b ^ (b >> 31 & 0x7fffffff))
}

// avgPoolFwd averages each window over k·k positions, padding counted as
// zeros (count_include_pad).
func avgPoolFwd(g convGeom, x, out []float32) {
	hw, ohw := g.h*g.w, g.oh*g.ow
	inv := 1 / float32(g.k*g.k)
	for c := 0; c < g.cin; c++ {
		for oy := 0; oy < g.oh; oy++ {
			y0, y1 := max(oy*g.s-g.p, 0), min(oy*g.s-g.p+g.k, g.h)
			for ox := 0; ox < g.ow; ox++ {
				x0, x1 := max(ox*g.s-g.p, 0), min(ox*g.s-g.p+g.k, g.w)
				var s float32
				for y := y0; y < y1; y++ {
					for _, v := range x[c*hw+y*g.w+x0 : c*hw+y*g.w+x1] {
						s += v
					}
				}
				out[c*ohw+oy*g.ow+ox] = s * inv
			}
		}
	}
}

func avgPoolBwd(g convGeom, d, dx []float32) {
	hw, ohw := g.h*g.w, g.oh*g.ow
	inv := 1 / float32(g.k*g.k)
	for c := 0; c < g.cin; c++ {
		for oy := 0; oy < g.oh; oy++ {
			y0, y1 := max(oy*g.s-g.p, 0), min(oy*g.s-g.p+g.k, g.h)
			for ox := 0; ox < g.ow; ox++ {
				x0, x1 := max(ox*g.s-g.p, 0), min(ox*g.s-g.p+g.k, g.w)
				v := d[c*ohw+oy*g.ow+ox] * inv
				for y := y0; y < y1; y++ {
					row := dx[c*hw+y*g.w+x0 : c*hw+y*g.w+x1]
					for j := range row {
						row[j] += v
					}
				}
			}
		}
	}
}

// upsampleFwd repeats each pixel of x (shape in) s×s times.
func upsampleFwd(in []int, s int, x, out []float32) {
	c, h, w := in[0], in[1], in[2]
	ow := w * s
	for ch := 0; ch < c; ch++ {
		for y := 0; y < h; y++ {
			src := x[(ch*h+y)*w : (ch*h+y+1)*w]
			first := out[(ch*h*s+y*s)*ow : (ch*h*s+y*s+1)*ow]
			for xx, v := range src {
				for r := 0; r < s; r++ {
					first[xx*s+r] = v
				}
			}
			for r := 1; r < s; r++ {
				copy(out[(ch*h*s+y*s+r)*ow:(ch*h*s+y*s+r+1)*ow], first)
			}
		}
	}
}

// upsampleBwd sums each s×s block of d onto dx.
func upsampleBwd(in []int, s int, d, dx []float32) {
	c, h, w := in[0], in[1], in[2]
	ow := w * s
	for ch := 0; ch < c; ch++ {
		for y := 0; y < h; y++ {
			dst := dx[(ch*h+y)*w : (ch*h+y+1)*w]
			for r := 0; r < s; r++ {
				src := d[(ch*h*s+y*s+r)*ow : (ch*h*s+y*s+r+1)*ow]
				for xx := range dst {
					for q := 0; q < s; q++ {
						dst[xx] += src[xx*s+q]
					}
				}
			}
		}
	}
}

// passGrad adds layer i's output gradient, already turned into its input
// gradient in place, to its input's. When layer i is the input's only
// consumer, that buffer is still zero, so the two buffers swap instead:
// layer i's own gradient is not read again in this backward pass.
func (ws *graphWork) passGrad(i int, nd *gnode) {
	j := nd.in[0]
	if ws.n.uses[j] == 1 {
		ws.d[i], ws.d[j] = ws.d[j], ws.d[i]
		return
	}
	addTo(ws.d[j], ws.d[i])
}
