package qdot

// The portable path. Per group it expands the centred codes q - c into
// float32 (exact), takes the dot product with x in eight interleaved lane
// sums (element i feeds lane i%8) reduced pairwise, and adds s·partial to one
// of four running sums (group g to sum g%4). The bias Σ (b + c·s)·xsum runs
// in a fifth sum; the result is ((t0+t1)+(t2+t3)) + bias. Single- and
// multi-row calls all go through dotBlock, so they agree bit for bit.

// decoder expands the codes of one group (a static call, so the scratch it
// writes stays on the stack).
type decoder struct {
	packed   bool // 4-bit pairs, else one code per byte
	num, den int  // bytes per code = num/den
}

var (
	decodeQ4 = decoder{true, 1, 2}
	decodeU8 = decoder{false, 1, 1}
)

// expand writes the len(dst) centred codes held in src.
func (d decoder) expand(dst []float32, src []byte, c int) {
	if d.packed {
		expandQ4(dst, src)
	} else {
		expandU8(dst, src, c)
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

// expandQ4 decodes len(dst)/2 packed bytes (centre 8).
func expandQ4(dst []float32, src []byte) {
	src = src[:len(dst)/2]
	for i, v := range src {
		*(*[2]float32)(dst[2*i:]) = nibblePairs[v]
	}
}

// expandU8 converts len(dst) unpacked codes less c.
func expandU8(dst []float32, src []byte, c int) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] = float32(int(v) - c)
	}
}

// The three group dot products below perform the same operations in the same
// order: element i of the group meets x[i] in lane sum i%8, and the eight
// lane sums are reduced pairwise. They differ only in where the (exact)
// centred code values come from, so they return identical results.

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

// groupDotQ4 is groupDot on the packed codes w of one group (2·len(w) codes).
func groupDotQ4(w []byte, x []float32) float32 {
	var a0, a1, a2, a3, a4, a5, a6, a7 float32
	x = x[:2*len(w)]
	for len(w) >= 4 {
		ww := (*[4]byte)(w)
		xx := (*[8]float32)(x)
		p0, p1, p2, p3 := &nibblePairs[ww[0]], &nibblePairs[ww[1]], &nibblePairs[ww[2]], &nibblePairs[ww[3]]
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
// caller. With several rows each group is expanded once for all of them.
func dotBlock(d decoder, dst []float32, ldd int, codes []byte, c int, s, b, x, xsum []float32, gs int) {
	var stack [128]float32
	gb := gs * d.num / d.den
	ng := len(s)
	k := ng * gs
	rows := len(xsum) / ng
	var t [blockRows][4]float32
	if rows == 1 {
		t0 := &t[0]
		for g, sg := range s {
			cg, xg := codes[g*gb:(g+1)*gb], x[g*gs:(g+1)*gs]
			var p float32
			if d.packed {
				p = groupDotQ4(cg, xg)
			} else {
				p = groupDotU8(cg, c, xg)
			}
			// The conversion keeps the compiler from fusing this
			// multiply-add on some targets and not others.
			t0[g%4] += float32(sg * p)
		}
	} else {
		u := stack[:]
		if gs > len(stack) {
			u = make([]float32, gs)
		}
		u = u[:gs]
		for g, sg := range s {
			d.expand(u, codes[g*gb:(g+1)*gb], c)
			for r := range rows {
				t[r][g%4] += float32(sg * groupDot(u, x[r*k+g*gs:]))
			}
		}
	}
	cf := float32(c)
	for r := range rows {
		var bias float32
		xs := xsum[r*ng : (r+1)*ng]
		for g, bg := range b[:ng] {
			bias += float32((bg + cf*s[g]) * xs[g]) // cf·s is exact
		}
		dst[r*ldd] = ((t[r][0] + t[r][1]) + (t[r][2] + t[r][3])) + bias
	}
}
