//go:build arm64 && !purego

#include "textflag.h"

// Instructions the Go assembler does not know are written as WORDs with
// the instruction in the comment.

// func groupDotsNEON(u, x *float32, gs, ng int, out *float32)
//
// out[g] is groupDot of group g: element i of a group feeds lane i%8 (V0
// lanes 0-3, V1 lanes 4-7) by fused multiply-add, and the lanes are reduced
// pairwise, as the portable path compiles on arm64.
TEXT ·groupDotsNEON(SB), NOSPLIT, $0-40
	MOVD u+0(FP), R0
	MOVD x+8(FP), R1
	MOVD gs+16(FP), R2
	MOVD ng+24(FP), R3
	MOVD out+32(FP), R4
	LSR  $3, R2, R2

fgroup:
	VEOR V0.B16, V0.B16, V0.B16
	VEOR V1.B16, V1.B16, V1.B16
	MOVD R2, R5

fstep:
	VLD1.P 32(R0), [V2.S4, V3.S4]
	VLD1.P 32(R1), [V4.S4, V5.S4]
	VFMLA  V2.S4, V4.S4, V0.S4
	VFMLA  V3.S4, V5.S4, V1.S4
	SUBS   $1, R5, R5
	BNE    fstep
	WORD   $0x6e21d406 // FADDP V6.4S, V0.4S, V1.4S
	WORD   $0x6e26d4c7 // FADDP V7.4S, V6.4S, V6.4S
	WORD   $0x7e30d8e8 // FADDP S8, V7.2S
	FMOVS.P F8, 4(R4)
	SUBS   $1, R3, R3
	BNE    fgroup
	RET

// func int8DotsNEON(q, x *byte, gs, ng int, out *int32)
//
// out[g] = Σ q[i]·int8(x[i]) over group g, codes below 128: SMULL into
// int16 products, SADALP into int32 pairs.
TEXT ·int8DotsNEON(SB), NOSPLIT, $0-40
	MOVD q+0(FP), R0
	MOVD x+8(FP), R1
	MOVD gs+16(FP), R2
	MOVD ng+24(FP), R3
	MOVD out+32(FP), R4
	LSR  $4, R2, R2

bgroup:
	VEOR V4.B16, V4.B16, V4.B16
	VEOR V5.B16, V5.B16, V5.B16
	MOVD R2, R5

bstep:
	VLD1.P 16(R0), [V0.B16]
	VLD1.P 16(R1), [V1.B16]
	WORD   $0x0e21c002 // SMULL V2.8H, V0.8B, V1.8B
	WORD   $0x4e21c003 // SMULL2 V3.8H, V0.16B, V1.16B
	WORD   $0x4e606844 // SADALP V4.4S, V2.8H
	WORD   $0x4e606865 // SADALP V5.4S, V3.8H
	SUBS   $1, R5, R5
	BNE    bstep
	VADD   V5.S4, V4.S4, V4.S4
	VADDV  V4.S4, V4
	FMOVS.P F4, 4(R4)
	SUBS   $1, R3, R3
	BNE    bgroup
	RET

// func int8DotsSDOT(q, x *byte, gs, ng int, out *int32)
//
// int8DotsNEON by SDOT, 32 codes a step.
TEXT ·int8DotsSDOT(SB), NOSPLIT, $0-40
	MOVD q+0(FP), R0
	MOVD x+8(FP), R1
	MOVD gs+16(FP), R2
	MOVD ng+24(FP), R3
	MOVD out+32(FP), R4
	LSR  $5, R2, R2

dgroup:
	VEOR V4.B16, V4.B16, V4.B16
	VEOR V5.B16, V5.B16, V5.B16
	MOVD R2, R5

dstep:
	VLD1.P 32(R0), [V0.B16, V1.B16]
	VLD1.P 32(R1), [V2.B16, V3.B16]
	WORD   $0x4e829404 // SDOT V4.4S, V0.16B, V2.16B
	WORD   $0x4e839425 // SDOT V5.4S, V1.16B, V3.16B
	SUBS   $1, R5, R5
	BNE    dstep
	VADD   V5.S4, V4.S4, V4.S4
	VADDV  V4.S4, V4
	FMOVS.P F4, 4(R4)
	SUBS   $1, R3, R3
	BNE    dgroup
	RET

// func int16DotsNEON(q, x *byte, gs, ng int, out *int32)
//
// out[g] = Σ q[i]·x_i over group g for the int16 values x_i at x: the codes
// widened by UXTL, SMLAL into int32.
TEXT ·int16DotsNEON(SB), NOSPLIT, $0-40
	MOVD q+0(FP), R0
	MOVD x+8(FP), R1
	MOVD gs+16(FP), R2
	MOVD ng+24(FP), R3
	MOVD out+32(FP), R4
	LSR  $4, R2, R2

wgroup:
	VEOR V4.B16, V4.B16, V4.B16
	VEOR V5.B16, V5.B16, V5.B16
	VEOR V6.B16, V6.B16, V6.B16
	VEOR V7.B16, V7.B16, V7.B16
	MOVD R2, R5

wstep:
	VLD1.P 16(R0), [V0.B16]
	VLD1.P 32(R1), [V2.H8, V3.H8]
	VUXTL2 V0.B16, V1.H8
	VUXTL  V0.B8, V0.H8
	WORD   $0x0e628004 // SMLAL V4.4S, V0.4H, V2.4H
	WORD   $0x4e628005 // SMLAL2 V5.4S, V0.8H, V2.8H
	WORD   $0x0e638026 // SMLAL V6.4S, V1.4H, V3.4H
	WORD   $0x4e638027 // SMLAL2 V7.4S, V1.8H, V3.8H
	SUBS   $1, R5, R5
	BNE    wstep
	VADD   V5.S4, V4.S4, V4.S4
	VADD   V7.S4, V6.S4, V6.S4
	VADD   V6.S4, V4.S4, V4.S4
	VADDV  V4.S4, V4
	FMOVS.P F4, 4(R4)
	SUBS   $1, R3, R3
	BNE    wgroup
	RET
