package learning

import (
	"math"
	"math/rand/v2"
)

// augment transforms x (C×H×W) in place with a random horizontal flip, a
// rotation of up to ±10°, a shift of up to 1/14 of the side, and an intensity
// jitter (gain 0.9..1.1, offset ±0.1); a non-nil mask (H×W) gets the same
// geometric transform. tmp is scratch of (C+1)·H·W. The random source depends
// only on the seed, the step and the position in the batch, so parallel
// workers stay deterministic.
func augment(x, mask, tmp []float32, c, h, w int, seed int64, step, pos int) {
	rng := rand.New(rand.NewPCG(uint64(seed)^0xa06e, uint64(step)<<16|uint64(pos)))
	flip := rng.IntN(2) == 1
	angle := (rng.Float64()*2 - 1) * 10 * math.Pi / 180
	maxShift := float64(max(h, w)) / 14
	tx := (rng.Float64()*2 - 1) * maxShift
	ty := (rng.Float64()*2 - 1) * maxShift
	gain := float32(0.9 + 0.2*rng.Float64())
	offset := float32((rng.Float64()*2 - 1) * 0.1)

	cos, sin := math.Cos(angle), math.Sin(angle)
	cx, cy := float64(w-1)/2, float64(h-1)/2
	hw := h * w
	src := tmp[:c*hw]
	copy(src, x)
	var msrc []float32
	if mask != nil {
		msrc = tmp[c*hw : (c+1)*hw]
		copy(msrc, mask)
	}
	for y := 0; y < h; y++ {
		for xx := 0; xx < w; xx++ {
			// Inverse map: output pixel -> source coordinate.
			dx, dy := float64(xx)-cx-tx, float64(y)-cy-ty
			sx := cos*dx + sin*dy + cx
			sy := -sin*dx + cos*dy + cy
			if flip {
				sx = float64(w-1) - sx
			}
			// Clamp to the border so the edge intensity extends outwards.
			sx = math.Min(math.Max(sx, 0), float64(w-1))
			sy = math.Min(math.Max(sy, 0), float64(h-1))
			x0, y0 := int(sx), int(sy)
			x1, y1 := min(x0+1, w-1), min(y0+1, h-1)
			fx, fy := float32(sx-float64(x0)), float32(sy-float64(y0))
			for ch := 0; ch < c; ch++ {
				p := src[ch*hw:]
				v := (1-fy)*((1-fx)*p[y0*w+x0]+fx*p[y0*w+x1]) + fy*((1-fx)*p[y1*w+x0]+fx*p[y1*w+x1])
				x[ch*hw+y*w+xx] = v*gain + offset
			}
			if mask != nil {
				p := msrc
				mask[y*w+xx] = (1-fy)*((1-fx)*p[y0*w+x0]+fx*p[y0*w+x1]) + fy*((1-fx)*p[y1*w+x0]+fx*p[y1*w+x1])
			}
		}
	}
}
