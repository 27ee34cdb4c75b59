package qdot

import (
	"encoding/binary"
	"math"
)

// The portable path. Per group it expands the codes into their float32
// values (exact: centred codes q - c for affine codes), takes the dot
// product with x in eight interleaved lane sums (element i feeds lane i%8)
// reduced pairwise, and adds s·partial to one of four running sums (group g
// to sum g%4). The bias Σ (b + c·s)·xsum runs in a fifth sum (0 without
// biases); the result is ((t0+t1)+(t2+t3)) + bias. Single- and multi-row
// calls of every format all go through dotBlock, so they agree bit for bit.

// decoder expands the codes of one group (a static call, so the scratch it
// writes stays on the stack).
type decoder struct {
	kind decKind
	bits int // bits per code
}

type decKind uint8

const (
	decQ4   decKind = iota // packed nibbles, less 8
	decU8                  // one byte per code, less c
	decBits                // packed LSB-first codes of 2, 3, 5 or 6 bits, less c
	decE2M1                // packed FP4 nibbles
	decE4M3                // FP8 bytes
)

var (
	decodeQ4   = decoder{decQ4, 4}
	decodeU8   = decoder{decU8, 8}
	decodeE2M1 = decoder{decE2M1, 4}
	decodeE4M3 = decoder{decE4M3, 8}
)

// bytes is the size of n codes.
func (d decoder) bytes(n int) int { return n * d.bits / 8 }

// expand writes the values of the len(dst) codes held in src: centred on c
// for affine codes.
func (d decoder) expand(dst []float32, src []byte, c int) {
	switch d.kind {
	case decQ4:
		expandPairs(dst, src, &nibblePairs)
	case decU8:
		expandU8(dst, src, c)
	case decBits:
		expandBits(dst, src, d.bits, c)
	case decE2M1:
		expandPairs(dst, src, &e2m1Pairs)
	case decE4M3:
		expandTable(dst, src, &e4m3Values)
	}
}

// nibblePairs[v] holds the two codes of the packed byte v less 8, low nibble
// first.
var nibblePairs = func() (t [256][2]float32) {
	for v := range t {
		t[v] = [2]float32{float32(v&15) - center4, float32(v>>4) - center4}
	}
	return t
}()

// e2m1Pairs[v] holds the values of the two E2M1 codes of the byte v, low
// nibble first.
var e2m1Pairs = func() (t [256][2]float32) {
	for v := range t {
		t[v] = [2]float32{e2m1Value(v & 15), e2m1Value(v >> 4)}
	}
	return t
}()

// e2m1Value is the value of E2M1 code q: bit 3 the sign, bits 0-2 indexing
// 0, 0.5, 1, 1.5, 2, 3, 4, 6.
func e2m1Value(q int) float32 {
	v := [8]float32{0, 0.5, 1, 1.5, 2, 3, 4, 6}[q&7]
	if q&8 != 0 {
		v = -v
	}
	return v
}

// e4m3Values[q] is the value of E4M3 code q as MLX decodes it: exponent
// bias 7, subnormals m·2^-9, ±480 for 0x7F and 0xFF.
var e4m3Values = func() (t [256]float32) {
	for q := range t {
		e, m := q>>3&15, q&7
		v := float32(m) * 0x1p-9
		if e != 0 {
			v = float32(math.Ldexp(1+float64(m)/8, e-7))
		}
		if q&0x80 != 0 {
			v = -v
		}
		t[q] = v
	}
	return t
}()

// expandPairs decodes len(dst)/2 bytes of two codes each through the table.
func expandPairs(dst []float32, src []byte, tab *[256][2]float32) {
	src = src[:len(dst)/2]
	for i, v := range src {
		*(*[2]float32)(dst[2*i:]) = tab[v]
	}
}

// expandTable decodes len(dst) one-byte codes through the table.
func expandTable(dst []float32, src []byte, tab *[256]float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] = tab[v]
	}
}

// expandU8 converts len(dst) unpacked codes less c.
func expandU8(dst []float32, src []byte, c int) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] = float32(int(v) - c)
	}
}

// expandBits decodes len(dst) (a multiple of 8) codes of the given width
// from the start of the LSB-first bitstream src, less c. Eight codes fill
// exactly bits bytes; src may run on past them.
func expandBits(dst []float32, src []byte, bits, c int) {
	mask := uint64(1)<<bits - 1
	for len(dst) >= 8 {
		v := load8(src, bits)
		d := (*[8]float32)(dst)
		for j := range d {
			d[j] = float32(int(v>>(j*bits)&mask) - c)
		}
		dst, src = dst[8:], src[bits:]
	}
}

// The group dot products below perform the same operations in the same
// order: element i of the group meets x[i] in lane sum i%8, and the eight
// lane sums are reduced pairwise. They differ only in where the (exact)
// code values come from, so they return identical results.

// groupDot returns Σ u[i]·x[i] over one group of expanded codes u (len(u) a
// multiple of 8, x at least as long).
func groupDot(u, x []float32) float32 {
	var a0, a1, a2, a3, a4, a5, a6, a7 float32
	x = x[:len(u)]
	for len(u) >= 8 {
		uu := (*[8]float32)(u)
		xx := (*[8]float32)(x)
		a0 += uu[0] * xx[0]
		a1 += uu[1] * xx[1]
		a2 += uu[2] * xx[2]
		a3 += uu[3] * xx[3]
		a4 += uu[4] * xx[4]
		a5 += uu[5] * xx[5]
		a6 += uu[6] * xx[6]
		a7 += uu[7] * xx[7]
		u, x = u[8:], x[8:]
	}
	return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
}

// groupDotPairs is groupDot on the packed codes w of one group (2·len(w)
// codes), each byte decoded to two values by tab.
func groupDotPairs(w []byte, tab *[256][2]float32, x []float32) float32 {
	var a0, a1, a2, a3, a4, a5, a6, a7 float32
	x = x[:2*len(w)]
	for len(w) >= 4 {
		ww := (*[4]byte)(w)
		xx := (*[8]float32)(x)
		p0, p1, p2, p3 := &tab[ww[0]], &tab[ww[1]], &tab[ww[2]], &tab[ww[3]]
		a0 += p0[0] * xx[0]
		a1 += p0[1] * xx[1]
		a2 += p1[0] * xx[2]
		a3 += p1[1] * xx[3]
		a4 += p2[0] * xx[4]
		a5 += p2[1] * xx[5]
		a6 += p3[0] * xx[6]
		a7 += p3[1] * xx[7]
		w, x = w[4:], x[8:]
	}
	return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
}

// groupDotQ4 is groupDot on the packed 4-bit codes w of one group, less 8.
func groupDotQ4(w []byte, x []float32) float32 { return groupDotPairs(w, &nibblePairs, x) }

// groupDotTable is groupDot on the one-byte codes w of one group, decoded
// by tab.
func groupDotTable(w []byte, tab *[256]float32, x []float32) float32 {
	var a0, a1, a2, a3, a4, a5, a6, a7 float32
	x = x[:len(w)]
	for len(w) >= 8 {
		ww := (*[8]byte)(w)
		xx := (*[8]float32)(x)
		a0 += tab[ww[0]] * xx[0]
		a1 += tab[ww[1]] * xx[1]
		a2 += tab[ww[2]] * xx[2]
		a3 += tab[ww[3]] * xx[3]
		a4 += tab[ww[4]] * xx[4]
		a5 += tab[ww[5]] * xx[5]
		a6 += tab[ww[6]] * xx[6]
		a7 += tab[ww[7]] * xx[7]
		w, x = w[8:], x[8:]
	}
	return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
}

// groupDotBits is groupDot on the len(x) codes of the given width packed
// LSB-first at the start of w, decoded by tab (see bitsTable). w may run on
// past them (to the end of the row): whole words are then read at a time.
func groupDotBits(w []byte, bits int, tab *[64]float32, x []float32) float32 {
	var a0, a1, a2, a3, a4, a5, a6, a7 float32
	_ = w[:len(x)/8*bits]
	m := (uint64(1)<<bits - 1) & 63
	b := uint(bits)
	for len(x) >= 8 {
		v := load8(w, bits)
		xx := (*[8]float32)(x)
		a0 += tab[v&m] * xx[0]
		a1 += tab[v>>(b&63)&m] * xx[1]
		a2 += tab[v>>(2*b&63)&m] * xx[2]
		a3 += tab[v>>(3*b&63)&m] * xx[3]
		a4 += tab[v>>(4*b&63)&m] * xx[4]
		a5 += tab[v>>(5*b&63)&m] * xx[5]
		a6 += tab[v>>(6*b&63)&m] * xx[6]
		a7 += tab[v>>(7*b&63)&m] * xx[7]
		w, x = w[bits:], x[8:]
	}
	return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
}

// bitsTable returns the values q - c of the codes q < 64.
func bitsTable(c int) (t [64]float32) {
	for q := range t {
		t[q] = float32(q - c)
	}
	return t
}

// load8 returns the bits bytes at the start of w (8 codes of that width)
// as a little-endian integer; bytes past them may be included.
func load8(w []byte, bits int) uint64 {
	if len(w) >= 8 {
		return binary.LittleEndian.Uint64(w)
	}
	var v uint64
	for t := bits - 1; t >= 0; t-- {
		v = v<<8 | uint64(w[t])
	}
	return v
}

// groupDotU8 is groupDot on the unpacked codes q of one group, less c.
func groupDotU8(q []byte, c int, x []float32) float32 {
	var a0, a1, a2, a3, a4, a5, a6, a7 float32
	x = x[:len(q)]
	for len(q) >= 8 {
		qq := (*[8]byte)(q)
		xx := (*[8]float32)(x)
		a0 += float32(int(qq[0])-c) * xx[0]
		a1 += float32(int(qq[1])-c) * xx[1]
		a2 += float32(int(qq[2])-c) * xx[2]
		a3 += float32(int(qq[3])-c) * xx[3]
		a4 += float32(int(qq[4])-c) * xx[4]
		a5 += float32(int(qq[5])-c) * xx[5]
		a6 += float32(int(qq[6])-c) * xx[6]
		a7 += float32(int(qq[7])-c) * xx[7]
		q, x = q[8:], x[8:]
	}
	return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
}

// dotBlock computes, for up to blockRows activation rows (x is rows×k, xsum
// rows×ng) against one weight row, dst[r·ldd]; lengths are checked by the
// caller, and b and xsum may be nil (no biases: the bias term is 0). With
// several rows each group is expanded once for all of them.
func dotBlock(d decoder, dst []float32, ldd int, codes []byte, c int, s, b, x, xsum []float32, rows, gs int) {
	var stack [128]float32
	gb := d.bytes(gs)
	ng := len(s)
	k := ng * gs
	var t [blockRows][4]float32
	var bt [64]float32
	if d.kind == decBits {
		bt = bitsTable(c)
	}
	u := stack[:]
	if gs > len(stack) && rows > 1 {
		u = make([]float32, gs)
	}
	u = u[:min(gs, len(u))]
	for g, sg := range s {
		cg, xg := codes[g*gb:(g+1)*gb], x[g*gs:(g+1)*gs]
		if d.kind == decBits {
			cg = codes[g*gb:] // words may reach into the next group
		}
		switch {
		case rows == 1 && d.kind == decQ4:
			// The conversion keeps the compiler from fusing this
			// multiply-add on some targets and not others.
			t[0][g%4] += float32(sg * groupDotQ4(cg, xg))
		case rows == 1 && d.kind == decU8:
			t[0][g%4] += float32(sg * groupDotU8(cg, c, xg))
		case rows == 1 && d.kind == decBits:
			t[0][g%4] += float32(sg * groupDotBits(cg, d.bits, &bt, xg))
		case rows == 1 && d.kind == decE2M1:
			t[0][g%4] += float32(sg * groupDotPairs(cg, &e2m1Pairs, xg))
		case rows == 1 && d.kind == decE4M3:
			t[0][g%4] += float32(sg * groupDotTable(cg, &e4m3Values, xg))
		default:
			d.expand(u, cg, c)
			for r := range rows {
				t[r][g%4] += float32(sg * groupDot(u, x[r*k+g*gs:]))
			}
		}
	}
	finishBlock(dst, ldd, &t, c, s, b, xsum, rows)
}

// blockDot is dotBlock or another path's equivalent.
type blockDot func(d decoder, dst []float32, ldd int, codes []byte, c int, s, b, x, xsum []float32, rows, gs int)

// finishBlock adds the bias term to the four running sums t of each row and
// writes the results of dotBlock.
func finishBlock(dst []float32, ldd int, t *[blockRows][4]float32, c int, s, b, xsum []float32, rows int) {
	ng := len(s)
	cf := float32(c)
	for r := range rows {
		var bias float32
		if b != nil {
			xs := xsum[r*ng : (r+1)*ng]
			for g, bg := range b[:ng] {
				bias += float32((bg + cf*s[g]) * xs[g]) // cf·s is exact
			}
		}
		dst[r*ldd] = ((t[r][0] + t[r][1]) + (t[r][2] + t[r][3])) + bias
	}
}
