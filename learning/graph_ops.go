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
		copy(out, x)
		reluInPlace(out)
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
		addTo(dx, d)
	case "relu":
		reluMask(d, out)
		addTo(dx, d)
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
		for oy := 0; oy < g.oh; oy++ {
			y0, y1 := max(oy*g.s-g.p, 0), min(oy*g.s-g.p+g.k, g.h)
			for ox := 0; ox < g.ow; ox++ {
				x0, x1 := max(ox*g.s-g.p, 0), min(ox*g.s-g.p+g.k, g.w)
				bi := c*hw + y0*g.w + x0
				best := x[bi]
				for y := y0; y < y1; y++ {
					for xx := x0; xx < x1; xx++ {
						if v := x[c*hw+y*g.w+xx]; v > best {
							best, bi = v, c*hw+y*g.w+xx
						}
					}
				}
				o := c*ohw + oy*g.ow + ox
				out[o], idx[o] = best, int32(bi)
			}
		}
	}
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
