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

// allCodes lists every code format; groupSizes the group sizes tested
// with each.
func allCodes() []Codes {
	return []Codes{Affine(2), Affine(3), Affine(4), Affine(5), Affine(6), Affine(8), E2M1, E4M3}
}

func groupSizes(c Codes) []int {
	if c == E2M1 {
		return []int{16, 32, 48, 64, 128}
	}
	return []int{32, 64, 128}
}

// packedLayer is a random weight matrix stored as c codes: random bytes
// (every bit pattern is a valid row), decoded by quant.Unpack for the
// references.
type packedLayer struct {
	c           Codes
	n, k, m, gs int
	w           []byte  // n rows of c.RowBytes(k) bytes
	q           []uint8 // n×k codes, decoded by quant.Unpack
	s, b        []float32
	x, xsum     []float32
}

func newPackedLayer(rng *rand.Rand, c Codes, n, k, m, gs int) *packedLayer {
	l := newPackedWeights(rng, c, n, k, m, gs)
	l.q = make([]uint8, n*k)
	rb := c.RowBytes(k)
	for j := range n {
		quant.Unpack(l.q[j*k:(j+1)*k], l.w[j*rb:(j+1)*rb], int(c.bits))
	}
	return l
}

// newPackedWeights is newPackedLayer without the decoded codes.
func newPackedWeights(rng *rand.Rand, c Codes, n, k, m, gs int) *packedLayer {
	ng := k / gs
	l := &packedLayer{c: c, n: n, k: k, m: m, gs: gs,
		w: make([]byte, n*c.RowBytes(k)),
		s: make([]float32, n*ng), x: make([]float32, m*k), xsum: make([]float32, m*ng)}
	for i := 0; i < len(l.w); i += 8 {
		v := rng.Uint64()
		for t := i; t < min(i+8, len(l.w)); t++ {
			l.w[t] = byte(v >> (8 * (t - i)))
		}
	}
	// Weights s·v(q) + b in about ±0.08.
	scale := 0.16 / float64(int(1)<<c.bits)
	switch c {
	case E2M1:
		scale = 0.08 / 6
	case E4M3:
		scale = 0.08 / 480
	}
	for i := range l.s {
		l.s[i] = float32(scale * (1 + 0.1*rng.NormFloat64()))
	}
	if c.kind == kindAffine {
		l.b = make([]float32, n*ng)
		for i := range l.b {
			l.b[i] = float32(-0.08 * (1 + 0.1*rng.NormFloat64()))
		}
	}
	for i := range l.x {
		l.x[i] = float32(rng.NormFloat64())
	}
	GroupSums(l.xsum, l.x, gs)
	return l
}

func (l *packedLayer) ng() int { return l.k / l.gs }

// value is the weight of code q before scaling: q for affine codes (the
// centre is the kernels' business), the decoded float otherwise.
func (l *packedLayer) value(q uint8) float64 {
	switch l.c {
	case E2M1:
		return quant.E2M1ToFloat(q)
	case E4M3:
		return quant.E4M3ToFloat(q)
	}
	return float64(q)
}

// ref is Σ x·(s·v(q) + b) in float64.
func (l *packedLayer) ref(i, j int) float64 {
	var t float64
	ng := l.ng()
	for kk, q := range l.q[j*l.k : (j+1)*l.k] {
		g := kk / l.gs
		w := float64(l.s[j*ng+g]) * l.value(q)
		if l.b != nil {
			w += float64(l.b[j*ng+g])
		}
		t += float64(l.x[i*l.k+kk]) * w
	}
	return t
}

// run calls MatVec or MatMat on the first mm activation rows and nn weight
// rows into an output of stride nn+3 whose padding is checked untouched.
func (l *packedLayer) run(t *testing.T, f func(y []float32, ldy int, w []byte, c Codes, s, b, x, xsum []float32, m, gs int), mm, nn int) []float32 {
	t.Helper()
	ng, ldy := l.ng(), nn+3
	y := make([]float32, (mm-1)*ldy+nn+1)
	poison := math.Float32frombits(0x7fc0dead)
	for i := range y {
		y[i] = poison
	}
	var b []float32
	if l.b != nil {
		b = l.b[:nn*ng]
	}
	f(y[:len(y)-1], ldy, l.w[:nn*l.c.RowBytes(l.k)], l.c, l.s[:nn*ng], b, l.x[:mm*l.k], l.xsum[:mm*ng], mm, l.gs)
	out := make([]float32, 0, mm*nn)
	for i := range y {
		if i%ldy >= nn || i == len(y)-1 {
			require.Equal(t, math.Float32bits(poison), math.Float32bits(y[i]), "y[%d] outside the output was written", i)
		} else {
			out = append(out, y[i])
		}
	}
	return out
}

// TestPacked checks MatVec and MatMat for every code format, group size and
// path against the float64 reference, each other, single dot products, and
// MatU8Bits / MatQ4 on the same codes, bit for bit.
func TestPacked(t *testing.T) {
	for _, kind := range impls() {
		for _, c := range allCodes() {
			for _, gs := range groupSizes(c) {
				for _, ng := range []int{1, 3, 37} {
					k := ng * gs
					t.Run(fmt.Sprintf("%s/%v/g%d/k%d", kind, c, gs, k), func(t *testing.T) {
						rng := rand.New(rand.NewPCG(uint64(k), uint64(c.bits)<<8|uint64(c.kind)))
						const n, m = 9, 9
						l := newPackedLayer(rng, c, n, k, m, gs)
						withImpl(t, kind, func() { checkPacked(t, l) })
					})
				}
			}
		}
	}
}

func checkPacked(t *testing.T, l *packedLayer) {
	ng, k := l.ng(), l.k
	rb := l.c.RowBytes(k)
	// Single dot products: one activation row against one weight row.
	single := make([]float32, l.m*l.n)
	want := make([]float64, l.m*l.n)
	for i := range l.m {
		for j := range l.n {
			var y [1]float32
			var b []float32
			if l.b != nil {
				b = l.b[j*ng : (j+1)*ng]
			}
			MatVec(y[:], 1, l.w[j*rb:(j+1)*rb], l.c, l.s[j*ng:(j+1)*ng], b, l.x[i*k:(i+1)*k], l.xsum[i*ng:(i+1)*ng], 1, l.gs)
			single[i*l.n+j] = y[0]
			want[i*l.n+j] = l.ref(i, j)
		}
	}
	e := quant.RelErr(single, want)
	assert.LessOrEqual(t, e, 1e-5, "normwise relative error")
	for _, mm := range []int{1, 2, 3, 4, 5, 9} {
		for _, nn := range []int{3, 9} {
			sub := make([]float32, 0, mm*nn)
			for i := range mm {
				sub = append(sub, single[i*l.n:i*l.n+nn]...)
			}
			msg := fmt.Sprintf("m=%d n=%d", mm, nn)
			bitsEqual(t, sub, l.run(t, MatVec, mm, nn), "MatVec vs single rows, "+msg)
			bitsEqual(t, sub, l.run(t, MatMat, mm, nn), "MatMat vs single rows, "+msg)
			if l.c.kind != kindAffine {
				continue
			}
			u8 := func(y []float32, ldy int, _ []byte, c Codes, s, b, x, xsum []float32, m, gs int) {
				MatU8Bits(y, ldy, l.q[:nn*k], int(c.bits), s, b, x, xsum, m, gs)
			}
			bitsEqual(t, sub, l.run(t, u8, mm, nn), "MatU8Bits vs MatVec, "+msg)
			if l.c.bits == 4 {
				q4 := func(y []float32, ldy int, w []byte, _ Codes, s, b, x, xsum []float32, m, gs int) {
					MatQ4(y, ldy, w, s, b, x, xsum, m, gs)
				}
				bitsEqual(t, sub, l.run(t, q4, mm, nn), "MatQ4 vs MatVec, "+msg)
			}
		}
	}
}

// TestPackedDecode reads every code back exactly: with unit scales, zero
// biases and the identity as activations, y[i][j] is the value of code i of
// weight row j (up to the sign of zero).
func TestPackedDecode(t *testing.T) {
	for _, kind := range impls() {
		for _, c := range allCodes() {
			gs := groupSizes(c)[0]
			k := 4 * gs
			t.Run(fmt.Sprintf("%s/%v/g%d", kind, c, gs), func(t *testing.T) {
				const n = 5
				l := newPackedLayer(rand.New(rand.NewPCG(11, uint64(c.bits))), c, n, k, k, gs)
				for i := range l.s {
					l.s[i] = 1
				}
				for i := range l.b {
					l.b[i] = 0
				}
				clear(l.x)
				for i := range k {
					l.x[i*k+i] = 1
				}
				GroupSums(l.xsum, l.x, gs)
				withImpl(t, kind, func() {
					for _, f := range []struct {
						name string
						run  func(y []float32, ldy int, w []byte, c Codes, s, b, x, xsum []float32, m, gs int)
					}{{"MatVec", MatVec}, {"MatMat", MatMat}} {
						y := l.run(t, f.run, k, n)
						for i := range k {
							for j := range n {
								want := float32(l.value(l.q[j*k+i]))
								require.True(t, want == y[i*n+j], // -0 sums to +0

									"%s: code %d of row %d (%#x): %v, want %v", f.name, i, j, l.q[j*k+i], y[i*n+j], want)
							}
						}
					}
				})
			})
		}
	}
}

// TestPackedNonFinite checks that NaN and ±Inf in one activation row reach
// that row's outputs only.
func TestPackedNonFinite(t *testing.T) {
	for _, kind := range impls() {
		for _, c := range allCodes() {
			rng := rand.New(rand.NewPCG(13, uint64(c.bits)))
			const n, k, m, gs = 9, 320, 5, 32
			for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1))} {
				l := newPackedLayer(rng, c, n, k, m, gs)
				l.x[2*k+77] = bad
				GroupSums(l.xsum, l.x, gs)
				withImpl(t, kind, func() {
					for _, f := range []func(y []float32, ldy int, w []byte, c Codes, s, b, x, xsum []float32, m, gs int){MatVec, MatMat} {
						y := l.run(t, f, m, n)
						for i := range m {
							for j := range n {
								v := y[i*n+j]
								assert.Equal(t, i != 2, isFinite(v), "%s %v %v: y[%d][%d] = %v", kind, c, bad, i, j, v)
							}
						}
					}
				})
			}
		}
	}
}

func TestCodes(t *testing.T) {
	for _, bits := range []int{2, 3, 4, 5, 6, 8} {
		c := Affine(bits)
		assert.Equal(t, fmt.Sprintf("affine%d", bits), c.String())
		assert.Equal(t, 1<<(bits-1), c.center())
		for _, k := range []int{32, 64, 4096} {
			assert.Equal(t, quant.RowBytes(k, bits), c.RowBytes(k), "%v RowBytes(%d)", c, k)
		}
	}
	assert.Equal(t, 8, E2M1.RowBytes(16))
	assert.Equal(t, 32, E4M3.RowBytes(32))
	assert.Equal(t, "e2m1", E2M1.String())
	assert.Equal(t, "e4m3", E4M3.String())
	for _, bits := range []int{0, 1, 7, 9} {
		assert.Panics(t, func() { Affine(bits) }, "Affine(%d)", bits)
	}
}

func TestPackedPanics(t *testing.T) {
	f := func(n int) []float32 { return make([]float32, n) }
	w4 := make([]byte, 32)  // 2 rows of 32 4-bit codes
	w3 := make([]byte, 24)  // 2 rows of 32 3-bit codes
	w8 := make([]byte, 64)  // 2 rows of 32 8-bit codes
	w16 := make([]byte, 16) // 2 rows of 16 E2M1 codes
	cases := []struct {
		name string
		call func()
	}{
		{"zero Codes", func() { MatVec(f(2), 2, w4, Codes{}, f(2), f(2), f(32), f(1), 1, 32) }},
		{"affine g16", func() { MatVec(f(2), 2, w16, Affine(4), f(2), f(2), f(16), f(1), 1, 16) }},
		{"e4m3 g16", func() { MatMat(f(2), 2, w4, E4M3, f(2), nil, f(16), f(1), 1, 16) }},
		{"e2m1 g24", func() { MatVec(f(2), 2, w16[:12], E2M1, f(2), nil, f(24), f(1), 1, 24) }},
		{"gs zero", func() { MatVec(f(2), 2, w4, Affine(4), f(2), f(2), f(32), f(1), 1, 0) }},
		{"k not multiple of gs", func() { MatVec(f(2), 2, w16, E2M1, f(2), nil, f(16), f(1), 1, 32) }},
		{"m zero", func() { MatVec(f(2), 2, w4, Affine(4), f(2), f(2), f(32), f(1), 0, 32) }},
		{"x rows", func() { MatMat(f(4), 2, w4, Affine(4), f(2), f(2), f(65), f(2), 2, 32) }},
		{"short w", func() { MatVec(f(2), 2, w3[:23], Affine(3), f(2), f(2), f(32), f(1), 1, 32) }},
		{"long w", func() { MatVec(f(2), 2, w4, Affine(3), f(2), f(2), f(32), f(1), 1, 32) }},
		{"short s", func() { MatVec(f(2), 2, w8, Affine(8), f(1), f(2), f(32), f(1), 1, 32) }},
		{"short b", func() { MatVec(f(2), 2, w8, Affine(8), f(2), f(1), f(32), f(1), 1, 32) }},
		{"nil b", func() { MatVec(f(2), 2, w4, Affine(4), f(2), nil, f(32), f(1), 1, 32) }},
		{"short xsum", func() { MatMat(f(4), 2, w4, Affine(4), f(2), f(2), f(64), f(1), 2, 32) }},
		{"nil xsum", func() { MatVec(f(2), 2, w4, Affine(4), f(2), f(2), f(32), nil, 1, 32) }},
		{"fp with b", func() { MatVec(f(2), 2, w4, E2M1, f(2), f(2), f(32), f(1), 1, 32) }},
		{"fp xsum", func() { MatVec(f(2), 2, w8, E4M3, f(2), nil, f(32), f(2), 1, 32) }},
		{"ldy", func() { MatVec(f(2), 1, w4, Affine(4), f(2), f(2), f(32), f(1), 1, 32) }},
		{"short y", func() { MatMat(f(3), 2, w4, Affine(4), f(2), f(2), f(64), f(2), 2, 32) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { assert.Panics(t, c.call) })
	}
	// The same shapes, right: no panic.
	assert.NotPanics(t, func() { MatVec(f(2), 2, w16, E2M1, f(2), nil, f(16), nil, 1, 16) })
	assert.NotPanics(t, func() { MatMat(f(2), 2, w8, E4M3, f(2), nil, f(32), f(1), 1, 32) })
	assert.NotPanics(t, func() { MatVec(f(2), 2, w3, Affine(3), f(2), f(2), f(32), f(1), 1, 32) })
}

func TestGroupSums16(t *testing.T) {
	x := make([]float32, 64)
	for i := range x {
		x[i] = float32(i)
	}
	xs := make([]float32, 4)
	GroupSums(xs, x, 16)
	assert.Equal(t, []float32{120, 376, 632, 888}, xs)
	assert.Panics(t, func() { GroupSums(xs[:2], x, 24) })
}

// Benchmarks of the packed formats: BenchmarkPacked runs MatVec at M=1 and
// MatMat at M=128; BenchmarkU8Bits the unpacked codes of the same widths
// for comparison (with BenchmarkMatQ4). Bytes are codes plus f32 scales
// (and biases).

func benchPackedCases() []struct {
	c  Codes
	gs int
} {
	var out []struct {
		c  Codes
		gs int
	}
	add := func(c Codes, gs ...int) {
		for _, g := range gs {
			out = append(out, struct {
				c  Codes
				gs int
			}{c, g})
		}
	}
	add(Affine(2), 64)
	add(Affine(3), 64)
	add(Affine(4), 32, 64, 128)
	add(Affine(5), 64)
	add(Affine(6), 64)
	add(Affine(8), 64)
	add(E2M1, 16, 32)
	add(E4M3, 32)
	return out
}

func BenchmarkPacked(b *testing.B) {
	for _, kind := range impls() {
		for _, m := range []int{1, 128} {
			for _, sh := range benchShapes() {
				if m > 1 && kind == implGeneric {
					continue // minutes per iteration
				}
				for _, cs := range benchPackedCases() {
					b.Run(fmt.Sprintf("%s/M%d/%dx%d/%v/g%d", kind, m, sh.n, sh.k, cs.c, cs.gs), func(b *testing.B) {
						l := newPackedWeights(rand.New(rand.NewPCG(1, 2)), cs.c, sh.n, sh.k, m, cs.gs)
						y := make([]float32, m*sh.n)
						meta := 4
						if l.b != nil {
							meta = 8
						}
						if m == 1 {
							b.SetBytes(int64(len(l.w) + len(l.s)*meta))
						}
						run := MatVec
						if m > 1 {
							run = MatMat
						}
						withImpl(b, kind, func() {
							for b.Loop() {
								run(y, sh.n, l.w, cs.c, l.s, l.b, l.x, l.xsum, m, cs.gs)
							}
						})
						report(b, 2*float64(m*sh.n*sh.k))
					})
				}
			}
		}
	}
}

func BenchmarkU8Bits(b *testing.B) {
	for _, kind := range impls() {
		for _, m := range []int{1, 128} {
			for _, sh := range benchShapes() {
				if m > 1 && kind == implGeneric {
					continue
				}
				for _, bits := range []int{2, 3, 4, 5, 6, 8} {
					const gs = 64
					b.Run(fmt.Sprintf("%s/M%d/%dx%d/b%d/g%d", kind, m, sh.n, sh.k, bits, gs), func(b *testing.B) {
						l := newLayer(rand.New(rand.NewPCG(1, 2)), sh.n, sh.k, m, gs, bits)
						l.packed = nil
						y := make([]float32, m*sh.n)
						if m == 1 {
							b.SetBytes(int64(len(l.codes) + len(l.s)*8))
						}
						withImpl(b, kind, func() {
							for b.Loop() {
								MatU8Bits(y, sh.n, l.codes, bits, l.s, l.b, l.x, l.xsum, m, gs)
							}
						})
						report(b, 2*float64(m*sh.n*sh.k))
					})
				}
			}
		}
	}
}

// TestPackedBlocks runs MatMat over many rows with weight blocks down to
// one tile, so rows, weight tiles and blocks all interleave, and expects
// MatVec's bits.
func TestPackedBlocks(t *testing.T) {
	saved := wblockBytes
	defer func() { wblockBytes = saved }()
	for _, kind := range impls() {
		for _, cs := range []struct {
			c  Codes
			gs int
		}{{Affine(3), 256}, {Affine(5), 64}, {Affine(6), 32}, {E2M1, 16}, {E4M3, 32}} {
			const n, m = 11, 23
			k := 4 * cs.gs
			l := newPackedLayer(rand.New(rand.NewPCG(5, uint64(cs.gs))), cs.c, n, k, m, cs.gs)
			withImpl(t, kind, func() {
				wblockBytes = saved
				want := l.run(t, MatVec, m, n)
				for _, xb := range []int{1, 4 * k * 8, saved} {
					wblockBytes = xb
					bitsEqual(t, want, l.run(t, MatMat, m, n), fmt.Sprintf("%s %v g%d block %d", kind, cs.c, cs.gs, xb))
				}
			})
		}
	}
}
