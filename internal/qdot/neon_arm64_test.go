//go:build arm64 && !purego

package qdot

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/mlxq/mlxq/quant"
)

// TestNEONBits checks that the NEON float path equals the portable path
// bit for bit on every format and group size, through MatVec, MatMat and
// the 4-bit entry points.
func TestNEONBits(t *testing.T) {
	for _, c := range allCodes() {
		for _, gs := range groupSizes(c) {
			for _, ng := range []int{1, 3, 37} {
				k := ng * gs
				t.Run(fmt.Sprintf("%v/g%d/k%d", c, gs, k), func(t *testing.T) {
					l := newPackedLayer(rand.New(rand.NewPCG(uint64(k), uint64(gs))), c, 9, k, 9, gs)
					for _, f := range []func(y []float32, ldy int, w []byte, c Codes, s, b, x, xsum []float32, m, gs int){MatVec, MatMat} {
						for _, mm := range []int{1, 4, 9} {
							var want, got []float32
							withImpl(t, implGeneric, func() { want = l.run(t, f, mm, 9) })
							withImpl(t, implNEON, func() { got = l.run(t, f, mm, 9) })
							bitsEqual(t, want, got, fmt.Sprintf("m=%d", mm))
						}
					}
				})
			}
		}
	}
	l := newLayer(rand.New(rand.NewPCG(1, 2)), 3, 256, 5, 64, 4)
	for j := range l.n {
		dots := func() [2]float32 {
			return [2]float32{DotQ4(l.w(j), l.sj(j), l.bj(j), l.xi(0), l.xsumi(0), l.gs), DotU8(l.q(j), l.sj(j), l.bj(j), l.xi(0), l.xsumi(0), l.gs)}
		}
		var want, got [2]float32
		withImpl(t, implGeneric, func() { want = dots() })
		withImpl(t, implNEON, func() { got = dots() })
		bitsEqual(t, want[:], got[:], fmt.Sprintf("DotQ4, DotU8 row %d", j))
	}
}

// TestInt8NEONBits checks that the NEON integer path, with SDOT where the
// CPU has it and without, equals the portable path bit for bit.
func TestInt8NEONBits(t *testing.T) {
	sdot := []bool{false}
	if hasSDOT {
		sdot = append(sdot, true)
	} else {
		t.Log("no SDOT on this CPU: the int8 kernel without it only")
	}
	saved := hasSDOT
	defer func() { hasSDOT = saved }()
	for _, c := range affineCodes() {
		for _, gs := range []int{32, 64, 128} {
			for _, ng := range []int{1, 3, 37} {
				k := ng * gs
				l := newPackedLayer(rand.New(rand.NewPCG(uint64(k), uint64(c.bits))), c, 9, k, 9, gs)
				for i, v := range l.x {
					l.x[i] = quant.BF16ToF32(quant.F32ToBF16(v))
				}
				var want []float32
				withImpl(t, implGeneric, func() { want = l.run(t, matInt8, 9, 9) })
				for _, hasSDOT = range sdot {
					withImpl(t, implNEON, func() {
						bitsEqual(t, want, l.run(t, matInt8, 9, 9), fmt.Sprintf("%v g%d k%d sdot %v", c, gs, k, hasSDOT))
					})
				}
			}
		}
	}
}
