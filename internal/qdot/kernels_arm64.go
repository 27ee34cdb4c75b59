//go:build arm64 && !purego

package qdot

import "sync"

// detectImpl: every arm64 CPU has NEON (Advanced SIMD).
func detectImpl() implKind { return implNEON }

// kernelsFor: the NEON path runs through blockFor and the portable driver.
func kernelsFor(implKind) *kernelSet { return nil }

// dot1 is never called: the NEON path has no 1×1 tile.
func dot1(k implKind, u8 bool, w *byte, s, b, x, xsum *float32, ng, cpg, c, kk int) float32 {
	panic("qdot: no assembly for " + k.String())
}

// blockFor returns the block dot product of path k.
func blockFor(k implKind) blockDot {
	if k == implNEON {
		return dotBlockNEON
	}
	return dotBlock
}

// The NEON float kernel (neon_arm64.s): groupDot over ng consecutive
// groups of gs values of u and x into out.
//
//go:noescape
func groupDotsNEON(u, x *float32, gs, ng int, out *float32)

// rowScratchF holds a weight row expanded to float32 and the group dot
// products of the NEON path.
var rowScratchF = sync.Pool{New: func() any { return new([]float32) }}

// dotBlockNEON is dotBlock with the weight row expanded once and the group
// dot products taken by groupDotsNEON: the same operations in the same
// order, so the results equal the portable path's on arm64 bit for bit.
func dotBlockNEON(d decoder, dst []float32, ldd int, codes []byte, c int, s, b, x, xsum []float32, rows, gs int) {
	ng := len(s)
	k := ng * gs
	p := rowScratchF.Get().(*[]float32)
	*p = growF(*p, k+ng)
	u, dots := (*p)[:k], (*p)[k:]
	d.expand(u, codes, c)
	var t [blockRows][4]float32
	for r := range rows {
		xr := x[r*k : (r+1)*k]
		groupDotsNEON(&u[0], &xr[0], gs, ng, &dots[0])
		for g, sg := range s {
			t[r][g%4] += float32(sg * dots[g])
		}
	}
	rowScratchF.Put(p)
	finishBlock(dst, ldd, &t, c, s, b, xsum, rows)
}
