//go:build arm64 && !purego

package qdot

import "golang.org/x/sys/cpu"

// hasSDOT reports whether the CPU has the dot product instructions
// (FEAT_DotProd); tests lower it to run the other int8 kernel.
var hasSDOT = cpu.ARM64.HasASIMDDP

// int8Layout: the NEON path reads the values in their natural order, as
// the portable path does.
func int8Layout(_ implKind, c Codes) actLayout {
	return actLayout{perm: &natural, wide: wideActs(c), scale: 1}
}

// int8KernelsFor: the NEON path runs the portable driver with its own
// group sums (int8DotsFor).
func int8KernelsFor(implKind, Codes) *int8Tiles { return nil }

// int8DotsFor returns the group sums of path k: the NEON kernels take the
// integer products of whole rows, SDOT where the CPU has it. The sums are
// exact, so the results equal the portable path's bit for bit.
func int8DotsFor(k implKind) int8Dots {
	if k == implNEON {
		return int8DotsNEONRow
	}
	return int8DotsGo
}

func int8DotsNEONRow(dots []int32, q, xq []uint8, gs int, wide bool) {
	ng := len(dots)
	_ = q[ng*gs-1]
	switch {
	case wide:
		_ = xq[2*ng*gs-1]
		int16DotsNEON(&q[0], &xq[0], gs, ng, &dots[0])
	case hasSDOT:
		_ = xq[ng*gs-1]
		int8DotsSDOT(&q[0], &xq[0], gs, ng, &dots[0])
	default:
		_ = xq[ng*gs-1]
		int8DotsNEON(&q[0], &xq[0], gs, ng, &dots[0])
	}
}

// The NEON integer kernels (neon_arm64.s): over ng groups of gs codes q,
// one per byte (below 128 for the int8 kernels), the sums of their products
// with the int8 or int16 values at x.
//
//go:noescape
func int8DotsNEON(q, x *byte, gs, ng int, out *int32)

//go:noescape
func int8DotsSDOT(q, x *byte, gs, ng int, out *int32)

//go:noescape
func int16DotsNEON(q, x *byte, gs, ng int, out *int32)
