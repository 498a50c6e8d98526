//go:build amd64 && !purego

package learning

import "golang.org/x/sys/cpu"

// useKernel selects the AVX2+FMA kernels. Results are bit-for-bit stable on
// one machine; a machine without AVX2 uses the Go loops and rounds
// differently.
var useKernel = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// useWide selects the AVX-512 kernels, which take 32-wide strips of B
// where the AVX2 ones take 16. Each output is the same in-order sum of FMAs
// either way, so the choice changes the speed, not the bits; tests switch it
// off to check that.
var useWide = useKernel && cpu.X86.HasAVX512F

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

// reluAVX sets dst[i] = max(src[i], +0) for 8·n8 values (-0 becomes +0).
//
//go:noescape
func reluAVX(dst, src *float32, n8 int)

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

// kern4x32 is kern4x16 on a 32-wide strip of B (AVX-512).
//
//go:noescape
func kern4x32(k int, a *float32, ars, acs int, b *float32, ldb int, c *float32, ldc int)

// kern6x32 is kern6x16 on a 32-wide strip of B (AVX-512).
//
//go:noescape
func kern6x32(k int, a *float32, ars, acs int, b *float32, ldb int, c *float32, ldc int)

// kern4x32o is kern4x16o on a 32-wide strip of B (AVX-512).
//
//go:noescape
func kern4x32o(k int, a *float32, ars, acs int, b *float32, boff *int, c *float32, ldc int)

// kern6x32o is kern6x16o on a 32-wide strip of B (AVX-512).
//
//go:noescape
func kern6x32o(k int, a *float32, ars, acs int, b *float32, boff *int, c *float32, ldc int)

// packStrip copies k rows of sw floats (16, or 32 with AVX-512), ldb
// apart from b, to dst contiguously.
//
//go:noescape
func packStrip(k int, b *float32, ldb int, dst *float32, sw int)

// packStripO is packStrip with row p at b + boff[p] floats.
//
//go:noescape
func packStripO(k int, b *float32, boff *int, dst *float32, sw int)

// packT8 transposes eight rows of Bᵀ, row r at b + off[r] floats, into
// eight columns of a panel with rows ldd apart: dst[p·ldd + r] =
// b[off[r] + p] for p < 8·k8.
//
//go:noescape
func packT8(k8 int, b *float32, off *int, dst *float32, ldd int)

// kern8x32 adds A[0:8, 0:k]·B[0:k, 0:32] to C[0:8, 0:32] (AVX-512).
//
//go:noescape
func kern8x32(k int, a *float32, ars, acs int, b *float32, ldb int, c *float32, ldc int)

// adamAVX is Adam's update of 8·n8 weights, with the same bits as
// optimizer.update's loop; k holds {b1, 1−b1, b2, 1−b2, step, sq, ε}.
//
//go:noescape
func adamAVX(w, grad, v, s *float32, n8 int, k *[8]float32)
