//go:build !amd64 || purego

package learning

const useKernel = false

func kern4x16(k int, a *float32, ars, acs int, b *float32, ldb int, c *float32, ldc int) {
	panic("learning: no SIMD kernel in this build")
}
