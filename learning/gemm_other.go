//go:build !amd64 || purego

package learning

const useKernel = false

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

func reluAVX(x *float32, n8 int) { panic("learning: no SIMD kernel in this build") }

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
