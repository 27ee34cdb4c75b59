package qdot

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestInt8Guard runs every width with the codes, the scales and the
// quantized activations ending at an inaccessible page: no tile reads past
// them.
func TestInt8Guard(t *testing.T) {
	for _, kind := range impls() {
		for _, c := range affineCodes() {
			for _, gs := range []int{32, 64} {
				t.Run(fmt.Sprintf("%s/%v/g%d", kind, c, gs), func(t *testing.T) {
					const n, m = 5, 5
					k := 3 * gs
					ng := k / gs
					l := newPackedLayer(rand.New(rand.NewPCG(19, uint64(gs))), c, n, k, m, gs)
					var want []float32
					withImpl(t, kind, func() { want = l.run(t, matInt8, m, n) })
					w := guarded(t, len(l.w))
					copy(w, l.w)
					l.w, l.s, l.b = w, guardedFloats(t, l.s), guardedFloats(t, l.b)
					withImpl(t, kind, func() {
						var a Int8Acts
						a.q = guarded(t, m*k*elemBytes(int8Layout(kind, c)))
						a.d = guardedFloats(t, make([]float32, m*ng))
						a.sum = guardedFloats(t, make([]float32, m*ng))
						a.rest = guardedFloats(t, make([]float32, m*ng))
						a.Quantize(l.x, m, gs, c)
						y := make([]float32, m*n)
						MatInt8(y, n, l.w, c, l.s, l.b, &a)
						bitsEqual(t, want, y, "guarded")
					})
				})
			}
		}
	}
}
