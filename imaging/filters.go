package imaging

import (
	"math"
	"sort"
)

func clampInt(x, lo, hi int) int {
	if x < lo {
		return lo
	}
	if x > hi {
		return hi
	}
	return x
}

func denoise(v []float32, w, h int, name string, args []float64) []float32 {
	switch name {
	case "gaussian":
		return Gaussian(v, w, h, args[0])
	case "median":
		return median(v, w, h, int(args[0])/2)
	case "bilateral":
		return bilateral(v, w, h, int(args[0]), args[1])
	}
	return v
}

// Gaussian blurs a w×h image with a separable kernel of radius ceil(3 sigma),
// edges replicated. v is not changed.
func Gaussian(v []float32, w, h int, sigma float64) []float32 {
	r := int(math.Ceil(3 * sigma))
	k := make([]float32, 2*r+1)
	var sum float64
	for i := -r; i <= r; i++ {
		g := math.Exp(-float64(i*i) / (2 * sigma * sigma))
		k[i+r] = float32(g)
		sum += g
	}
	for i := range k {
		k[i] /= float32(sum)
	}
	tmp := make([]float32, len(v))
	for y := 0; y < h; y++ {
		row := v[y*w : (y+1)*w]
		for x := 0; x < w; x++ {
			var s float32
			for i := -r; i <= r; i++ {
				s += k[i+r] * row[clampInt(x+i, 0, w-1)]
			}
			tmp[y*w+x] = s
		}
	}
	out := make([]float32, len(v))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var s float32
			for i := -r; i <= r; i++ {
				s += k[i+r] * tmp[clampInt(y+i, 0, h-1)*w+x]
			}
			out[y*w+x] = s
		}
	}
	return out
}

// median takes the median of each (2r+1)^2 window, edges replicated.
func median(v []float32, w, h int, r int) []float32 {
	out := make([]float32, len(v))
	win := make([]float32, 0, (2*r+1)*(2*r+1))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			win = win[:0]
			for dy := -r; dy <= r; dy++ {
				yy := clampInt(y+dy, 0, h-1)
				for dx := -r; dx <= r; dx++ {
					win = append(win, v[yy*w+clampInt(x+dx, 0, w-1)])
				}
			}
			sort.Slice(win, func(i, j int) bool { return win[i] < win[j] })
			out[y*w+x] = win[len(win)/2]
		}
	}
	return out
}

// bilateral is the edge-preserving filter of Tomasi and Manduchi: spatial sigma r/2,
// range sigma rs on the normalised intensity scale.
func bilateral(v []float32, w, h int, r int, rs float64) []float32 {
	ss := math.Max(float64(r)/2, 0.5)
	spatial := make([]float64, (2*r+1)*(2*r+1))
	for dy := -r; dy <= r; dy++ {
		for dx := -r; dx <= r; dx++ {
			spatial[(dy+r)*(2*r+1)+dx+r] = math.Exp(-float64(dx*dx+dy*dy) / (2 * ss * ss))
		}
	}
	inv := 1 / (2 * rs * rs)
	out := make([]float32, len(v))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := float64(v[y*w+x])
			var num, den float64
			for dy := -r; dy <= r; dy++ {
				yy := clampInt(y+dy, 0, h-1)
				for dx := -r; dx <= r; dx++ {
					q := float64(v[yy*w+clampInt(x+dx, 0, w-1)])
					d := q - c
					wt := spatial[(dy+r)*(2*r+1)+dx+r] * math.Exp(-d*d*inv)
					num += wt * q
					den += wt
				}
			}
			out[y*w+x] = float32(num / den)
		}
	}
	return out
}

func contrast(v []float32, w, h int, name string, args []float64) []float32 {
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	if !(hi > lo) {
		return v
	}
	const bins = 256
	idx := func(x float32) int { return clampInt(int((x-lo)/(hi-lo)*(bins-1)+0.5), 0, bins-1) }
	switch name {
	case "histeq":
		var hist [bins]float64
		for _, x := range v {
			hist[idx(x)]++
		}
		cdf := cumulative(hist[:], float64(len(v)))
		out := make([]float32, len(v))
		for k, x := range v {
			out[k] = float32(cdf[idx(x)])
		}
		return out
	case "clahe":
		return clahe(v, w, h, int(args[0]), args[1], idx)
	}
	return v
}

func cumulative(hist []float64, total float64) []float64 {
	cdf := make([]float64, len(hist))
	var run float64
	for i, c := range hist {
		run += c
		cdf[i] = run / total
	}
	return cdf
}

// clahe is contrast-limited adaptive histogram equalisation (Zuiderveld 1994): a
// tiles x tiles grid of clipped, redistributed histograms, mappings interpolated
// bilinearly between tile centres. Output is in [0,1].
func clahe(v []float32, w, h, tiles int, clip float64, idx func(float32) int) []float32 {
	const bins = 256
	tx, ty := min(tiles, w), min(tiles, h)
	maps := make([][]float64, tx*ty)
	for j := 0; j < ty; j++ {
		for i := 0; i < tx; i++ {
			x0, x1 := i*w/tx, (i+1)*w/tx
			y0, y1 := j*h/ty, (j+1)*h/ty
			hist := make([]float64, bins)
			for y := y0; y < y1; y++ {
				for x := x0; x < x1; x++ {
					hist[idx(v[y*w+x])]++
				}
			}
			n := float64((x1 - x0) * (y1 - y0))
			limit := clip * n / bins
			var excess float64
			for b := range hist {
				if hist[b] > limit {
					excess += hist[b] - limit
					hist[b] = limit
				}
			}
			for b := range hist {
				hist[b] += excess / bins
			}
			maps[j*tx+i] = cumulative(hist, n)
		}
	}
	out := make([]float32, len(v))
	for y := 0; y < h; y++ {
		fy := (float64(y)+0.5)*float64(ty)/float64(h) - 0.5
		j0 := clampInt(int(math.Floor(fy)), 0, ty-1)
		j1 := clampInt(j0+1, 0, ty-1)
		wy := math.Min(math.Max(fy-float64(j0), 0), 1)
		for x := 0; x < w; x++ {
			fx := (float64(x)+0.5)*float64(tx)/float64(w) - 0.5
			i0 := clampInt(int(math.Floor(fx)), 0, tx-1)
			i1 := clampInt(i0+1, 0, tx-1)
			wx := math.Min(math.Max(fx-float64(i0), 0), 1)
			b := idx(v[y*w+x])
			top := maps[j0*tx+i0][b]*(1-wx) + maps[j0*tx+i1][b]*wx
			bot := maps[j1*tx+i0][b]*(1-wx) + maps[j1*tx+i1][b]*wx
			out[y*w+x] = float32(top*(1-wy) + bot*wy)
		}
	}
	return out
}

// ResizeArea maps a w×h image onto ow×oh, each output pixel the mean of the
// source pixels it covers, weighting partial coverage (OpenCV INTER_AREA for
// shrinking); enlarging falls back to bilinear. v is not changed.
func ResizeArea(v []float32, w, h, ow, oh int) []float32 {
	if w == ow && h == oh {
		out := make([]float32, len(v))
		copy(out, v)
		return out
	}
	if ow > w || oh > h {
		return resizeBilinear(v, w, h, ow, oh)
	}
	type span struct {
		i0, i1 int
		w0, w1 float64 // coverage of first and last source pixel
	}
	spans := func(n, on int) []span {
		s := make([]span, on)
		scale := float64(n) / float64(on)
		for o := range s {
			a, b := float64(o)*scale, float64(o+1)*scale
			i0, i1 := int(math.Floor(a)), int(math.Ceil(b))-1
			i1 = min(i1, n-1)
			s[o] = span{i0, i1, float64(i0+1) - a, b - float64(i1)}
			if i0 == i1 {
				s[o].w0 = b - a
			}
		}
		return s
	}
	weight := func(sp span, i int) float64 {
		switch {
		case i == sp.i0:
			return sp.w0
		case i == sp.i1:
			return sp.w1
		}
		return 1
	}
	xs, ys := spans(w, ow), spans(h, oh)
	tmp := make([]float64, w*oh)
	for o, sp := range ys {
		row := tmp[o*w : (o+1)*w]
		var tot float64
		for y := sp.i0; y <= sp.i1; y++ {
			wt := weight(sp, y)
			tot += wt
			src := v[y*w : (y+1)*w]
			for x := range row {
				row[x] += wt * float64(src[x])
			}
		}
		for x := range row {
			row[x] /= tot
		}
	}
	out := make([]float32, ow*oh)
	for oy := 0; oy < oh; oy++ {
		row := tmp[oy*w : (oy+1)*w]
		for ox, sp := range xs {
			var s, tot float64
			for x := sp.i0; x <= sp.i1; x++ {
				wt := weight(sp, x)
				s += wt * row[x]
				tot += wt
			}
			out[oy*ow+ox] = float32(s / tot)
		}
	}
	return out
}

// resizeBilinear samples at pixel centres (half-pixel alignment, as OpenCV and
// PyTorch with align_corners=False).
func resizeBilinear(v []float32, w, h, ow, oh int) []float32 {
	out := make([]float32, ow*oh)
	sx, sy := float64(w)/float64(ow), float64(h)/float64(oh)
	for oy := 0; oy < oh; oy++ {
		fy := math.Max((float64(oy)+0.5)*sy-0.5, 0)
		y0 := min(int(fy), h-1)
		y1 := min(y0+1, h-1)
		wy := float32(fy - float64(y0))
		for ox := 0; ox < ow; ox++ {
			fx := math.Max((float64(ox)+0.5)*sx-0.5, 0)
			x0 := min(int(fx), w-1)
			x1 := min(x0+1, w-1)
			wx := float32(fx - float64(x0))
			a := v[y0*w+x0]*(1-wx) + v[y0*w+x1]*wx
			b := v[y1*w+x0]*(1-wx) + v[y1*w+x1]*wx
			out[oy*ow+ox] = a*(1-wy) + b*wy
		}
	}
	return out
}
