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
