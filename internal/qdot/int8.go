package qdot

import (
	"fmt"
	"math"
	"sync"
)

// tScratch holds the tiles' scratch between calls.
var tScratch = sync.Pool{New: func() any { return new([]float32) }}

// Int8Acts holds activation rows quantized to integers for MatInt8: within
// each group of gs values along k, x ≈ d·q with q an integer in [−L, L] and
// d = max|x|/L, L = 127 (int8) for 2- and 4-bit codes, whose products go
// through byte multiplies, and L = 2047 (12 bits, held in int16) for the
// other widths, whose products go through 16-bit multiplies at the same
// cost and so take the finer step; with the exact group sums Σx of
// the bias fold and the sums of what the rounding left, e = Σx − d·Σq,
// times the codes' centre. The integers are laid out for the kernels of one
// code format and one path (see Quantize), so an Int8Acts serves MatInt8
// calls of the codes it was quantized for.
type Int8Acts struct {
	m, k, gs int
	c        Codes
	impl     implKind
	layout   actLayout
	q        []byte    // m rows of ld bytes: int8 or little-endian int16 elements
	ld       int       // bytes per row of q
	d        []float32 // m×(k/gs) steps, divided by layout.scale
	sum      []float32 // m×(k/gs) group sums
	rest     []float32 // m×(k/gs) centre·(Σx − d·Σq)
}

// actLayout is the order and width in which a path's kernels read the
// quantized values of each step of 32: perm[p] is the position along k of
// the value at element p of the step; wide kernels read int16 elements of
// up to ±2047, the others int8 of up to ±127; scale is a factor of the
// codes as the kernels decode them, divided out of the steps d.
type actLayout struct {
	perm  *[32]uint8
	wide  bool
	scale float32
}

// wideActs reports whether the integer kernels of codes c take 12-bit
// activations in int16 (all widths but 2 and 4 bits).
func wideActs(c Codes) bool { return c.bits != 2 && c.bits != 4 }

// levels is L, the largest quantized magnitude of layout l.
func (l actLayout) levels() float32 {
	if l.wide {
		return 2047
	}
	return 127
}

// natural is the identity order of the portable path.
var natural = func() (p [32]uint8) {
	for i := range p {
		p[i] = uint8(i)
	}
	return p
}()

// Quantize quantizes the m rows of x (row-major, k = len(x)/m values each)
// in groups of gs for MatInt8 with codes c on the path in use, reusing a's
// buffers. c must be affine; gs must be a positive multiple of 32 dividing k.
func (a *Int8Acts) Quantize(x []float32, m, gs int, c Codes) {
	if c.kind != kindAffine {
		panic(fmt.Sprintf("qdot: no integer kernels for %v codes", c))
	}
	if m <= 0 || len(x)%m != 0 {
		panic(fmt.Sprintf("qdot: %d activation values do not make %d rows", len(x), m))
	}
	k := len(x) / m
	ng := checkK(k, gs)
	a.m, a.k, a.gs, a.c, a.impl = m, k, gs, c, impl
	a.layout = int8Layout(impl, c)
	a.ld = k
	if a.layout.wide {
		a.ld = 2 * k
	}
	a.q = grow(a.q, m*a.ld)
	a.d = growF(a.d, m*ng)
	a.sum = growF(a.sum, m*ng)
	a.rest = growF(a.rest, m*ng)
	c0 := float64(c.center())
	for i := range m {
		for g := range ng {
			at := i*ng + g
			xg := x[i*k+g*gs : i*k+(g+1)*gs]
			d, sum, rest := quantizeGroup(a.q[i*a.ld+g*gs*elemBytes(a.layout):], xg, a.layout)
			a.d[at], a.sum[at], a.rest[at] = d, sum, float32(c0*rest)
		}
	}
}

// quantizeGroup writes the integers of one group into dst in layout l and
// returns d/l.scale, the group sum and what the rounding left of it.
func quantizeGroup(dst []byte, x []float32, l actLayout) (d, sum float32, rest float64) {
	var amax float32
	var t float64
	for _, v := range x {
		amax = max(amax, abs32(v))
		t += float64(v)
	}
	if amax == 0 || amax != amax || amax > math.MaxFloat32 {
		// Zeros; and for non-finite values, integers that say nothing,
		// with a step that makes every product non-finite.
		clear(dst[:len(x)*elemBytes(l)])
		return amax * 0 / 127, float32(t), 0
	}
	inv := l.levels() / amax
	var qsum int
	for s := 0; s < len(x); s += 32 {
		for p, pos := range l.perm {
			v := roundInt(x[s+int(pos)] * inv)
			qsum += int(v)
			if l.wide {
				dst[2*(s+p)] = byte(v)
				dst[2*(s+p)+1] = byte(v >> 8)
			} else {
				dst[s+p] = byte(v)
			}
		}
	}
	d = amax / l.levels()
	return d / l.scale, float32(t), t - float64(d)*float64(qsum)
}

// roundInt rounds v, within ±2047, to the nearest integer, ties to even:
// adding 1.5·2^23 leaves the integer in the low mantissa bits.
func roundInt(v float32) int16 {
	return int16(math.Float32bits(float32(v+0x1.8p23)) - 0x4B400000)
}

func elemBytes(l actLayout) int {
	if l.wide {
		return 2
	}
	return 1
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

func growF(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// MatInt8 computes a whole layer of affine codes c on activations quantized
// by a.Quantize with the same codes, in integers:
//
//	y[i·ldy + j] = Σ_g s[j,g]·d[i,g]·Σ_{k∈g} q[j,k]·xq[i,k] + b[j,g]·Σ_{k∈g} x[i,k] + s[j,g]·e[i,g]
//
// for the a.m activation rows and the n weight rows (w is n rows of
// c.RowBytes(k) bytes as stored, s and b are n×(k/gs) float32); n follows
// from the lengths, y needs ldy ≥ n and (m−1)·ldy + n elements. The
// products of the unsigned codes are exact in int32, and the last term (e
// as in Int8Acts) puts back what rounding took from c·Σx, so the error is
// that of the centred codes q − c against the rounded activations, as if
// the weights had been centred: about 0.23% of a group's largest activation
// per element for int8, 1/16 of that for 12 bits. No byte outside the slices
// is read.
func MatInt8(y []float32, ldy int, w []byte, c Codes, s, b []float32, a *Int8Acts) {
	if a.c != c || a.impl != impl {
		panic(fmt.Sprintf("qdot: activations quantized for %v on %v, used for %v on %v", a.c, a.impl, c, impl))
	}
	m, k, gs := a.m, a.k, a.gs
	ng := k / gs
	n := len(s) / ng
	rb := c.RowBytes(k)
	switch {
	case n == 0 || len(s) != n*ng || len(b) != n*ng || len(w) != n*rb:
		panic(fmt.Sprintf("qdot: lengths w=%d s=%d b=%d do not fit %v codes with k=%d gs=%d", len(w), len(s), len(b), c, k, gs))
	case ldy < n || len(y) < (m-1)*ldy+n:
		panic(fmt.Sprintf("qdot: output of %d values with stride %d is too small for %d×%d", len(y), ldy, m, n))
	}
	if ks := int8KernelsFor(impl, c); ks != nil {
		one, rows4 := ks.one, ks.rows4
		if gs == 32 {
			one, rows4 = ks.one32, ks.rows432
		}
		tp := tScratch.Get().(*[]float32)
		*tp = growF(*tp, blockRows*ng)
		t := *tp
		full := m - m%blockRows
		for i := 0; i < full; i += blockRows {
			rows4(&w[0], &s[0], &b[0], &a.q[i*a.ld], &a.d[i*ng], &a.sum[i*ng], &a.rest[i*ng], &t[0], ng, gs/32, n, a.ld, &y[i*ldy], ldy)
		}
		for i := full; i < m; i++ {
			one(&w[0], &s[0], &b[0], &a.q[i*a.ld], &a.d[i*ng], &a.sum[i*ng], &a.rest[i*ng], &t[0], ng, gs/32, n, a.ld, &y[i*ldy], ldy)
		}
		tScratch.Put(tp)
		return
	}
	matInt8Generic(y, ldy, w, int(c.bits), s, b, a, n)
}

// int8Kernel is one assembly tile of MatInt8: R activation rows × n weight
// rows, out[r·ldo + j] for r < R, j < n, from n consecutive weight rows of
// codes at w with their scales and biases s, b (rows ng apart), quantized
// activation rows at x (ldx bytes apart) with their steps d, group sums xs
// and rests xr (rows ng apart), in groups of cpg steps of 32 codes; t is a
// scratch of R·ng float32.
type int8Kernel func(w *byte, s, b *float32, x *byte, d, xs, xr, t *float32, ng, cpg, n, ldx int, out *float32, ldo int)

// int8Tiles holds the 1×n and 4×n tiles of one path and code width, for
// groups of any number of steps and of one (g32).
type int8Tiles struct{ one, rows4, one32, rows432 int8Kernel }
