//go:build amd64 && !purego

package qdot

import "golang.org/x/sys/cpu"

//go:generate go run gen_asm.go

// detectImpl picks the widest path the CPU and OS support. The AVX-512 path
// needs VBMI for VPMULTISHIFTQB (nibble extraction) and VL for its 128- and
// 256-bit forms on the upper registers; both paths need F16C (VCVTPH2PS,
// E4M3 codes).
func detectImpl() implKind {
	x := cpu.X86
	switch {
	case x.HasAVX512F && x.HasAVX512BW && x.HasAVX512VL && x.HasAVX512VBMI && x.HasAVX2 && x.HasFMA && x.HasF16C:
		return implAVX512
	case x.HasAVX2 && x.HasFMA && x.HasF16C:
		return implAVX2
	}
	return implGeneric
}

// The generated kernels (kernels_decl_amd64.go) compute a tile of R
// activation rows × C weight rows: out[r·ldo + j] for r < R, j < C, from
// weight rows starting at w (rows k·bits/8 bytes apart, k floats for codes
// expanded by the expanders), their scales and biases s, b (rows ng apart;
// b nil for no biases), activation rows x (k apart) and their group sums
// xsum (ng apart; unused without biases). ng is the group count, cpg the
// steps of 32 codes per group (16 for the h formats), c the centre
// subtracted from every code (the packed kernels have their centre built
// into their decoding and use c only for the bias). The exported functions
// check every length before calling them.

var asmKernels = [...]kernelSet{
	implAVX512: {
		q4:    tileSet{q4Tile1x1AVX512, q4Tile4x1AVX512, q4ExpandAVX512c},
		u8:    tileSet{u8Tile1x1AVX512, u8Tile4x1AVX512, u8ExpandAVX512c},
		a2:    tileSet{a2Tile1x1AVX512, a2Tile4x1AVX512, steps(a2ExpandAVX512, 32)},
		a3:    tileSet{a3Tile1x1AVX512, a3Tile4x1AVX512, steps(a3ExpandAVX512, 32)},
		a5:    tileSet{a5Tile1x1AVX512, a5Tile4x1AVX512, steps(a5ExpandAVX512, 32)},
		a6:    tileSet{a6Tile1x1AVX512, a6Tile4x1AVX512, steps(a6ExpandAVX512, 32)},
		e2m1:  tileSet{e2m1Tile1x1AVX512, e2m1Tile4x1AVX512, steps(e2m1ExpandAVX512, 32)},
		e2m1h: tileSet{e2m1hTile1x1AVX512, e2m1hTile4x1AVX512, steps(e2m1hExpandAVX512, 16)},
		e4m3:  tileSet{e4m3Tile1x1AVX512, e4m3Tile4x1AVX512, steps(e4m3ExpandAVX512, 32)},
		mm:    f32Tile4x4mAVX512,
		mmh:   f32hTile4x4mAVX512,
		mmC:   4,
	},
	implAVX2: {
		q4:    tileSet{q4Tile1x1AVX2, q4Tile4x1AVX2, q4ExpandAVX2c},
		u8:    tileSet{u8Tile1x1AVX2, u8Tile4x1AVX2, u8ExpandAVX2c},
		a2:    tileSet{a2Tile1x1AVX2, a2Tile4x1AVX2, steps(a2ExpandAVX2, 32)},
		a3:    tileSet{a3Tile1x1AVX2, a3Tile4x1AVX2, steps(a3ExpandAVX2, 32)},
		a5:    tileSet{a5Tile1x1AVX2, a5Tile4x1AVX2, steps(a5ExpandAVX2, 32)},
		a6:    tileSet{a6Tile1x1AVX2, a6Tile4x1AVX2, steps(a6ExpandAVX2, 32)},
		e2m1:  tileSet{e2m1Tile1x1AVX2, e2m1Tile4x1AVX2, steps(e2m1ExpandAVX2, 32)},
		e2m1h: tileSet{e2m1hTile1x1AVX2, e2m1hTile4x1AVX2, steps(e2m1hExpandAVX2, 16)},
		e4m3:  tileSet{e4m3Tile1x1AVX2, e4m3Tile4x1AVX2, steps(e4m3ExpandAVX2, 32)},
		mm:    f32Tile4x2mAVX2,
		mmh:   f32hTile4x2mAVX2,
		mmC:   2,
	},
}

// The packed 4-bit expanders have the centre 8 built in; the expanders of
// the other packed formats have theirs and count steps of 32 or 16 codes.
func q4ExpandAVX512c(dst *float32, w *byte, k, _ int) { q4ExpandAVX512(dst, w, k/32) }
func q4ExpandAVX2c(dst *float32, w *byte, k, _ int)   { q4ExpandAVX2(dst, w, k/32) }
func u8ExpandAVX512c(dst *float32, q *byte, k, c int) { u8ExpandAVX512(dst, q, k/32, c) }
func u8ExpandAVX2c(dst *float32, q *byte, k, c int)   { u8ExpandAVX2(dst, q, k/32, c) }

func steps(expand func(dst *float32, w *byte, n int), per int) func(dst *float32, w *byte, k, c int) {
	return func(dst *float32, w *byte, k, _ int) { expand(dst, w, k/per) }
}

// kernelsFor returns the assembly tiles of path k, or nil for generic.
func kernelsFor(k implKind) *kernelSet {
	if k == implGeneric {
		return nil
	}
	return &asmKernels[k]
}

// dot1 runs the 1×1 tile of path k by static calls: a call through a func
// value would move the result variable to the heap on every dot product.
func dot1(k implKind, u8 bool, w *byte, s, b, x, xsum *float32, ng, cpg, c, kk int) float32 {
	var y float32
	switch {
	case k == implAVX512 && !u8:
		q4Tile1x1AVX512(w, s, b, x, xsum, ng, cpg, c, kk, &y, 1)
	case k == implAVX512:
		u8Tile1x1AVX512(w, s, b, x, xsum, ng, cpg, c, kk, &y, 1)
	case k == implAVX2 && !u8:
		q4Tile1x1AVX2(w, s, b, x, xsum, ng, cpg, c, kk, &y, 1)
	case k == implAVX2:
		u8Tile1x1AVX2(w, s, b, x, xsum, ng, cpg, c, kk, &y, 1)
	default:
		panic("qdot: no assembly for " + k.String())
	}
	return y
}

// blockFor returns the block dot product of path k, which the assembly
// paths use only where kernelsFor has no tiles.
func blockFor(implKind) blockDot { return dotBlock }
