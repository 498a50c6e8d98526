//go:build amd64 && !purego

#include "textflag.h"

// The four GEMM kernels share their parts through these macros. Registers:
// CX k, SI (and BX) rows of A, R8 A's row stride and R9 its column stride
// in bytes, DI B, R10 B's row stride in bytes or the boff pointer, R11 C,
// R12 C's row stride in bytes. B's current row is in Y12:Y13 (six rows) or
// Y8:Y9 (four rows).

// LOADARGS reads the common arguments; the sixth (ldb or boff) goes to R10.
#define LOADARGS \
	MOVQ k+0(FP), CX \
	MOVQ a+8(FP), SI \
	MOVQ ars+16(FP), R8 \
	MOVQ acs+24(FP), R9 \
	MOVQ b+32(FP), DI \
	MOVQ c+48(FP), R11 \
	MOVQ ldc+56(FP), R12 \
	SHLQ $2, R8 \
	SHLQ $2, R9 \
	SHLQ $2, R12

#define ZERO8 \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1 \
	VXORPS Y2, Y2, Y2 \
	VXORPS Y3, Y3, Y3 \
	VXORPS Y4, Y4, Y4 \
	VXORPS Y5, Y5, Y5 \
	VXORPS Y6, Y6, Y6 \
	VXORPS Y7, Y7, Y7

#define ZERO12 \
	ZERO8 \
	VXORPS Y8, Y8, Y8 \
	VXORPS Y9, Y9, Y9 \
	VXORPS Y10, Y10, Y10 \
	VXORPS Y11, Y11, Y11

// ROW4 and ROW6 multiply B's row by A's column p and step A to p+1.
// kern4x16 keeps rows 1..3 of A in BX, DX, R13.
#define ROW4 \
	VBROADCASTSS (SI), Y10 \
	VBROADCASTSS (BX), Y11 \
	VBROADCASTSS (DX), Y12 \
	VBROADCASTSS (R13), Y13 \
	VFMADD231PS  Y8, Y10, Y0 \
	VFMADD231PS  Y9, Y10, Y1 \
	VFMADD231PS  Y8, Y11, Y2 \
	VFMADD231PS  Y9, Y11, Y3 \
	VFMADD231PS  Y8, Y12, Y4 \
	VFMADD231PS  Y9, Y12, Y5 \
	VFMADD231PS  Y8, Y13, Y6 \
	VFMADD231PS  Y9, Y13, Y7 \
	ADDQ         R9, SI \
	ADDQ         R9, BX \
	ADDQ         R9, DX \
	ADDQ         R9, R13

// kern6x16 keeps rows 0..2 of A at SI + 0, 1, 2 strides and 3..5 at BX.
#define ROW6 \
	VBROADCASTSS (SI), Y14 \
	VFMADD231PS  Y12, Y14, Y0 \
	VFMADD231PS  Y13, Y14, Y1 \
	VBROADCASTSS (SI)(R8*1), Y15 \
	VFMADD231PS  Y12, Y15, Y2 \
	VFMADD231PS  Y13, Y15, Y3 \
	VBROADCASTSS (SI)(R8*2), Y14 \
	VFMADD231PS  Y12, Y14, Y4 \
	VFMADD231PS  Y13, Y14, Y5 \
	VBROADCASTSS (BX), Y15 \
	VFMADD231PS  Y12, Y15, Y6 \
	VFMADD231PS  Y13, Y15, Y7 \
	VBROADCASTSS (BX)(R8*1), Y14 \
	VFMADD231PS  Y12, Y14, Y8 \
	VFMADD231PS  Y13, Y14, Y9 \
	VBROADCASTSS (BX)(R8*2), Y15 \
	VFMADD231PS  Y12, Y15, Y10 \
	VFMADD231PS  Y13, Y15, Y11 \
	ADDQ         R9, SI \
	ADDQ         R9, BX

// STORE adds one row of accumulators to C and steps C to the next row.
#define STORE(lo, hi) \
	VADDPS  (R11), lo, lo \
	VADDPS  32(R11), hi, hi \
	VMOVUPS lo, (R11) \
	VMOVUPS hi, 32(R11) \
	ADDQ    R12, R11

#define STORE4 \
	STORE(Y0, Y1) \
	STORE(Y2, Y3) \
	STORE(Y4, Y5) \
	STORE(Y6, Y7)

#define STORE6 \
	STORE4 \
	STORE(Y8, Y9) \
	STORE(Y10, Y11)

#define SETUP4 \
	LEAQ (SI)(R8*1), BX \
	LEAQ (BX)(R8*1), DX \
	LEAQ (DX)(R8*1), R13

#define SETUP6 \
	LEAQ (SI)(R8*2), BX \
	ADDQ R8, BX

// func kern4x16(k int, a *float32, ars, acs int, b *float32, ldb int, c *float32, ldc int)
TEXT ·kern4x16(SB), NOSPLIT, $0-64
	LOADARGS
	MOVQ ldb+40(FP), R10
	SHLQ $2, R10
	ZERO8
	SETUP4
	TESTQ CX, CX
	JE    store4

loop4:
	VMOVUPS (DI), Y8
	VMOVUPS 32(DI), Y9
	ROW4
	ADDQ    R10, DI
	DECQ    CX
	JNZ     loop4

store4:
	STORE4
	VZEROUPPER
	RET

// func kern6x16(k int, a *float32, ars, acs int, b *float32, ldb int, c *float32, ldc int)
//
// Six rows of A against one 16-wide strip of B: twelve accumulators keep both
// FMA pipes busy through the four-cycle latency, where kern4x16's eight only
// just do.
TEXT ·kern6x16(SB), NOSPLIT, $0-64
	LOADARGS
	MOVQ ldb+40(FP), R10
	SHLQ $2, R10
	ZERO12
	SETUP6
	TESTQ CX, CX
	JE    store6

loop6:
	VMOVUPS (DI), Y12
	VMOVUPS 32(DI), Y13
	ROW6
	ADDQ    R10, DI
	DECQ    CX
	JNZ     loop6

store6:
	STORE6
	VZEROUPPER
	RET

// func kern4x16o(k int, a *float32, ars, acs int, b *float32, boff *int, c *float32, ldc int)
//
// kern4x16 with row p of B at b + boff[p] floats: a convolution's shifted
// input windows, read in place from a padded image.
TEXT ·kern4x16o(SB), NOSPLIT, $0-64
	LOADARGS
	MOVQ boff+40(FP), R10
	ZERO8
	SETUP4
	TESTQ CX, CX
	JE    store4o

loop4o:
	MOVQ    (R10), AX
	VMOVUPS (DI)(AX*4), Y8
	VMOVUPS 32(DI)(AX*4), Y9
	ROW4
	ADDQ    $8, R10
	DECQ    CX
	JNZ     loop4o

store4o:
	STORE4
	VZEROUPPER
	RET

// func kern6x16o(k int, a *float32, ars, acs int, b *float32, boff *int, c *float32, ldc int)
TEXT ·kern6x16o(SB), NOSPLIT, $0-64
	LOADARGS
	MOVQ boff+40(FP), R10
	ZERO12
	SETUP6
	TESTQ CX, CX
	JE    store6o

loop6o:
	MOVQ    (R10), AX
	VMOVUPS (DI)(AX*4), Y12
	VMOVUPS 32(DI)(AX*4), Y13
	ROW6
	ADDQ    $8, R10
	DECQ    CX
	JNZ     loop6o

store6o:
	STORE6
	VZEROUPPER
	RET

// func kernDot4x2(k8 int, a *float32, lda int, b *float32, ldb int, out *[8]float32)
//
// The eight dot products of rows 0..3 of A with rows 0..1 of B, over
// 8·k8 values each (the weight gradient of a convolution: both operands
// run along the image), into out[2i+j].
TEXT ·kernDot4x2(SB), NOSPLIT, $0-48
	MOVQ k8+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R8
	MOVQ b+24(FP), DI
	MOVQ ldb+32(FP), R10
	MOVQ out+40(FP), R11
	SHLQ $2, R8
	SHLQ $2, R10
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	LEAQ (SI)(R8*2), BX
	TESTQ CX, CX
	JE   reduce

loopd:
	VMOVUPS     (DI), Y8
	VMOVUPS     (DI)(R10*1), Y9
	VMOVUPS     (SI), Y10
	VFMADD231PS Y8, Y10, Y0
	VFMADD231PS Y9, Y10, Y1
	VMOVUPS     (SI)(R8*1), Y11
	VFMADD231PS Y8, Y11, Y2
	VFMADD231PS Y9, Y11, Y3
	VMOVUPS     (BX), Y12
	VFMADD231PS Y8, Y12, Y4
	VFMADD231PS Y9, Y12, Y5
	VMOVUPS     (BX)(R8*1), Y13
	VFMADD231PS Y8, Y13, Y6
	VFMADD231PS Y9, Y13, Y7
	ADDQ        $32, SI
	ADDQ        $32, BX
	ADDQ        $32, DI
	DECQ        CX
	JNZ         loopd

reduce:
	VHADDPS      Y1, Y0, Y0
	VHADDPS      Y3, Y2, Y2
	VHADDPS      Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VMOVUPS      X0, (R11)
	VHADDPS      Y5, Y4, Y4
	VHADDPS      Y7, Y6, Y6
	VHADDPS      Y6, Y4, Y4
	VEXTRACTF128 $1, Y4, X5
	VADDPS       X5, X4, X4
	VMOVUPS      X4, 16(R11)
	VZEROUPPER
	RET

// func reluAVX(x *float32, n8 int)
// x[i] = max(x[i], +0) for 8·n8 values; -0 becomes +0.
TEXT ·reluAVX(SB), NOSPLIT, $0-16
	MOVQ   x+0(FP), SI
	MOVQ   n8+8(FP), CX
	VXORPS Y15, Y15, Y15
	TESTQ  CX, CX
	JE     relud

relul:
	VMOVUPS (SI), Y0
	VMAXPS  Y15, Y0, Y0
	VMOVUPS Y0, (SI)
	ADDQ    $32, SI
	DECQ    CX
	JNZ     relul

relud:
	VZEROUPPER
	RET

// func reluMaskAVX(grad, act *float32, n8 int)
// grad[i] = 0 where act[i] is not positive, for 8·n8 values.
TEXT ·reluMaskAVX(SB), NOSPLIT, $0-24
	MOVQ   grad+0(FP), DI
	MOVQ   act+8(FP), SI
	MOVQ   n8+16(FP), CX
	VXORPS Y15, Y15, Y15
	TESTQ  CX, CX
	JE     maskd

maskl:
	VMOVUPS (SI), Y0
	VCMPPS  $14, Y15, Y0, Y0
	VANDPS  (DI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     maskl

maskd:
	VZEROUPPER
	RET

// func sumSqAVX(x *float32, n8 int) (s, ss float32)
// The sum and the sum of squares of 8·n8 values.
TEXT ·sumSqAVX(SB), NOSPLIT, $0-24
	MOVQ   x+0(FP), SI
	MOVQ   n8+8(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	TESTQ  CX, CX
	JE     sumsqd

sumsql:
	VMOVUPS     (SI), Y2
	VADDPS      Y2, Y0, Y0
	VFMADD231PS Y2, Y2, Y1
	ADDQ        $32, SI
	DECQ        CX
	JNZ         sumsql

sumsqd:
	VEXTRACTF128 $1, Y0, X2
	VADDPS       X2, X0, X0
	VEXTRACTF128 $1, Y1, X3
	VADDPS       X3, X1, X1
	VHADDPS      X1, X0, X0
	VHADDPS      X0, X0, X0
	VMOVSS       X0, s+16(FP)
	VPSRLDQ      $4, X0, X0
	VMOVSS       X0, ss+20(FP)
	VZEROUPPER
	RET

// func normAVX(x, xhat *float32, n8 int, m, r, gain, bias float32)
// xhat = (x−m)·r and x = gain·xhat + bias for 8·n8 values.
TEXT ·normAVX(SB), NOSPLIT, $0-40
	MOVQ         x+0(FP), DI
	MOVQ         xhat+8(FP), SI
	MOVQ         n8+16(FP), CX
	VBROADCASTSS m+24(FP), Y4
	VBROADCASTSS r+28(FP), Y5
	VBROADCASTSS gain+32(FP), Y6
	VBROADCASTSS bias+36(FP), Y7
	TESTQ        CX, CX
	JE           normd

norml:
	VMOVUPS     (DI), Y0
	VSUBPS      Y4, Y0, Y0
	VMULPS      Y5, Y0, Y0
	VMOVUPS     Y0, (SI)
	VMOVAPS     Y7, Y1
	VFMADD231PS Y6, Y0, Y1
	VMOVUPS     Y1, (DI)
	ADDQ        $32, DI
	ADDQ        $32, SI
	DECQ        CX
	JNZ         norml

normd:
	VZEROUPPER
	RET

// func dotSumAVX(d, xh *float32, n8 int) (dot, sum float32)
// Σ d·xh and Σ d over 8·n8 values.
TEXT ·dotSumAVX(SB), NOSPLIT, $0-32
	MOVQ   d+0(FP), DI
	MOVQ   xh+8(FP), SI
	MOVQ   n8+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	TESTQ  CX, CX
	JE     dotsumd

dotsuml:
	VMOVUPS     (DI), Y2
	VFMADD231PS (SI), Y2, Y0
	VADDPS      Y2, Y1, Y1
	ADDQ        $32, DI
	ADDQ        $32, SI
	DECQ        CX
	JNZ         dotsuml

dotsumd:
	VEXTRACTF128 $1, Y0, X2
	VADDPS       X2, X0, X0
	VEXTRACTF128 $1, Y1, X3
	VADDPS       X3, X1, X1
	VHADDPS      X1, X0, X0
	VHADDPS      X0, X0, X0
	VMOVSS       X0, dot+24(FP)
	VPSRLDQ      $4, X0, X0
	VMOVSS       X0, sum+28(FP)
	VZEROUPPER
	RET

// func normBackAVX(d, xh *float32, n8 int, a, b, c float32)
// d = a·d − b − c·xh for 8·n8 values.
TEXT ·normBackAVX(SB), NOSPLIT, $0-36
	MOVQ         d+0(FP), DI
	MOVQ         xh+8(FP), SI
	MOVQ         n8+16(FP), CX
	VBROADCASTSS a+24(FP), Y4
	VBROADCASTSS b+28(FP), Y5
	VBROADCASTSS c+32(FP), Y6
	TESTQ        CX, CX
	JE           nbackd

nbackl:
	VMOVUPS      (DI), Y0
	VMULPS       Y4, Y0, Y0
	VSUBPS       Y5, Y0, Y0
	VFNMADD231PS (SI), Y6, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $32, DI
	ADDQ         $32, SI
	DECQ         CX
	JNZ          nbackl

nbackd:
	VZEROUPPER
	RET
