package jpeg2000

import "math"

// Inverse component transforms (Annex G) and the DC level shift.

// inverseRCT undoes the reversible colour transform on three equal-sized components.
func inverseRCT(y, cb, cr []int32) {
	for i := range y {
		g := y[i] - (cb[i]+cr[i])>>2
		r := cr[i] + g
		b := cb[i] + g
		y[i], cb[i], cr[i] = r, g, b
	}
}

// inverseICT undoes the irreversible colour transform.
func inverseICT(y, cb, cr []float32) {
	for i := range y {
		Y, U, V := y[i], cb[i], cr[i]
		y[i] = Y + 1.402*V
		cb[i] = Y - 0.34413*U - 0.71414*V
		cr[i] = Y + 1.772*U
	}
}

func sampleRange(c component) (lo, hi, shift int32) {
	if c.signed {
		return -(1 << uint(c.prec-1)), 1<<uint(c.prec-1) - 1, 0
	}
	return 0, 1<<uint(c.prec) - 1, 1 << uint(c.prec-1)
}

// storeInt level-shifts, clamps and copies a w x h region (stride) into dst.
func storeInt(dst []int32, dstStride int, src []int32, stride, w, h int, c component) {
	lo, hi, shift := sampleRange(c)
	for y := 0; y < h; y++ {
		d := dst[y*dstStride : y*dstStride+w]
		s := src[y*stride : y*stride+w]
		for x, v := range s {
			d[x] = max(lo, min(hi, v+shift))
		}
	}
}

// storeFloat rounds to nearest (ties to even, as lrintf does), then as storeInt.
func storeFloat(dst []int32, dstStride int, src []float32, stride, w, h int, c component) {
	lo, hi, shift := sampleRange(c)
	for y := 0; y < h; y++ {
		d := dst[y*dstStride : y*dstStride+w]
		s := src[y*stride : y*stride+w]
		for x, v := range s {
			f := math.RoundToEven(float64(v))
			f = max(float64(lo-shift), min(float64(hi-shift), f))
			d[x] = int32(f) + shift
		}
	}
}
