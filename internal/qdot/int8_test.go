package qdot

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mlxq/mlxq/quant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// affineCodes lists the widths the integer kernels take.
func affineCodes() []Codes {
	return []Codes{Affine(2), Affine(3), Affine(4), Affine(5), Affine(6), Affine(8)}
}

// matInt8 is MatInt8 in the form of MatVec, quantizing x first (xsum is
// unused: the quantizer sums the groups itself).
func matInt8(y []float32, ldy int, w []byte, c Codes, s, b, x, _ []float32, m, gs int) {
	var a Int8Acts
	a.Quantize(x, m, gs, c)
	MatInt8(y, ldy, w, c, s, b, &a)
}

// quantized returns the value a holds for element kk of row i, d·q, in
// float64: what the integer kernels multiply the codes with.
func (a *Int8Acts) quantized(i, kk int) float64 {
	g := kk / a.gs
	step := kk / 32 * 32
	p := 0
	for p = range a.layout.perm {
		if step+int(a.layout.perm[p]) == kk {
			break
		}
	}
	var q int
	if a.layout.wide {
		q = int(int16(uint16(a.q[i*a.ld+2*(step+p)]) | uint16(a.q[i*a.ld+2*(step+p)+1])<<8))
	} else {
		q = int(int8(a.q[i*a.ld+step+p]))
	}
	return float64(a.d[i*(a.k/a.gs)+g]) * float64(a.layout.scale) * float64(q)
}

// TestInt8 checks MatInt8 for every affine width, group size and path,
// with unaligned row counts, against the float64 reference of the exact
// activations at the 16-bit tolerance, and against the float64 product of
// the quantized activations to float32 rounding (which a lost or misplaced
// code would fail).
func TestInt8(t *testing.T) {
	for _, kind := range impls() {
		for _, c := range affineCodes() {
			for _, gs := range []int{32, 64, 128} {
				for _, ng := range []int{1, 3, 37} {
					k := ng * gs
					t.Run(fmt.Sprintf("%s/%v/g%d/k%d", kind, c, gs, k), func(t *testing.T) {
						rng := rand.New(rand.NewPCG(uint64(k), uint64(c.bits)))
						const n, m = 9, 9
						l := newPackedLayer(rng, c, n, k, m, gs)
						for i, v := range l.x {
							l.x[i] = quant.BF16ToF32(quant.F32ToBF16(v))
						}
						withImpl(t, kind, func() { checkInt8(t, l) })
					})
				}
			}
		}
	}
}

func checkInt8(t *testing.T, l *packedLayer) {
	var a Int8Acts
	a.Quantize(l.x, l.m, l.gs, l.c)
	ng := l.ng()
	for _, mm := range []int{1, 3, 4, 5, 9} {
		for _, nn := range []int{1, 5, 9} {
			got := l.run(t, matInt8, mm, nn)
			want := make([]float64, 0, mm*nn)
			exact := make([]float64, 0, mm*nn)
			for i := range mm {
				for j := range nn {
					want = append(want, l.ref(i, j))
					var e float64
					for kk := range l.k {
						e += a.quantized(i, kk) * float64(l.s[j*ng+kk/l.gs]) * float64(l.q[j*l.k+kk])
					}
					for g := range ng {
						e += float64(l.b[j*ng+g])*float64(a.sum[i*ng+g]) + float64(l.s[j*ng+g])*float64(a.rest[i*ng+g])
					}
					exact = append(exact, e)
				}
			}
			msg := fmt.Sprintf("m=%d n=%d", mm, nn)
			if mm*nn >= 25 {
				// Normwise over enough outputs: one product alone can
				// cancel to near zero.
				assert.LessOrEqual(t, quant.RelErr(got, want), 1e-2, "against the reference, "+msg)
			}
			assert.LessOrEqual(t, quant.RelErr(got, exact), 1e-4, "against the quantized activations, "+msg)
		}
	}
}

// The quantized activations are within half a step of x, and a group of
// zeros quantizes to zeros.
func TestInt8Quantize(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, kind := range impls() {
		for _, c := range affineCodes() {
			withImpl(t, kind, func() {
				const m, k, gs = 3, 256, 64
				x := make([]float32, m*k)
				for i := range x {
					x[i] = float32(rng.NormFloat64() * math.Exp(4*rng.Float64()))
				}
				clear(x[k : k+gs])
				var a Int8Acts
				a.Quantize(x, m, gs, c)
				for i := range m {
					for kk := range k {
						d := float64(a.d[i*k/gs+kk/gs]) * float64(a.layout.scale)
						require.InDelta(t, float64(x[i*k+kk]), a.quantized(i, kk), d/2*(1+1e-6), "%v %v x[%d,%d]", kind, c, i, kk)
					}
				}
				require.Zero(t, a.d[k/gs])
				require.Zero(t, a.sum[k/gs])
			})
		}
	}
}

// A non-finite activation makes its row's outputs non-finite, and only its.
func TestInt8NonFinite(t *testing.T) {
	for _, kind := range impls() {
		for _, c := range affineCodes() {
			l := newPackedLayer(rand.New(rand.NewPCG(5, 6)), c, 5, 128, 5, 32)
			l.x[2*128+40] = float32(math.Inf(1))
			withImpl(t, kind, func() {
				y := l.run(t, matInt8, 5, 5)
				for i, v := range y {
					assert.Equal(t, i/5 == 2, !isFinite(v), "%v %v y[%d] = %v", kind, c, i, v)
				}
			})
		}
	}
}

func TestInt8Panics(t *testing.T) {
	l := newPackedLayer(rand.New(rand.NewPCG(7, 8)), Affine(4), 4, 64, 2, 32)
	var a Int8Acts
	a.Quantize(l.x, 2, 32, Affine(4))
	y := make([]float32, 8)
	assert.Panics(t, func() { MatInt8(y, 4, l.w, Affine(3), l.s, l.b, &a) }, "other codes")
	assert.Panics(t, func() { MatInt8(y, 4, l.w[1:], Affine(4), l.s, l.b, &a) }, "short weights")
	assert.Panics(t, func() { MatInt8(y[:7], 4, l.w, Affine(4), l.s, l.b, &a) }, "short output")
	assert.Panics(t, func() { a.Quantize(l.x, 2, 32, E2M1) }, "floating-point codes")
	assert.Panics(t, func() { a.Quantize(l.x, 2, 48, Affine(4)) }, "group of 48")
	if detectImpl() != implGeneric {
		withImpl(t, implGeneric, func() {
			assert.Panics(t, func() { MatInt8(y, 4, l.w, Affine(4), l.s, l.b, &a) }, "another path")
		})
	}
}
