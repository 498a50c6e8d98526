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

// The macros take their registers as arguments, so that the AVX2 kernels
// (Y registers, 16-wide strips) and the AVX-512 ones (Z, 32-wide) share them.

// ZERO4 clears four registers with op: VXORPS (VEX) for Y, so that the
// AVX2 kernels run on CPUs without AVX-512; VPXORD (AVX-512F) for Z.
#define ZERO4(op, r0, r1, r2, r3) \
	op r0, r0, r0 \
	op r1, r1, r1 \
	op r2, r2, r2 \
	op r3, r3, r3

// ROW4R multiplies B's row (b0:b1) by A's column p for rows 0..3 (kern4:
// at SI, BX, DX, R13) and steps A to p+1.
#define ROW4R(b0, b1, t0, t1, t2, t3, c0, c1, c2, c3, c4, c5, c6, c7) \
	VBROADCASTSS (SI), t0 \
	VBROADCASTSS (BX), t1 \
	VBROADCASTSS (DX), t2 \
	VBROADCASTSS (R13), t3 \
	VFMADD231PS  b0, t0, c0 \
	VFMADD231PS  b1, t0, c1 \
	VFMADD231PS  b0, t1, c2 \
	VFMADD231PS  b1, t1, c3 \
	VFMADD231PS  b0, t2, c4 \
	VFMADD231PS  b1, t2, c5 \
	VFMADD231PS  b0, t3, c6 \
	VFMADD231PS  b1, t3, c7 \
	ADDQ         R9, SI \
	ADDQ         R9, BX \
	ADDQ         R9, DX \
	ADDQ         R9, R13

// FMA2 adds B's row (b0:b1) times the broadcast t to one row of C.
#define FMA2(b0, b1, t, c0, c1) \
	VFMADD231PS b0, t, c0 \
	VFMADD231PS b1, t, c1

// ROW3 multiplies B's row (b0:b1) by A's column p for three rows of A at
// base + 0, 1, 2 strides, broadcasting through ta, tb, ta in turn.
#define ROW3(base, b0, b1, ta, tb, c0, c1, c2, c3, c4, c5) \
	VBROADCASTSS (base), ta \
	FMA2(b0, b1, ta, c0, c1) \
	VBROADCASTSS (base)(R8*1), tb \
	FMA2(b0, b1, tb, c2, c3) \
	VBROADCASTSS (base)(R8*2), ta \
	FMA2(b0, b1, ta, c4, c5)

// ROW6R is ROW4R for rows 0..2 of A at SI + 0, 1, 2 strides and 3..5 at BX.
#define ROW6R(b0, b1, t0, t1, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11) \
	ROW3(SI, b0, b1, t0, t1, c0, c1, c2, c3, c4, c5) \
	ROW3(BX, b0, b1, t1, t0, c6, c7, c8, c9, c10, c11) \
	ADDQ R9, SI \
	ADDQ R9, BX

// STORER adds one row of accumulators (half is 32 bytes for Y, 64 for Z)
// to C and steps C to the next row.
#define STORER(lo, hi, half) \
	VADDPS  (R11), lo, lo \
	VADDPS  half(R11), hi, hi \
	VMOVUPS lo, (R11) \
	VMOVUPS hi, half(R11) \
	ADDQ    R12, R11

#define ZERO8 ZERO4(VXORPS, Y0, Y1, Y2, Y3); ZERO4(VXORPS, Y4, Y5, Y6, Y7)
#define ZERO12 ZERO8; ZERO4(VXORPS, Y8, Y9, Y10, Y11)
#define ROW4 ROW4R(Y8, Y9, Y10, Y11, Y12, Y13, Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
#define ROW6 ROW6R(Y12, Y13, Y14, Y15, Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11)
#define STORE(lo, hi) STORER(lo, hi, 32)
#define STORE4 STORE(Y0, Y1); STORE(Y2, Y3); STORE(Y4, Y5); STORE(Y6, Y7)
#define STORE6 STORE4; STORE(Y8, Y9); STORE(Y10, Y11)

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

// func reluAVX(dst, src *float32, n8 int)
// dst[i] = max(src[i], +0) for 8·n8 values; -0 becomes +0.
TEXT ·reluAVX(SB), NOSPLIT, $0-24
	MOVQ   dst+0(FP), DI
	MOVQ   src+8(FP), SI
	MOVQ   n8+16(FP), CX
	VXORPS Y15, Y15, Y15
	TESTQ  CX, CX
	JE     relud

relul:
	VMOVUPS (SI), Y0
	VMAXPS  Y15, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
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

// The AVX-512 kernels are the AVX2 ones with 32-wide strips of B: each row
// of B and of C is two ZMM registers, so a tile does twice the work per
// broadcast of A. Registers as above, with Z for Y.

#define ZZERO8 ZERO4(VPXORD, Z0, Z1, Z2, Z3); ZERO4(VPXORD, Z4, Z5, Z6, Z7)
#define ZZERO12 ZZERO8; ZERO4(VPXORD, Z8, Z9, Z10, Z11)
#define ZZERO16 ZZERO12; ZERO4(VPXORD, Z12, Z13, Z14, Z15)
#define ZROW4 ROW4R(Z8, Z9, Z10, Z11, Z12, Z13, Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7)
#define ZROW6 ROW6R(Z12, Z13, Z14, Z15, Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11)
#define ZSTORE(lo, hi) STORER(lo, hi, 64)
#define ZSTORE4 ZSTORE(Z0, Z1); ZSTORE(Z2, Z3); ZSTORE(Z4, Z5); ZSTORE(Z6, Z7)
#define ZSTORE6 ZSTORE4; ZSTORE(Z8, Z9); ZSTORE(Z10, Z11)
#define ZSTORE8 ZSTORE6; ZSTORE(Z12, Z13); ZSTORE(Z14, Z15)

// func kern4x32(k int, a *float32, ars, acs int, b *float32, ldb int, c *float32, ldc int)
TEXT ·kern4x32(SB), NOSPLIT, $0-64
	LOADARGS
	MOVQ ldb+40(FP), R10
	SHLQ $2, R10
	ZZERO8
	SETUP4
	TESTQ CX, CX
	JE    zstore4

zloop4:
	VMOVUPS (DI), Z8
	VMOVUPS 64(DI), Z9
	ZROW4
	ADDQ    R10, DI
	DECQ    CX
	JNZ     zloop4

zstore4:
	ZSTORE4
	VZEROUPPER
	RET

// func kern6x32(k int, a *float32, ars, acs int, b *float32, ldb int, c *float32, ldc int)
TEXT ·kern6x32(SB), NOSPLIT, $0-64
	LOADARGS
	MOVQ ldb+40(FP), R10
	SHLQ $2, R10
	ZZERO12
	SETUP6
	TESTQ CX, CX
	JE    zstore6

zloop6:
	VMOVUPS (DI), Z12
	VMOVUPS 64(DI), Z13
	ZROW6
	ADDQ    R10, DI
	DECQ    CX
	JNZ     zloop6

zstore6:
	ZSTORE6
	VZEROUPPER
	RET

// func kern4x32o(k int, a *float32, ars, acs int, b *float32, boff *int, c *float32, ldc int)
TEXT ·kern4x32o(SB), NOSPLIT, $0-64
	LOADARGS
	MOVQ boff+40(FP), R10
	ZZERO8
	SETUP4
	TESTQ CX, CX
	JE    zstore4o

zloop4o:
	MOVQ    (R10), AX
	VMOVUPS (DI)(AX*4), Z8
	VMOVUPS 64(DI)(AX*4), Z9
	ZROW4
	ADDQ    $8, R10
	DECQ    CX
	JNZ     zloop4o

zstore4o:
	ZSTORE4
	VZEROUPPER
	RET

// func kern6x32o(k int, a *float32, ars, acs int, b *float32, boff *int, c *float32, ldc int)
TEXT ·kern6x32o(SB), NOSPLIT, $0-64
	LOADARGS
	MOVQ boff+40(FP), R10
	ZZERO12
	SETUP6
	TESTQ CX, CX
	JE    zstore6o

zloop6o:
	MOVQ    (R10), AX
	VMOVUPS (DI)(AX*4), Z12
	VMOVUPS 64(DI)(AX*4), Z13
	ZROW6
	ADDQ    $8, R10
	DECQ    CX
	JNZ     zloop6o

zstore6o:
	ZSTORE6
	VZEROUPPER
	RET

// The packing routines copy a k×sw strip of B (sw = 16 or 32 floats) into
// a contiguous panel for the kernels above.

// func packStrip(k int, b *float32, ldb int, dst *float32, sw int)
TEXT ·packStrip(SB), NOSPLIT, $0-40
	MOVQ k+0(FP), CX
	MOVQ b+8(FP), SI
	MOVQ ldb+16(FP), R8
	SHLQ $2, R8
	MOVQ dst+24(FP), DI
	MOVQ sw+32(FP), DX
	TESTQ CX, CX
	JE    packStripdone
	CMPQ  DX, $32
	JE    packStrip32

packStrip16:
	MOVQ    SI, AX
	VMOVUPS (AX), Y0
	VMOVUPS 32(AX), Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ    R8, SI
	ADDQ    $64, DI
	DECQ    CX
	JNZ     packStrip16
	JMP     packStripdone

packStrip32:
	MOVQ    SI, AX
	VMOVUPS (AX), Z0
	VMOVUPS 64(AX), Z1
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ    R8, SI
	ADDQ    $128, DI
	DECQ    CX
	JNZ     packStrip32

packStripdone:
	VZEROUPPER
	RET

// func packStripO(k int, b *float32, boff *int, dst *float32, sw int)
TEXT ·packStripO(SB), NOSPLIT, $0-40
	MOVQ k+0(FP), CX
	MOVQ b+8(FP), SI
	MOVQ boff+16(FP), R8
	MOVQ dst+24(FP), DI
	MOVQ sw+32(FP), DX
	TESTQ CX, CX
	JE    packStripOdone
	CMPQ  DX, $32
	JE    packStripO32

packStripO16:
	MOVQ    (R8), AX
	LEAQ    (SI)(AX*4), AX
	VMOVUPS (AX), Y0
	VMOVUPS 32(AX), Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ    $8, R8
	ADDQ    $64, DI
	DECQ    CX
	JNZ     packStripO16
	JMP     packStripOdone

packStripO32:
	MOVQ    (R8), AX
	LEAQ    (SI)(AX*4), AX
	VMOVUPS (AX), Z0
	VMOVUPS 64(AX), Z1
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ    $8, R8
	ADDQ    $128, DI
	DECQ    CX
	JNZ     packStripO32

packStripOdone:
	VZEROUPPER
	RET

// func packT8(k8 int, b *float32, off *int, dst *float32, ldd int)
//
// Transposes eight rows of Bᵀ, row r at b + off[r] floats, into eight
// columns of a panel: for p < 8·k8, dst[p·ldd + r] = b[off[r] + p], in 8×8
// blocks (unpack, shuffle, lane swap).
TEXT ·packT8(SB), NOSPLIT, $0-40
	MOVQ k8+0(FP), CX
	MOVQ b+8(FP), SI
	MOVQ off+16(FP), DI
	MOVQ dst+24(FP), R11
	MOVQ ldd+32(FP), R12
	SHLQ $2, R12
	MOVQ 0(DI), R8
	LEAQ (SI)(R8*4), R8
	MOVQ 8(DI), R9
	LEAQ (SI)(R9*4), R9
	MOVQ 16(DI), R10
	LEAQ (SI)(R10*4), R10
	MOVQ 24(DI), R13
	LEAQ (SI)(R13*4), R13
	MOVQ 32(DI), AX
	LEAQ (SI)(AX*4), AX
	MOVQ 40(DI), BX
	LEAQ (SI)(BX*4), BX
	MOVQ 48(DI), DX
	LEAQ (SI)(DX*4), DX
	MOVQ 56(DI), DI
	LEAQ (SI)(DI*4), DI
	XORQ SI, SI
	TESTQ CX, CX
	JE    t8done

t8loop:
	VMOVUPS (R8)(SI*1), Y0
	VMOVUPS (R9)(SI*1), Y1
	VMOVUPS (R10)(SI*1), Y2
	VMOVUPS (R13)(SI*1), Y3
	VMOVUPS (AX)(SI*1), Y4
	VMOVUPS (BX)(SI*1), Y5
	VMOVUPS (DX)(SI*1), Y6
	VMOVUPS (DI)(SI*1), Y7
	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15
	VSHUFPS   $0x44, Y10, Y8, Y0
	VSHUFPS   $0xEE, Y10, Y8, Y1
	VSHUFPS   $0x44, Y11, Y9, Y2
	VSHUFPS   $0xEE, Y11, Y9, Y3
	VSHUFPS   $0x44, Y14, Y12, Y4
	VSHUFPS   $0xEE, Y14, Y12, Y5
	VSHUFPS   $0x44, Y15, Y13, Y6
	VSHUFPS   $0xEE, Y15, Y13, Y7
	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15
	VMOVUPS   Y8, (R11)
	ADDQ      R12, R11
	VMOVUPS   Y9, (R11)
	ADDQ      R12, R11
	VMOVUPS   Y10, (R11)
	ADDQ      R12, R11
	VMOVUPS   Y11, (R11)
	ADDQ      R12, R11
	VMOVUPS   Y12, (R11)
	ADDQ      R12, R11
	VMOVUPS   Y13, (R11)
	ADDQ      R12, R11
	VMOVUPS   Y14, (R11)
	ADDQ      R12, R11
	VMOVUPS   Y15, (R11)
	ADDQ      R12, R11
	ADDQ      $32, SI
	DECQ      CX
	JNZ       t8loop

t8done:
	VZEROUPPER
	RET

// func kern8x32(k int, a *float32, ars, acs int, b *float32, ldb int, c *float32, ldc int)
//
// Eight rows of A against a 32-wide strip of B (AVX-512): sixteen
// accumulators, ten loads per sixteen FMAs. Rows 0..2 of A at SI, 3..5 at
// BX, 6..7 at DX (each plus 0, 1, 2 strides).
TEXT ·kern8x32(SB), NOSPLIT, $0-64
	LOADARGS
	MOVQ ldb+40(FP), R10
	SHLQ $2, R10
	ZZERO16
	SETUP6
	LEAQ (BX)(R8*2), DX
	ADDQ R8, DX
	TESTQ CX, CX
	JE    zstore8

zloop8:
	VMOVUPS      (DI), Z16
	VMOVUPS      64(DI), Z17
	VBROADCASTSS (SI), Z18
	VBROADCASTSS (SI)(R8*1), Z19
	VBROADCASTSS (SI)(R8*2), Z20
	VBROADCASTSS (BX), Z21
	VFMADD231PS  Z16, Z18, Z0
	VFMADD231PS  Z17, Z18, Z1
	VFMADD231PS  Z16, Z19, Z2
	VFMADD231PS  Z17, Z19, Z3
	VBROADCASTSS (BX)(R8*1), Z22
	VBROADCASTSS (BX)(R8*2), Z23
	VFMADD231PS  Z16, Z20, Z4
	VFMADD231PS  Z17, Z20, Z5
	VFMADD231PS  Z16, Z21, Z6
	VFMADD231PS  Z17, Z21, Z7
	VBROADCASTSS (DX), Z24
	VBROADCASTSS (DX)(R8*1), Z25
	VFMADD231PS  Z16, Z22, Z8
	VFMADD231PS  Z17, Z22, Z9
	VFMADD231PS  Z16, Z23, Z10
	VFMADD231PS  Z17, Z23, Z11
	VFMADD231PS  Z16, Z24, Z12
	VFMADD231PS  Z17, Z24, Z13
	VFMADD231PS  Z16, Z25, Z14
	VFMADD231PS  Z17, Z25, Z15
	ADDQ         R9, SI
	ADDQ         R9, BX
	ADDQ         R9, DX
	ADDQ         R10, DI
	DECQ         CX
	JNZ          zloop8

zstore8:
	ZSTORE8
	VZEROUPPER
	RET

// func adamAVX(w, grad, v, s *float32, n8 int, k *[8]float32)
//
// Adam's update for 8·n8 weights with k = {b1, 1−b1, b2, 1−b2, step size,
// √(1−b2ᵗ), ε}, operation for operation as optimizer.update's Go loop (no
// fused multiply-adds), so both give the same bits:
// v = b1·v + (1−b1)·g; s = b2·s + ((1−b2)·g)·g; w −= step·v / (√s/sq + ε).
TEXT ·adamAVX(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ v+16(FP), DX
	MOVQ s+24(FP), R8
	MOVQ n8+32(FP), CX
	MOVQ k+40(FP), AX
	VBROADCASTSS 0(AX), Y8
	VBROADCASTSS 4(AX), Y9
	VBROADCASTSS 8(AX), Y10
	VBROADCASTSS 12(AX), Y11
	VBROADCASTSS 16(AX), Y12
	VBROADCASTSS 20(AX), Y13
	VBROADCASTSS 24(AX), Y14
	TESTQ CX, CX
	JE    adamdone

adamloop:
	VMOVUPS (SI), Y0
	VMULPS  (DX), Y8, Y1
	VMULPS  Y0, Y9, Y2
	VADDPS  Y2, Y1, Y1
	VMOVUPS Y1, (DX)
	VMULPS  (R8), Y10, Y3
	VMULPS  Y0, Y11, Y4
	VMULPS  Y0, Y4, Y4
	VADDPS  Y4, Y3, Y3
	VMOVUPS Y3, (R8)
	VSQRTPS Y3, Y3
	VDIVPS  Y13, Y3, Y3
	VADDPS  Y14, Y3, Y3
	VMULPS  Y1, Y12, Y1
	VDIVPS  Y3, Y1, Y1
	VMOVUPS (DI), Y5
	VSUBPS  Y1, Y5, Y5
	VMOVUPS Y5, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, R8
	DECQ    CX
	JNZ     adamloop

adamdone:
	VZEROUPPER
	RET
