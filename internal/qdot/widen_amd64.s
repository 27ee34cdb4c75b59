//go:build amd64 && !purego

#include "textflag.h"

// func widenBF16AVX2(dst *float32, src *byte, n int)
// n is a positive multiple of 8: zero-extend each bfloat16 to 32 bits and
// shift it into the upper half, which is its float32 value.
TEXT ·widenBF16AVX2(SB), NOSPLIT, $0-24
	MOVQ      dst+0(FP), DI
	MOVQ      src+8(FP), SI
	MOVQ      n+16(FP), CX
	SHRQ      $3, CX
bf16loop:
	VPMOVZXWD (SI), Y0
	VPSLLD    $16, Y0, Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $16, SI
	ADDQ      $32, DI
	DECQ      CX
	JNZ       bf16loop
	VZEROUPPER
	RET

// func widenF16AVX2(dst *float32, src *byte, n int)
// n is a positive multiple of 8: VCVTPH2PS (F16C) widens eight float16
// values exactly, subnormals, infinities and NaNs included.
TEXT ·widenF16AVX2(SB), NOSPLIT, $0-24
	MOVQ      dst+0(FP), DI
	MOVQ      src+8(FP), SI
	MOVQ      n+16(FP), CX
	SHRQ      $3, CX
f16loop:
	VCVTPH2PS (SI), Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $16, SI
	ADDQ      $32, DI
	DECQ      CX
	JNZ       f16loop
	VZEROUPPER
	RET
