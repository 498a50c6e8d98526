package learning

import "math"

// normEps is GroupNorm's ε, PyTorch's default.
const normEps = 1e-5

// groupNorm normalises the c channels of buf (plane p, borders zero) in
// place over groups of c/groups channels, then scales and shifts channel ch
// by gamma[ch] and beta[ch]. It keeps the normalised values in xhat (same
// layout) and 1/σ of each group in rstd for groupNormBack. It works on each
// channel's whole grid, so it leaves junk on the borders: callers clear
// them.
func groupNorm(p plane, buf []float32, c, groups int, gamma, beta, xhat, rstd []float32) {
	cg := c / groups
	inv := 1 / float64(cg*p.h*p.w)
	for g := 0; g < groups; g++ {
		var sum, sq float64
		for ch := g * cg; ch < (g+1)*cg; ch++ {
			s, ss := sumSq(p.grid(buf, ch))
			sum += s
			sq += ss
		}
		mean := sum * inv
		r := 1 / math.Sqrt(max(sq*inv-mean*mean, 0)+normEps)
		rstd[g] = float32(r)
		for ch := g * cg; ch < (g+1)*cg; ch++ {
			normalise(p.grid(buf, ch), p.grid(xhat, ch), float32(mean), float32(r), gamma[ch], beta[ch])
		}
	}
}

// groupNormBack turns d, the gradient at groupNorm's output (borders zero),
// into the gradient at its input, in place, and adds the gradients of gamma
// and beta to gGamma and gBeta. It leaves junk on the borders of d.
func groupNormBack(p plane, d []float32, c, groups int, gamma, xhat, rstd, gGamma, gBeta []float32) {
	cg := c / groups
	inv := 1 / float64(cg*p.h*p.w)
	for g := 0; g < groups; g++ {
		var s1, s2 float64 // Σ dx̂ and Σ dx̂·x̂ over the group
		for ch := g * cg; ch < (g+1)*cg; ch++ {
			dg, db := dotSum(p.grid(d, ch), p.grid(xhat, ch))
			gGamma[ch] += float32(dg)
			gBeta[ch] += float32(db)
			s1 += db * float64(gamma[ch])
			s2 += dg * float64(gamma[ch])
		}
		// dz = r·(γ·dy − mean(dx̂) − x̂·mean(dx̂·x̂))
		r := float64(rstd[g])
		for ch := g * cg; ch < (g+1)*cg; ch++ {
			normaliseBack(p.grid(d, ch), p.grid(xhat, ch), float32(r*float64(gamma[ch])), float32(r*s1*inv), float32(r*s2*inv))
		}
	}
}

// grid is channel ch's grid in buf: its h rows of the padded width,
// contiguous from pixel (0, 0).
func (p plane) grid(buf []float32, ch int) []float32 {
	i := ch*p.s + p.o
	return buf[i : i+p.g]
}

// sumSq returns Σx and Σx² (eight float32 lanes, summed in float64).
func sumSq(x []float32) (s, ss float64) {
	if n8 := len(x) / 8; useKernel && n8 > 0 {
		a, b := sumSqAVX(&x[0], n8)
		s, ss = float64(a), float64(b)
		x = x[8*n8:]
	}
	for _, v := range x {
		s += float64(v)
		ss += float64(v) * float64(v)
	}
	return s, ss
}

// normalise sets xh = (x−m)·r and x = g·xh + b.
func normalise(x, xh []float32, m, r, g, b float32) {
	xh = xh[:len(x)]
	if n8 := len(x) / 8; useKernel && n8 > 0 {
		normAVX(&x[0], &xh[0], n8, m, r, g, b)
		x, xh = x[8*n8:], xh[8*n8:]
	}
	for i, v := range x {
		h := (v - m) * r
		xh[i] = h
		x[i] = g*h + b
	}
}

// dotSum returns Σ d·xh and Σ d.
func dotSum(d, xh []float32) (dot, sum float64) {
	xh = xh[:len(d)]
	if n8 := len(d) / 8; useKernel && n8 > 0 {
		a, b := dotSumAVX(&d[0], &xh[0], n8)
		dot, sum = float64(a), float64(b)
		d, xh = d[8*n8:], xh[8*n8:]
	}
	for i, v := range d {
		dot += float64(v) * float64(xh[i])
		sum += float64(v)
	}
	return dot, sum
}

// normaliseBack sets d = a·d − b − c·xh.
func normaliseBack(d, xh []float32, a, b, c float32) {
	xh = xh[:len(d)]
	if n8 := len(d) / 8; useKernel && n8 > 0 {
		normBackAVX(&d[0], &xh[0], n8, a, b, c)
		d, xh = d[8*n8:], xh[8*n8:]
	}
	for i, v := range d {
		d[i] = a*v - b - c*xh[i]
	}
}
