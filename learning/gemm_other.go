//go:build !amd64 || purego

package learning

const useKernel = false

var useWide = false

func kern4x16(k int, a *float32, ars, acs int, b *float32, ldb int, c *float32, ldc int) {
	panic("learning: no SIMD kernel in this build")
}

func kern6x16(k int, a *float32, ars, acs int, b *float32, ldb int, c *float32, ldc int) {
	panic("learning: no SIMD kernel in this build")
}

func kern4x16o(k int, a *float32, ars, acs int, b *float32, boff *int, c *float32, ldc int) {
	panic("learning: no SIMD kernel in this build")
}

func kern6x16o(k int, a *float32, ars, acs int, b *float32, boff *int, c *float32, ldc int) {
	panic("learning: no SIMD kernel in this build")
}

func kernDot4x2(k8 int, a *float32, lda int, b *float32, ldb int, out *[8]float32) {
	panic("learning: no SIMD kernel in this build")
}

func reluAVX(dst, src *float32, n8 int) { panic("learning: no SIMD kernel in this build") }

func reluMaskAVX(grad, act *float32, n8 int) { panic("learning: no SIMD kernel in this build") }

func sumSqAVX(x *float32, n8 int) (s, ss float32) { panic("learning: no SIMD kernel in this build") }

func normAVX(x, xhat *float32, n8 int, m, r, gain, bias float32) {
	panic("learning: no SIMD kernel in this build")
}

func dotSumAVX(d, xh *float32, n8 int) (dot, sum float32) {
	panic("learning: no SIMD kernel in this build")
}

func normBackAVX(d, xh *float32, n8 int, a, b, c float32) {
	panic("learning: no SIMD kernel in this build")
}

func kern4x32(k int, a *float32, ars, acs int, b *float32, ldb int, c *float32, ldc int) {
	panic("learning: no SIMD kernel in this build")
}

func kern6x32(k int, a *float32, ars, acs int, b *float32, ldb int, c *float32, ldc int) {
	panic("learning: no SIMD kernel in this build")
}

func kern4x32o(k int, a *float32, ars, acs int, b *float32, boff *int, c *float32, ldc int) {
	panic("learning: no SIMD kernel in this build")
}

func kern6x32o(k int, a *float32, ars, acs int, b *float32, boff *int, c *float32, ldc int) {
	panic("learning: no SIMD kernel in this build")
}

func packStrip(k int, b *float32, ldb int, dst *float32, sw int) {
	panic("learning: no SIMD kernel in this build")
}

func packStripO(k int, b *float32, boff *int, dst *float32, sw int) {
	panic("learning: no SIMD kernel in this build")
}

func packT8(k8 int, b *float32, off *int, dst *float32, ldd int) {
	panic("learning: no SIMD kernel in this build")
}

func kern8x32(k int, a *float32, ars, acs int, b *float32, ldb int, c *float32, ldc int) {
	panic("learning: no SIMD kernel in this build")
}

func adamAVX(w, grad, v, s *float32, n8 int, k *[8]float32) {
	panic("learning: no SIMD kernel in this build")
}
