//go:build amd64 && !purego

#include "textflag.h"

// func le16AVX2(out *float32, raw *byte, n16 int, m, sbit uint32, sl, ic float32)
// Per sample: v = u16 & m; v = (v ^ sbit) - sbit; out = float32(v)*sl + ic.
TEXT ·le16AVX2(SB), NOSPLIT, $0-40
	MOVQ         out+0(FP), DI
	MOVQ         raw+8(FP), SI
	MOVQ         n16+16(FP), CX
	MOVL         m+24(FP), AX
	MOVL         sbit+28(FP), BX
	VMOVD        AX, X10
	VMOVD        BX, X11
	VPBROADCASTD X10, Y10
	VPBROADCASTD X11, Y11
	VBROADCASTSS sl+32(FP), Y12
	VBROADCASTSS ic+36(FP), Y13
	TESTQ        CX, CX
	JZ           done

loop:
	VPMOVZXWD (SI), Y0
	VPMOVZXWD 16(SI), Y1
	VPAND     Y10, Y0, Y0
	VPAND     Y10, Y1, Y1
	VPXOR     Y11, Y0, Y0
	VPXOR     Y11, Y1, Y1
	VPSUBD    Y11, Y0, Y0
	VPSUBD    Y11, Y1, Y1
	VCVTDQ2PS Y0, Y0
	VCVTDQ2PS Y1, Y1
	VMULPS    Y12, Y0, Y0
	VMULPS    Y12, Y1, Y1
	VADDPS    Y13, Y0, Y0
	VADDPS    Y13, Y1, Y1
	VMOVUPS   Y0, (DI)
	VMOVUPS   Y1, 32(DI)
	ADDQ      $32, SI
	ADDQ      $64, DI
	DECQ      CX
	JNZ       loop

done:
	VZEROUPPER
	RET
