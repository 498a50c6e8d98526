//go:build amd64 && !purego

package learning

import "golang.org/x/sys/cpu"

// useKernel selects the AVX2+FMA kernel. Results are bit-for-bit stable on
// one machine; a machine without AVX2 uses the Go loops and rounds
// differently.
var useKernel = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// kern4x16 adds A[0:4, 0:k]·B[0:k, 0:16] to C[0:4, 0:16].
//
//go:noescape
func kern4x16(k int, a *float32, ars, acs int, b *float32, ldb int, c *float32, ldc int)
