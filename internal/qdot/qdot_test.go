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

// impls lists the paths this machine can run: the detected one and every
// lesser one of its architecture down to generic.
func impls() []implKind {
	best := detectImpl()
	if best == implNEON {
		return []implKind{implNEON, implGeneric}
	}
	out := []implKind{}
	for k := best; k >= implGeneric; k-- {
		out = append(out, k)
	}
	return out
}

// withImpl runs f with the dispatch forced to k.
func withImpl(tb testing.TB, k implKind, f func()) {
	tb.Helper()
	saved := impl
	impl = k
	defer func() { impl = saved }()
	f()
}

// layer is one random quantized weight matrix (n rows of k codes) with
// activations (m rows).
type layer struct {
	n, k, m, gs, bits int
	codes             []uint8 // n×k unpacked
	packed            []byte  // n×k/2 (bits ≤ 4 only)
	s, b              []float32
	x, xsum           []float32 // m×k, m×(k/gs)
}

func newLayer(rng *rand.Rand, n, k, m, gs, bits int) *layer {
	ng := k / gs
	l := &layer{n: n, k: k, m: m, gs: gs, bits: bits,
		codes: make([]uint8, n*k), s: make([]float32, n*ng), b: make([]float32, n*ng),
		x: make([]float32, m*k), xsum: make([]float32, m*ng)}
	for i := range l.codes {
		l.codes[i] = uint8(rng.IntN(1 << bits))
	}
	for i := range l.s {
		l.s[i] = float32(0.01 * (1 + 0.1*rng.NormFloat64()))
		l.b[i] = float32(-0.08 * (1 + 0.1*rng.NormFloat64()))
	}
	for i := range l.x {
		l.x[i] = float32(rng.NormFloat64())
	}
	l.sums()
	if bits <= 4 {
		l.packed = pack4(l.codes)
	}
	return l
}

// sums recomputes xsum from x in float32, as a caller would.
func (l *layer) sums() {
	ng := l.k / l.gs
	for i := range l.m {
		for g := range ng {
			var t float32
			for _, v := range l.x[i*l.k+g*l.gs : i*l.k+(g+1)*l.gs] {
				t += v
			}
			l.xsum[i*ng+g] = t
		}
	}
}

func pack4(codes []uint8) []byte {
	p := make([]byte, len(codes)/2)
	for i := range p {
		p[i] = codes[2*i] | codes[2*i+1]<<4
	}
	return p
}

func (l *layer) ng() int               { return l.k / l.gs }
func (l *layer) w(j int) []byte        { return l.packed[j*l.k/2 : (j+1)*l.k/2] }
func (l *layer) q(j int) []uint8       { return l.codes[j*l.k : (j+1)*l.k] }
func (l *layer) sj(j int) []float32    { return l.s[j*l.ng() : (j+1)*l.ng()] }
func (l *layer) bj(j int) []float32    { return l.b[j*l.ng() : (j+1)*l.ng()] }
func (l *layer) xi(i int) []float32    { return l.x[i*l.k : (i+1)*l.k] }
func (l *layer) xsumi(i int) []float32 { return l.xsum[i*l.ng() : (i+1)*l.ng()] }
func (l *layer) ref(i, j int) float64 { // Σ x·(s·q + b) in float64
	var t float64
	for kk, c := range l.q(j) {
		g := kk / l.gs
		t += float64(l.x[i*l.k+kk]) * (float64(l.s[j*l.ng()+g])*float64(c) + float64(l.b[j*l.ng()+g]))
	}
	return t
}

// relErr is the normwise relative error ‖got − want‖₂ / ‖want‖₂.

func bitsEqual(t *testing.T, want, got []float32, msg string) {
	t.Helper()
	for i := range want {
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			t.Fatalf("%s: element %d: %v (%#08x) != %v (%#08x)", msg, i,
				want[i], math.Float32bits(want[i]), got[i], math.Float32bits(got[i]))
		}
	}
}

type shape struct{ k, gs int }

func shapes() []shape {
	var out []shape
	for _, k := range []int{32, 64, 96, 128, 4096 + 32, 4096, 16384} {
		for _, gs := range []int{32, 64, 128} {
			if k%gs == 0 {
				out = append(out, shape{k, gs})
			}
		}
	}
	return append(out, shape{768, 256}, shape{96, 96}) // other multiples of 32
}

func TestImpl(t *testing.T) {
	assert.Contains(t, []string{"avx512", "avx2", "neon", "generic"}, Impl())
	t.Logf("detected path: %s", Impl())
	withImpl(t, implGeneric, func() { assert.Equal(t, "generic", Impl()) })
}

// TestAccuracy checks every entry point against the float64 reference and
// the bit-identity properties on the same data.
func TestAccuracy(t *testing.T) {
	for _, k := range impls() {
		for _, sh := range shapes() {
			t.Run(fmt.Sprintf("%s/k%d/g%d", k, sh.k, sh.gs), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(sh.k), uint64(sh.gs)))
				const n, m = 16, 7
				l := newLayer(rng, n, sh.k, m, sh.gs, 4)
				withImpl(t, k, func() {
					want := make([]float64, 0, n*m)
					q4 := make([]float32, 0, n*m)
					u8 := make([]float32, 0, n*m)
					for j := range n {
						for i := range m {
							want = append(want, l.ref(i, j))
							q4 = append(q4, DotQ4(l.w(j), l.sj(j), l.bj(j), l.xi(i), l.xsumi(i), sh.gs))
							u8 = append(u8, DotU8(l.q(j), l.sj(j), l.bj(j), l.xi(i), l.xsumi(i), sh.gs))
						}
					}
					e := quant.RelErr(q4, want)
					t.Logf("relerr %.3g", e)
					assert.LessOrEqual(t, e, 1e-6, "DotQ4 normwise relative error")
					bitsEqual(t, q4, u8, "DotU8 vs DotQ4")

					// Multi-row forms over row counts around the blocking.
					for _, rows := range []int{1, 2, 3, 4, 5, 7} {
						dq := make([]float32, rows)
						du := make([]float32, rows)
						for j := range n {
							DotQ4Rows(dq, l.w(j), l.sj(j), l.bj(j), l.x[:rows*sh.k], l.xsum[:rows*l.ng()], sh.gs)
							DotU8Rows(du, l.q(j), l.sj(j), l.bj(j), l.x[:rows*sh.k], l.xsum[:rows*l.ng()], sh.gs)
							single := q4[j*m : j*m+rows]
							bitsEqual(t, single, dq, fmt.Sprintf("DotQ4Rows(%d rows) vs DotQ4, weight row %d", rows, j))
							bitsEqual(t, single, du, fmt.Sprintf("DotU8Rows(%d rows) vs DotQ4, weight row %d", rows, j))
						}
					}

					// Whole-layer forms: every (m, n) split of the tiles, with
					// an output stride wider than n.
					for _, mm := range []int{1, 2, 4, 5, 7} {
						for _, nn := range []int{1, 2, 3, 4, 5, 9, 16} {
							ldy := nn + 3
							yq := make([]float32, (mm-1)*ldy+nn)
							yu := make([]float32, (mm-1)*ldy+nn)
							ng := l.ng()
							MatQ4(yq, ldy, l.packed[:nn*sh.k/2], l.s[:nn*ng], l.b[:nn*ng], l.x[:mm*sh.k], l.xsum[:mm*ng], mm, sh.gs)
							MatU8(yu, ldy, l.codes[:nn*sh.k], l.s[:nn*ng], l.b[:nn*ng], l.x[:mm*sh.k], l.xsum[:mm*ng], mm, sh.gs)
							for i := range mm {
								for j := range nn {
									want := q4[j*m+i]
									msg := fmt.Sprintf("Mat m=%d n=%d: y[%d][%d]", mm, nn, i, j)
									require.Equal(t, math.Float32bits(want), math.Float32bits(yq[i*ldy+j]), "MatQ4 %s", msg)
									require.Equal(t, math.Float32bits(want), math.Float32bits(yu[i*ldy+j]), "MatU8 %s", msg)
								}
							}
						}
					}
				})
			})
		}
	}
}

// TestU8Bits covers unpacked codes of other widths through MatU8Bits: the
// float64 reference, every split of the call, and MatU8 for bits = 4.
func TestU8Bits(t *testing.T) {
	for _, k := range impls() {
		for _, bits := range []int{1, 2, 3, 4, 5, 6, 8} {
			for _, sh := range []shape{{64, 32}, {4096 + 64, 64}, {1024, 128}, {16384, 32}} {
				t.Run(fmt.Sprintf("%s/b%d/k%d/g%d", k, bits, sh.k, sh.gs), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(bits), uint64(sh.k)))
					const n, m = 9, 5
					l := newLayer(rng, n, sh.k, m, sh.gs, bits)
					// Same weight range as the 4-bit data: s·q + b in ±0.08.
					for i := range l.s {
						l.s[i] = float32(0.16 / float64(int(1)<<bits))
					}
					ng := l.ng()
					withImpl(t, k, func() {
						y := make([]float32, m*n)
						MatU8Bits(y, n, l.codes, bits, l.s, l.b, l.x, l.xsum, m, sh.gs)
						var want []float64
						for i := range m {
							for j := range n {
								want = append(want, l.ref(i, j))
								var one [1]float32
								MatU8Bits(one[:], 1, l.q(j), bits, l.sj(j), l.bj(j), l.xi(i), l.xsumi(i), 1, sh.gs)
								require.Equal(t, math.Float32bits(one[0]), math.Float32bits(y[i*n+j]), "y[%d][%d]", i, j)
							}
						}
						assert.LessOrEqual(t, quant.RelErr(y, want), 1e-6)
						if bits == 4 {
							y4 := make([]float32, m*n)
							MatU8(y4, n, l.codes, l.s, l.b, l.x, l.xsum[:m*ng], m, sh.gs)
							bitsEqual(t, y4, y, "MatU8 vs MatU8Bits(4)")
						}
					})
				})
			}
		}
	}
}

// TestUnaligned runs on slices starting at odd offsets inside larger ones
// and expects the same bits as on fresh copies.
func TestUnaligned(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	const k, gs, m = 4096 + 96, 32, 5
	l := newLayer(rng, 1, k, m, gs, 4)
	ng := k / gs
	for _, kind := range impls() {
		t.Run(kind.String(), func(t *testing.T) {
			withImpl(t, kind, func() {
				want := make([]float32, m)
				DotQ4Rows(want, l.w(0), l.s, l.b, l.x, l.xsum, gs)
				for _, off := range []int{1, 3, 5, 17} {
					wb := make([]byte, len(l.packed)+off+3)
					w := wb[off : off+len(l.packed)]
					copy(w, l.packed)
					qb := make([]byte, len(l.codes)+off+3)
					q := qb[off : off+len(l.codes)]
					copy(q, l.codes)
					xb := make([]float32, len(l.x)+off+3)
					x := xb[off : off+len(l.x)]
					copy(x, l.x)
					sb := make([]float32, (2+m)*ng+2*off+3)
					s := sb[off : off+ng]
					b := sb[2*off+ng : 2*off+2*ng]
					xs := sb[2*off+2*ng : 2*off+2*ng+m*ng]
					copy(s, l.s)
					copy(b, l.b)
					copy(xs, l.xsum)
					got := make([]float32, m)
					for i := range m {
						got[i] = DotQ4(w, s, b, x[i*k:(i+1)*k], xs[i*ng:(i+1)*ng], gs)
					}
					bitsEqual(t, want, got, fmt.Sprintf("DotQ4 offset %d", off))
					DotQ4Rows(got, w, s, b, x, xs, gs)
					bitsEqual(t, want, got, fmt.Sprintf("DotQ4Rows offset %d", off))
					DotU8Rows(got, q, s, b, x, xs, gs)
					bitsEqual(t, want, got, fmt.Sprintf("DotU8Rows offset %d", off))
					MatQ4(got, 1, w, s, b, x, xs, m, gs)
					bitsEqual(t, want, got, fmt.Sprintf("MatQ4 offset %d", off))
				}
			})
		})
	}
}

// TestNonFinite checks that NaN and ±Inf in x reach the output.
func TestNonFinite(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	const k, gs, m = 640, 64, 5
	for _, kind := range impls() {
		for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
			for _, pos := range []int{0, 31, 33, 319, k - 1} {
				t.Run(fmt.Sprintf("%s/%v/%d", kind, bad, pos), func(t *testing.T) {
					l := newLayer(rng, 1, k, m, gs, 4)
					l.x[2*k+pos] = bad // row 2 only
					l.sums()
					withImpl(t, kind, func() {
						got := make([]float32, m)
						DotQ4Rows(got, l.w(0), l.s, l.b, l.x, l.xsum, gs)
						for i, v := range got {
							single := DotU8(l.q(0), l.s, l.b, l.xi(i), l.xsumi(i), gs)
							if i == 2 {
								assert.False(t, isFinite(v), "rows: row %d = %v", i, v)
								assert.False(t, isFinite(single), "single: row %d = %v", i, single)
							} else {
								assert.True(t, isFinite(v), "rows: row %d = %v", i, v)
							}
						}
					})
				})
			}
		}
	}
}

func isFinite(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }

// TestMatBlocks runs MatQ4 over many rows with weight blocks down to one
// tile, so rows, weight tiles and blocks all interleave.
func TestMatBlocks(t *testing.T) {
	saved := wblockBytes
	defer func() { wblockBytes = saved }()
	rng := rand.New(rand.NewPCG(5, 6))
	const n, k, m, gs = 11, 256, 23, 64
	l := newLayer(rng, n, k, m, gs, 4)
	for _, kind := range impls() {
		withImpl(t, kind, func() {
			for _, xb := range []int{1, 4 * k * 8, saved} {
				wblockBytes = xb
				y := make([]float32, m*n)
				MatQ4(y, n, l.packed, l.s, l.b, l.x, l.xsum, m, gs)
				for i := range m {
					for j := range n {
						want := DotQ4(l.w(j), l.sj(j), l.bj(j), l.xi(i), l.xsumi(i), gs)
						require.Equal(t, math.Float32bits(want), math.Float32bits(y[i*n+j]), "%s xblock %d: y[%d][%d]", kind, xb, i, j)
					}
				}
			}
		})
	}
}

func TestGroupSums(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, 3*256)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	xs := make([]float32, len(x)/64)
	GroupSums(xs, x, 64)
	for g := range xs {
		var want float64
		for _, v := range x[g*64 : (g+1)*64] {
			want += float64(v)
		}
		assert.Equal(t, float32(want), xs[g])
	}
	assert.Panics(t, func() { GroupSums(xs[:1], x, 64) })
	assert.Panics(t, func() { GroupSums(xs, x, 48) })
}

func TestPanics(t *testing.T) {
	w := make([]byte, 32)
	q := make([]uint8, 64)
	f := func(n int) []float32 { return make([]float32, n) }
	cases := []struct {
		name string
		call func()
	}{
		{"gs not multiple of 32", func() { DotQ4(w, f(4), f(4), f(64), f(4), 16) }},
		{"gs zero", func() { DotU8(q, f(1), f(1), f(64), f(1), 0) }},
		{"k not multiple of gs", func() { DotU8(q[:48], f(1), f(1), f(48), f(1), 32) }},
		{"empty", func() { DotQ4(nil, nil, nil, nil, nil, 32) }},
		{"short x", func() { DotQ4(w, f(2), f(2), f(63), f(2), 32) }},
		{"short s", func() { DotQ4(w, f(1), f(2), f(64), f(2), 32) }},
		{"short xsum", func() { DotU8(q, f(2), f(2), f(64), f(1), 32) }},
		{"rows x", func() { DotQ4Rows(f(3), w, f(2), f(2), f(64*3-1), f(6), 32) }},
		{"rows xsum", func() { DotU8Rows(f(3), q, f(2), f(2), f(64*3), f(5), 32) }},
		{"rows s", func() { DotQ4Rows(f(3), w, f(1), f(2), f(64*3), f(6), 32) }},
		{"rows b", func() { DotU8Rows(f(3), q, f(2), f(3), f(64*3), f(6), 32) }},
		{"rows none", func() { DotQ4Rows(nil, w, f(2), f(2), nil, nil, 32) }},
		{"mat m", func() { MatQ4(f(4), 2, w, f(2), f(2), f(64), f(2), 0, 32) }},
		{"mat x", func() { MatQ4(f(4), 2, w, f(2), f(2), f(65), f(2), 1, 32) }},
		{"mat codes", func() { MatQ4(f(4), 2, w[:31], f(2), f(2), f(64), f(2), 1, 32) }},
		{"mat ldy", func() { MatU8(f(4), 0, q, f(2), f(2), f(64), f(2), 1, 32) }},
		{"mat y", func() { MatU8(f(1), 1, q, f(4), f(4), f(128), f(4), 2, 32) }},
		{"bits 0", func() { MatU8Bits(f(1), 1, q, 0, f(2), f(2), f(64), f(2), 1, 32) }},
		{"bits 9", func() { MatU8Bits(f(1), 1, q, 9, f(2), f(2), f(64), f(2), 1, 32) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { assert.Panics(t, c.call) })
	}
}

// Benchmarks. Bytes are weight codes plus f32 scales and biases, as the C
// peer counts them; GFLOP/s counts 2 flops per weight per activation row.

var sink float32

func benchLayer(n, k, m, gs int) *layer {
	return newLayer(rand.New(rand.NewPCG(1, 2)), n, k, m, gs, 4)
}

func benchShapes() []struct{ n, k int } {
	return []struct{ n, k int }{{4096, 4096}, {14336, 4096}}
}

func report(b *testing.B, flops float64) {
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func BenchmarkDotQ4(b *testing.B) {
	for _, kind := range impls() {
		for _, sh := range benchShapes() {
			for _, gs := range []int{32, 64} {
				b.Run(fmt.Sprintf("%s/%dx%d/g%d", kind, sh.n, sh.k, gs), func(b *testing.B) {
					l := benchLayer(sh.n, sh.k, 1, gs)
					l.codes = nil
					b.SetBytes(int64(sh.n*sh.k/2 + sh.n*l.ng()*8))
					withImpl(b, kind, func() {
						for b.Loop() {
							for j := range sh.n {
								sink += DotQ4(l.w(j), l.sj(j), l.bj(j), l.x, l.xsum, gs)
							}
						}
					})
					report(b, 2*float64(sh.n*sh.k))
				})
			}
		}
	}
}

func BenchmarkDotU8(b *testing.B) {
	for _, kind := range impls() {
		for _, gs := range []int{32, 64} {
			const n, k = 4096, 4096
			b.Run(fmt.Sprintf("%s/%dx%d/g%d", kind, n, k, gs), func(b *testing.B) {
				l := benchLayer(n, k, 1, gs)
				b.SetBytes(int64(n*k + n*l.ng()*8))
				withImpl(b, kind, func() {
					for b.Loop() {
						for j := range n {
							sink += DotU8(l.q(j), l.sj(j), l.bj(j), l.x, l.xsum, gs)
						}
					}
				})
				report(b, 2*float64(n*k))
			})
		}
	}
}

// BenchmarkMatQ4 runs whole layers through MatQ4: M=1 (GEMV, bytes are
// weights plus f32 metadata) and M=128.
func BenchmarkMatQ4(b *testing.B) {
	for _, kind := range impls() {
		for _, m := range []int{1, 128} {
			for _, sh := range benchShapes() {
				if m > 1 && (kind == implGeneric || sh.n > 4096) {
					continue // minutes per iteration
				}
				for _, gs := range []int{32, 64} {
					b.Run(fmt.Sprintf("%s/M%d/%dx%d/g%d", kind, m, sh.n, sh.k, gs), func(b *testing.B) {
						l := benchLayer(sh.n, sh.k, m, gs)
						l.codes = nil
						y := make([]float32, m*sh.n)
						if m == 1 {
							b.SetBytes(int64(sh.n*sh.k/2 + sh.n*l.ng()*8))
						}
						withImpl(b, kind, func() {
							for b.Loop() {
								MatQ4(y, sh.n, l.packed, l.s, l.b, l.x, l.xsum, m, gs)
							}
						})
						report(b, 2*float64(m*sh.n*sh.k))
					})
				}
			}
		}
	}
}

// BenchmarkM128 compares ways to run a 4096×4096 layer against 128
// activation rows: MatQ4, DotQ4Rows per weight row, and 128 DotQ4 calls per
// weight row.
func BenchmarkM128(b *testing.B) {
	const n, k, m = 4096, 4096, 128
	for _, kind := range impls() {
		if kind == implGeneric {
			continue
		}
		for _, gs := range []int{32, 64} {
			l := benchLayer(n, k, m, gs)
			l.codes = nil
			for _, mode := range []string{"MatQ4", "DotQ4Rows", "DotQ4"} {
				b.Run(fmt.Sprintf("%s/%s/g%d", kind, mode, gs), func(b *testing.B) {
					y := make([]float32, m*n)
					dst := make([]float32, m)
					withImpl(b, kind, func() {
						for b.Loop() {
							switch mode {
							case "MatQ4":
								MatQ4(y, n, l.packed, l.s, l.b, l.x, l.xsum, m, gs)
							case "DotQ4Rows":
								for j := range n {
									DotQ4Rows(dst, l.w(j), l.sj(j), l.bj(j), l.x, l.xsum, gs)
								}
							default:
								for j := range n {
									for i := range m {
										dst[i] = DotQ4(l.w(j), l.sj(j), l.bj(j), l.xi(i), l.xsumi(i), gs)
									}
								}
							}
						}
					})
					report(b, 2*float64(n*k*m))
				})
			}
		}
	}
}
