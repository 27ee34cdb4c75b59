//go:build amd64 && !purego

package qdot

import "golang.org/x/sys/cpu"

//go:generate go run gen_asm.go

// detectImpl picks the widest path the CPU and OS support. The AVX-512 path
// needs VBMI for VPMULTISHIFTQB (nibble extraction) and VL for its 128- and
// 256-bit forms on the upper registers.
func detectImpl() implKind {
	x := cpu.X86
	switch {
	case x.HasAVX512F && x.HasAVX512BW && x.HasAVX512VL && x.HasAVX512VBMI && x.HasAVX2 && x.HasFMA:
		return implAVX512
	case x.HasAVX2 && x.HasFMA:
		return implAVX2
	}
	return implGeneric
}

// The generated kernels (kernels_decl_amd64.go) compute a tile of R
// activation rows × C weight rows: out[r·ldo + j] for r < R, j < C, from
// weight rows starting at w (rows k/2 bytes apart packed, k unpacked, k
// floats for codes expanded by the q4Expand/u8Expand kernels), their
// scales and biases s, b (rows ng apart), activation rows x (k apart) and
// their group sums xsum (ng apart). ng is the group count, cpg the 32-code
// chunks per group, c the centre subtracted from every code (the packed
// AVX-512 kernels have 8 built into their table and use c only for the bias).
// The exported functions check every length before calling them.

var asmKernels = [...]kernelSet{
	implAVX512: {
		q4:  tileSet{one: q4Tile1x1AVX512, rows4: q4Tile4x1AVX512, expand: q4ExpandAVX512c},
		u8:  tileSet{one: u8Tile1x1AVX512, rows4: u8Tile4x1AVX512, expand: u8ExpandAVX512},
		mm:  f32Tile4x4mAVX512,
		mmC: 4,
	},
	implAVX2: {
		q4:  tileSet{one: q4Tile1x1AVX2, rows4: q4Tile4x1AVX2, expand: q4ExpandAVX2c},
		u8:  tileSet{one: u8Tile1x1AVX2, rows4: u8Tile4x1AVX2, expand: u8ExpandAVX2},
		mm:  f32Tile4x2mAVX2,
		mmC: 2,
	},
}

// The packed expanders have the centre 8 built in.
func q4ExpandAVX512c(dst *float32, w *byte, n, _ int) { q4ExpandAVX512(dst, w, n) }
func q4ExpandAVX2c(dst *float32, w *byte, n, _ int)   { q4ExpandAVX2(dst, w, n) }

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
