package learning

import "math"

// im2col3 unfolds a c×h×w image into a (c·9)×(h·w) matrix for a 3×3
// convolution with padding 1 and stride 1. Row c·9+ky·3+kx matches the
// PyTorch weight layout [out, in, kh, kw].
func im2col3(in []float32, c, h, w int, col []float32) {
	hw := h * w
	for ch := 0; ch < c; ch++ {
		src := in[ch*hw : (ch+1)*hw]
		for ky := 0; ky < 3; ky++ {
			for kx := 0; kx < 3; kx++ {
				dst := col[(ch*9+ky*3+kx)*hw : (ch*9+ky*3+kx+1)*hw]
				dx := kx - 1
				for y := 0; y < h; y++ {
					row := dst[y*w : (y+1)*w]
					sy := y + ky - 1
					if sy < 0 || sy >= h {
						clear(row)
						continue
					}
					srow := src[sy*w : (sy+1)*w]
					switch dx {
					case -1:
						row[0] = 0
						copy(row[1:], srow[:w-1])
					case 0:
						copy(row, srow)
					case 1:
						copy(row[:w-1], srow[1:])
						row[w-1] = 0
					}
				}
			}
		}
	}
}

// flat is the unpadded layout of a c×h×w image, for maxpool2.
func flat(h, w int) plane { return plane{h: h, w: w, wp: w, s: h * w, g: h * w} }

// maxpool2 is a 2×2, stride 2 max pooling of the c×h×w image in (layout
// pi) into out (layout po, h/2×w/2); idx records the winning offset in in of
// each output for the backward pass. Ties go to the first element in
// row-major order, as in PyTorch.
func maxpool2(in []float32, c int, pi plane, out []float32, po plane, idx []int32) {
	h2, w2 := pi.h/2, pi.w/2
	o := 0
	for ch := 0; ch < c; ch++ {
		for y := 0; y < h2; y++ {
			r0 := ch*pi.s + pi.o + 2*y*pi.wp
			r1 := r0 + pi.wp
			dst := out[ch*po.s+po.o+y*po.wp : ch*po.s+po.o+y*po.wp+w2]
			for x := range dst {
				i := r0 + 2*x
				best, bi := in[i], i
				if v := in[i+1]; v > best {
					best, bi = v, i+1
				}
				if v := in[r1+2*x]; v > best {
					best, bi = v, r1+2*x
				}
				if v := in[r1+2*x+1]; v > best {
					best, bi = v, r1+2*x+1
				}
				dst[x], idx[o] = best, int32(bi)
				o++
			}
		}
	}
}

// maxpool2Back scatters dout (c channels in layout po) onto a zeroed din
// through the indices maxpool2 recorded.
func maxpool2Back(dout []float32, c int, po plane, idx []int32, din []float32) {
	clear(din)
	o := 0
	for ch := 0; ch < c; ch++ {
		for y := 0; y < po.h; y++ {
			for _, g := range dout[ch*po.s+po.o+y*po.wp : ch*po.s+po.o+y*po.wp+po.w] {
				din[idx[o]] += g
				o++
			}
		}
	}
}

// reluInPlace is max(x, 0) without branches (the signs of activations are
// unpredictable). It also turns -0 into +0, which reluMask relies on.
func reluInPlace(x []float32) { reluTo(x, x) }

// reluTo writes reluInPlace of src to dst (len(dst) values) in one pass.
func reluTo(dst, src []float32) {
	src = src[:len(dst)]
	if n8 := len(dst) / 8; useKernel && n8 > 0 {
		reluAVX(&dst[0], &src[0], n8)
		dst, src = dst[8*n8:], src[8*n8:]
	}
	for i, v := range src {
		b := math.Float32bits(v)
		b &^= uint32(int32(b) >> 31)
		dst[i] = math.Float32frombits(b)
	}
}

// reluMask zeroes the gradient where the activation (the output of
// reluInPlace, so +0 or positive) was not positive.
func reluMask(grad, act []float32) {
	act = act[:len(grad)]
	if n8 := len(grad) / 8; useKernel && n8 > 0 {
		reluMaskAVX(&grad[0], &act[0], n8)
		grad, act = grad[8*n8:], act[8*n8:]
	}
	for i := range grad {
		a := math.Float32bits(act[i])
		keep := uint32(int32(-a|a) >> 31)
		grad[i] = math.Float32frombits(math.Float32bits(grad[i]) & keep)
	}
}

// rowSums adds the row sums of a rows×cols matrix to dst.
func rowSums(m []float32, rows, cols int, dst []float32) {
	for r := 0; r < rows; r++ {
		var s float32
		for _, v := range m[r*cols : (r+1)*cols] {
			s += v
		}
		dst[r] += s
	}
}

// addTo adds src to dst element-wise; len(src) must be len(dst).
func addTo(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] += v
	}
}
