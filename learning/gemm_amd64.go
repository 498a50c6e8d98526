//go:build amd64 && !purego

package learning

import "golang.org/x/sys/cpu"

// useKernel selects the AVX2+FMA kernels. Results are bit-for-bit stable on
// one machine; a machine without AVX2 uses the Go loops and rounds
// differently.
var useKernel = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// kern4x16 adds A[0:4, 0:k]·B[0:k, 0:16] to C[0:4, 0:16].
//
//go:noescape
func kern4x16(k int, a *float32, ars, acs int, b *float32, ldb int, c *float32, ldc int)

// kern6x16 adds A[0:6, 0:k]·B[0:k, 0:16] to C[0:6, 0:16].
//
//go:noescape
func kern6x16(k int, a *float32, ars, acs int, b *float32, ldb int, c *float32, ldc int)

// kern4x16o is kern4x16 with row p of B at b + boff[p] floats.
//
//go:noescape
func kern4x16o(k int, a *float32, ars, acs int, b *float32, boff *int, c *float32, ldc int)

// kern6x16o is kern6x16 with row p of B at b + boff[p] floats.
//
//go:noescape
func kern6x16o(k int, a *float32, ars, acs int, b *float32, boff *int, c *float32, ldc int)

// kernDot4x2 writes the dot products of rows 0..3 of A (lda apart) with
// rows 0..1 of B (ldb apart), each over 8·k8 values, to out[2i+j].
//
//go:noescape
func kernDot4x2(k8 int, a *float32, lda int, b *float32, ldb int, out *[8]float32)

// reluAVX sets x[i] = max(x[i], +0) for 8·n8 values (-0 becomes +0).
//
//go:noescape
func reluAVX(x *float32, n8 int)

// reluMaskAVX zeroes grad[i] where act[i] is not positive, for 8·n8 values.
//
//go:noescape
func reluMaskAVX(grad, act *float32, n8 int)

// sumSqAVX returns the sum and the sum of squares of 8·n8 values.
//
//go:noescape
func sumSqAVX(x *float32, n8 int) (s, ss float32)

// normAVX sets xhat = (x−m)·r and x = gain·xhat + bias for 8·n8 values.
//
//go:noescape
func normAVX(x, xhat *float32, n8 int, m, r, gain, bias float32)

// dotSumAVX returns Σ d·xh and Σ d over 8·n8 values.
//
//go:noescape
func dotSumAVX(d, xh *float32, n8 int) (dot, sum float32)

// normBackAVX sets d = a·d − b − c·xh for 8·n8 values.
//
//go:noescape
func normBackAVX(d, xh *float32, n8 int, a, b, c float32)
