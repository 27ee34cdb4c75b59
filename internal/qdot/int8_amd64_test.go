//go:build amd64 && !purego

package qdot

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/mlxq/mlxq/quant"
)

// TestInt8VNNI checks that the VNNI tiles return what the AVX2 tiles return,
// bit for bit, for every width and group size.
func TestInt8VNNI(t *testing.T) {
	if detectImpl() != implAVX512 || !hasVNNI {
		t.Skip("no AVX-512 path with AVX512-VNNI on this CPU")
	}
	saved := hasVNNI
	defer func() { hasVNNI = saved }()
	for _, c := range affineCodes() {
		for _, gs := range []int{32, 64, 128} {
			for _, ng := range []int{1, 3, 37} {
				k := ng * gs
				l := newPackedLayer(rand.New(rand.NewPCG(uint64(k), uint64(c.bits))), c, 9, k, 9, gs)
				for i, v := range l.x {
					l.x[i] = quant.BF16ToF32(quant.F32ToBF16(v))
				}
				var want, got []float32
				withImpl(t, implAVX512, func() {
					hasVNNI = false
					want = l.run(t, matInt8, 9, 9)
					hasVNNI = true
					got = l.run(t, matInt8, 9, 9)
				})
				bitsEqual(t, want, got, fmt.Sprintf("%v g%d k%d", c, gs, k))
			}
		}
	}
}
