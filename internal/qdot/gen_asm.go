//go:build ignore

// gen_asm writes kernels_avx512_amd64.s, kernels_avx2_amd64.s and
// kernels_decl_amd64.go: register tiles of R activation rows × C weight rows
// for every code format (packed 4-bit, unpacked bytes, the packed affine
// widths 2, 3, 5 and 6, E2M1, E4M3, and codes expanded to float32), and the
// expanders that write codes as float32 for the float tiles. Every tile
// performs, for each (activation row, weight row) pair, exactly the same
// float operations in the same order (the canonical sequence documented in
// the generated files), so all tiles agree bit for bit whatever the code
// format, as long as the decoded values agree. Run `go generate` in this
// directory (the directive is in kernels_amd64.go).
package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strings"
)

type isa struct {
	name   string // "AVX512" or "AVX2"
	vreg   string // "Z" or "Y"
	nvec   int    // vector registers
	lanes  int    // float32 lanes
	tsplit int    // running sums per pair: groups alternate between them
}

var (
	avx512 = isa{"AVX512", "Z", 32, 16, 2}
	avx2   = isa{"AVX2", "Y", 16, 8, 1}
)

// cfmt is a code format: how one weight row's codes are stored and decoded.
type cfmt struct {
	name  string // kernel name prefix
	bits  int    // bits per code (32 for expanded float32 codes)
	chunk int    // codes per step of the inner loop: 32, or 16 for groups of 16
}

var (
	fQ4    = cfmt{"q4", 4, 32}    // packed nibbles, centre 8 (in the table)
	fU8    = cfmt{"u8", 8, 32}    // one byte per code, centre c
	fA2    = cfmt{"a2", 2, 32}    // packed 2-bit, centre 2
	fA3    = cfmt{"a3", 3, 32}    // packed 3-bit, centre 4
	fA5    = cfmt{"a5", 5, 32}    // packed 5-bit, centre 16
	fA6    = cfmt{"a6", 6, 32}    // packed 6-bit, centre 32
	fE2M1  = cfmt{"e2m1", 4, 32}  // packed FP4 E2M1
	fE2M1h = cfmt{"e2m1h", 4, 16} // the same in 16-code steps
	fE4M3  = cfmt{"e4m3", 8, 32}  // one FP8 E4M3 byte per code
	fF32   = cfmt{"f32", 32, 32}  // expanded float32
	fF32h  = cfmt{"f32h", 32, 16} // the same in 16-code steps
	packed = []cfmt{fA2, fA3, fA5, fA6, fE2M1, fE2M1h, fE4M3}
)

// chunkBytes is the size of one inner-loop step of codes.
func (f cfmt) chunkBytes() int { return f.chunk * f.bits / 8 }

// tile is R activation rows × C weight rows; tmem keeps the running sums T
// in the stack frame instead of registers (for tiles too big for both).
type tile struct {
	r, c int
	tmem bool
}

type gen struct {
	b   bytes.Buffer
	isa isa
	fmt cfmt
	t   tile
	lbl int
	dat *datas
}

func (g *gen) p(format string, args ...any) { fmt.Fprintf(&g.b, format+"\n", args...) }
func (g *gen) i(op string, args ...string) {
	g.p("\t%-15s %s", op, strings.Join(args, ", "))
}
func (g *gen) v(n int) string { return fmt.Sprintf("%s%d", g.isa.vreg, n) }
func (g *gen) x(n int) string { return fmt.Sprintf("X%d", n) }
func (g *gen) y(n int) string { return fmt.Sprintf("Y%d", n) }

// row addresses base + idx·stride + off, with stride in s1 and 3·stride in s3.
func row(off int, base, s1, s3 string, idx int) string {
	o := ""
	if off != 0 {
		o = fmt.Sprint(off)
	}
	switch idx {
	case 0:
		return fmt.Sprintf("%s(%s)", o, base)
	case 1:
		return fmt.Sprintf("%s(%s)(%s*1)", o, base, s1)
	case 2:
		return fmt.Sprintf("%s(%s)(%s*2)", o, base, s1)
	case 3:
		return fmt.Sprintf("%s(%s)(%s*1)", o, base, s3)
	}
	panic("row index")
}

// GPRs: SI codes, DX s, DI x, CX groups, BX cpg, AX chunk counter,
// R8/R9 weight-row stride (bytes) and 3×, R10/R11 ng·4 and 3× (rows of s, b,
// xsum), R12/R13 x-row stride (bytes) and 3×.
func (g *gen) wAddr(off, j int) string  { return row(off, "SI", "R8", "R9", j) }
func (g *gen) sAddr(off, j int) string  { return row(off, "DX", "R10", "R11", j) }
func (g *gen) xAddr(off, r int) string  { return row(off, "DI", "R12", "R13", r) }
func (g *gen) xsAddr(off, r int) string { return row(off, "DI", "R10", "R11", r) }

// datas collects the read-only vectors of one file.
type datas struct {
	order []string
	text  map[string]string
}

// vec registers a vector constant (the ISA's width) named sym, described
// by comment, and returns its operand.
func (d *datas) vec(sym, comment string, b []byte) string {
	if _, ok := d.text[sym]; !ok {
		var t strings.Builder
		fmt.Fprintf(&t, "// %s\n", comment)
		for o := 0; o < len(b); o += 8 {
			fmt.Fprintf(&t, "DATA %s<>+%d(SB)/8, $0x%016x\n", sym, o, binary.LittleEndian.Uint64(b[o:]))
		}
		fmt.Fprintf(&t, "GLOBL %s<>(SB), RODATA|NOPTR, $%d\n\n", sym, len(b))
		d.text[sym] = t.String()
		d.order = append(d.order, sym)
	}
	return sym + "<>(SB)"
}

func (d *datas) write(b *bytes.Buffer) {
	for _, s := range d.order {
		b.WriteString(d.text[s])
	}
}

// dwords and floats build constants lane by lane.
func dwords(n int, f func(i int) uint32) []byte {
	b := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(b[4*i:], f(i))
	}
	return b
}

func floats(n int, f func(i int) float32) []byte {
	return dwords(n, func(i int) uint32 { return math.Float32bits(f(i)) })
}

func splat(n int, v uint32) []byte { return dwords(n, func(int) uint32 { return v }) }

// vconst is one vector constant a format keeps in a register: the load
// instruction and its source.
type vconst struct{ op, src string }

// consts lists the constants the format's decoding keeps in registers, and
// whether it needs a scratch vector per weight row (tmps).
func (g *gen) consts() (cs []vconst, tmps bool) {
	L := g.isa.lanes
	d := g.dat
	z := g.isa.name == "AVX512"
	ld := "VMOVDQU"
	if z {
		ld = "VMOVDQU64"
	}
	v := func(sym, comment string, b []byte) vconst { return vconst{ld, d.vec(sym, comment, b)} }
	// mctl is a multishift control: byte 0 of dword i takes the 8 bits at
	// offset(i) of its qword lane.
	mctl := func(sym, comment string, offset func(i int) int) vconst {
		return v(sym, comment, dwords(L, func(i int) uint32 { return uint32(offset(i) & 63) }))
	}
	// For the 5- and 6-bit decode: VPSHUFB indices bringing into bytes 0
	// and 1 of dword i the bytes that hold code i of a piece starting sh
	// bytes into the 16 (AVX-512: broadcast to every 128-bit lane) or 8
	// (AVX2: broadcast qword) bytes loaded; then per-lane constants that
	// turn the code, at bit r = b·i mod 8 of its dword, into a float:
	// (dword & mask) | bits(2^(23-r)) is 2^(23-r) + q, less 2^(23-r) + c.
	shuf := func(b, sh int) vconst {
		idx := make([]byte, 4*L)
		for i := range L {
			first, last := i*b/8, (i*b+b-1)/8
			o := 4 * i
			idx[o], idx[o+1], idx[o+2], idx[o+3] = byte(first+sh), 0x80, 0x80, 0x80
			if last != first {
				idx[o+1] = byte(last + sh)
			}
		}
		return v(fmt.Sprintf("a%dshuf%d", b, sh), fmt.Sprintf("VPSHUFB indices: the bytes of %d-bit code i (of a piece %d bytes into the load) to bytes 0, 1 of dword i.", b, sh), idx)
	}
	magic := func(b int) []vconst {
		r := func(i int) int { return i * b % 8 }
		return []vconst{
			v(fmt.Sprintf("a%dmask", b), fmt.Sprintf("The bits of %d-bit code i in dword i.", b), dwords(L, func(i int) uint32 { return (1<<b - 1) << r(i) })),
			v(fmt.Sprintf("a%dmagic", b), fmt.Sprintf("float32 2^(23-r), r = the bit of %d-bit code i in dword i.", b), dwords(L, func(i int) uint32 { return uint32(150-r(i)) << 23 })),
			v(fmt.Sprintf("a%dbias", b), fmt.Sprintf("float32 2^(23-r) + %d, r as in a%dmagic.", 1<<(b-1), b), floats(L, func(i int) float32 { return float32(int(1)<<(23-r(i)) + 1<<(b-1)) })),
		}
	}
	top := func() vconst { return v("topbit", "The sign bit of every dword.", splat(L, 0x80000000)) }
	switch {
	case g.fmt == fQ4 && z:
		return []vconst{{"VMOVDQU64", "mshift<>(SB)"}, {"VMOVUPS", "nibfloat<>(SB)"}}, false
	case g.fmt == fQ4:
		return []vconst{{"VMOVDQU", "shifts<>(SB)"}, {"VPBROADCASTD", "flip8<>(SB)"}}, false
	case g.fmt == fU8:
		return []vconst{{"VPBROADCASTD", "c+56(FP)"}}, false
	case g.fmt.bits == 32:
		return nil, false

	case g.fmt == fA2 && z:
		return []vconst{
			mctl("a2mshift0", "Multishift control: 2-bit code i (< 16) of a qword to the low bits of dword i.", func(i int) int { return 2 * i }),
			mctl("a2mshift1", "Multishift control: 2-bit code 16+i of a qword to the low bits of dword i.", func(i int) int { return 32 + 2*i }),
			v("a2table", "a2table[i] = float32(i&3 - 2).", floats(16, func(i int) float32 { return float32(i&3 - 2) })),
		}, false
	case g.fmt == fA3 && z:
		return []vconst{
			mctl("a3mshift0", "Multishift control: 3-bit code i of a qword to the low bits of dword i.", func(i int) int { return 3 * i }),
			mctl("a3mshift1", "Multishift control: 3-bit code i of a qword from bit 16 to the low bits of dword i.", func(i int) int { return 16 + 3*i }),
			v("a3table", "a3table[i] = float32(i&7 - 4).", floats(16, func(i int) float32 { return float32(i&7 - 4) })),
		}, false
	case (g.fmt == fE2M1 || g.fmt == fE2M1h) && z:
		return []vconst{
			{"VMOVDQU64", "mshift<>(SB)"},
			v("e2m1table", "e2m1table[i] = the E2M1 value of code i.", floats(16, e2m1)),
		}, false
	case g.fmt == fA5 && z: // pieces at bytes 0 and 10: loads at 0 and 4
		return append([]vconst{shuf(5, 0), shuf(5, 6)}, magic(5)...), false
	case g.fmt == fA6 && z: // pieces at bytes 0 and 12: loads at 0 and 8
		return append([]vconst{shuf(6, 0), shuf(6, 4)}, magic(6)...), false
	case g.fmt == fE4M3:
		return []vconst{
			v("e4m3half", "Sign, exponent and mantissa of an E4M3 byte moved up by 7 in a word: a float16.", splat(L, 0xbf80bf80)),
			v("two8", "float32 2^8 in every dword.", splat(L, math.Float32bits(0x1p8))),
		}, false

	case g.fmt == fA2:
		return []vconst{
			v("flip2", "The top bit of every 2-bit field.", splat(L, 0xaaaaaaaa)),
			v("a2shift0", "Per-lane left shifts putting 2-bit code j at the top of lane j.", dwords(L, func(j int) uint32 { return uint32(30 - 2*j) })),
			v("a2shift1", "The same for 2-bit code 8+j.", dwords(L, func(j int) uint32 { return uint32(14 - 2*j) })),
		}, true
	case g.fmt == fA3:
		return []vconst{
			v("a3shift0", "Per-lane left shifts putting 3-bit code j at the top of lane j.", dwords(L, func(j int) uint32 { return uint32(29 - 3*j) })),
			v("a3shift8", "The same for codes starting at bit 8.", dwords(L, func(j int) uint32 { return uint32(21 - 3*j) })),
			top(),
		}, false
	case g.fmt == fA5: // the last piece from the qword at 12, 3 bytes in
		return append([]vconst{shuf(5, 0), shuf(5, 3)}, magic(5)...), false
	case g.fmt == fA6: // the last piece from the qword at 16, 2 bytes in
		return append([]vconst{shuf(6, 0), shuf(6, 2)}, magic(6)...), false
	case g.fmt == fE2M1 || g.fmt == fE2M1h:
		return []vconst{
			{"VMOVDQU", "shifts<>(SB)"},
			v("e2m1mag", "e2m1mag[i] = the E2M1 value of code i < 8.", floats(L, e2m1)),
			top(),
		}, true
	}
	panic("no constants for " + g.fmt.name)
}

// e2m1 is the value of E2M1 code i.
func e2m1(i int) float32 {
	v := [8]float32{0, 0.5, 1, 1.5, 2, 3, 4, 6}[i&7]
	if i&8 != 0 {
		return -v
	}
	return v
}

// Vector register plan.
type regs struct {
	a   [8][8]int // A[r][j]; reused as bias sums B[r][j]
	t   [2][8][8]int
	u   [8]int // expanded codes per weight row; bias b+c·s per weight row
	ch  [8]int // decoding scratch per weight row
	s   int    // scale broadcast; tail mask
	tmp int    // spare temp
	k   []int  // format constants
	cf  int    // float(c), set for the bias phase
}

func (g *gen) plan() regs {
	var rg regs
	n := 0
	next := func() int { n++; return n - 1 }
	for r := 0; r < g.t.r; r++ {
		for j := 0; j < g.t.c; j++ {
			rg.a[r][j] = next()
		}
	}
	for h := 0; h < g.isa.tsplit && !g.t.tmem; h++ {
		for r := 0; r < g.t.r; r++ {
			for j := 0; j < g.t.c; j++ {
				rg.t[h][r][j] = next()
			}
		}
	}
	for j := 0; j < g.t.c; j++ {
		rg.u[j] = next()
	}
	rg.s = next()
	rg.tmp = next()
	cs, tmps := g.consts()
	if tmps {
		for j := 0; j < g.t.c; j++ {
			rg.ch[j] = next()
		}
	}
	top := g.isa.nvec
	take := func() int { top--; return top }
	switch {
	case g.fmt.bits == 32 && g.isa.name == "AVX512":
		rg.cf = rg.s // no format constants; the bias phase needs no mask register
	case g.fmt == fQ4 || g.fmt == fU8 || g.fmt.bits == 32:
		rg.k = []int{take(), take()}
		rg.cf = rg.k[1]
	default:
		for range cs {
			rg.k = append(rg.k, take())
		}
		rg.cf = rg.k[0]
	}
	if n > top {
		panic(fmt.Sprintf("%s %s %dx%d: needs %d vector registers", g.isa.name, g.fmt.name, g.t.r, g.t.c, n+g.isa.nvec-top))
	}
	return rg
}

// loadConsts loads the format constants into their registers.
func (g *gen) loadConsts(rg regs) {
	cs, _ := g.consts()
	for i, c := range cs {
		g.i(c.op, c.src, g.v(rg.k[i]))
	}
}

func (g *gen) label(s string) string { g.lbl++; return fmt.Sprintf("%s%d", s, g.lbl) }

// decode writes into register u the lanes centred codes of piece p of the
// current chunk, read through addr(byte offset in the chunk); ch is the
// scratch register of the weight row and k the constant registers.
func (g *gen) decode(u, ch string, k []string, p int, addr func(off int) string) {
	z := g.isa.name == "AVX512"
	switch {
	case z && g.fmt == fQ4, z && (g.fmt == fE2M1 || g.fmt == fE2M1h):
		g.i("VPMULTISHIFTQB.BCST", addr(8*p), k[0], u)
		g.i("VPERMPS", k[1], u, u)
	case z && g.fmt == fA2: // both pieces from the chunk's one qword
		g.i("VPMULTISHIFTQB.BCST", addr(0), k[p], u)
		g.i("VPERMPS", k[2], u, u)
	case z && g.fmt == fA3: // the qwords at bytes 0 and 4 of the 12
		g.i("VPMULTISHIFTQB.BCST", addr(4*p), k[p], u)
		g.i("VPERMPS", k[2], u, u)
	case z && (g.fmt == fA5 || g.fmt == fA6): // 16 bytes in every lane, no further than the chunk's end
		off := 0
		if p == 1 {
			off = 4*g.fmt.bits - 16
		}
		g.i("VBROADCASTI32X4", addr(off), u)
		g.i("VPSHUFB", k[p], u, u)
		g.i("VPTERNLOGD", "$0xea", k[3], k[2], u) // (u & mask) | magic
		g.i("VSUBPS", k[4], u, u)
	case g.fmt == fE4M3: // a float16 of 2^-8 times the value (subnormals too), converted
		h := strings.Replace(u, g.isa.vreg, "Y", 1)
		src, mask := h, strings.Replace(k[0], g.isa.vreg, "Y", 1)
		if !z {
			h, mask = strings.Replace(u, "Y", "X", 1), strings.Replace(k[0], "Y", "X", 1)
			src = h
		}
		g.i("VPMOVSXBW", addr(g.isa.lanes*p), h)
		g.i("VPSLLW", "$7", h, h)
		if z {
			g.i("VPANDD", mask, h, h)
		} else {
			g.i("VPAND", mask, h, h)
		}
		g.i("VCVTPH2PS", src, u)
		g.i("VMULPS", k[1], u, u)
	case z && g.fmt == fU8:
		g.i("VPMOVZXBD", addr(16*p), u)
		g.i("VPSUBD", k[0], u, u)
		g.i("VCVTDQ2PS", u, u)
	case g.fmt.bits == 32: // codes expanded beforehand
		g.i("VMOVUPS", addr(4*g.isa.lanes*p), u)

	case g.fmt == fQ4:
		g.i("VPBROADCASTD", addr(4*p), u)
		g.i("VPXOR", k[1], u, u)
		g.i("VPSLLVD", k[0], u, u)
		g.i("VPSRAD", "$28", u, u)
		g.i("VCVTDQ2PS", u, u)
	case g.fmt == fA2: // pieces 0, 1 from the dword at 0; 2, 3 from the one at 4
		if p%2 == 0 {
			g.i("VPBROADCASTD", addr(2*p), ch)
			g.i("VPXOR", k[0], ch, ch)
		}
		g.i("VPSLLVD", k[1+p%2], ch, u)
		g.i("VPSRAD", "$30", u, u)
		g.i("VCVTDQ2PS", u, u)
	case g.fmt == fA3: // dwords at bytes 0, 3, 6 and (bit 8 of) 8
		off, sh := 3*p, k[0]
		if p == 3 {
			off, sh = 8, k[1]
		}
		g.i("VPBROADCASTD", addr(off), u)
		g.i("VPSLLVD", sh, u, u)
		g.i("VPXOR", k[2], u, u)
		g.i("VPSRAD", "$29", u, u)
		g.i("VCVTDQ2PS", u, u)
	case g.fmt == fA5 || g.fmt == fA6: // the last piece from the qword ending with the chunk
		b := g.fmt.bits
		off, q := b*p, k[0]
		if p == 3 {
			off, q = 4*b-8, k[1]
		}
		g.i("VPBROADCASTQ", addr(off), u)
		g.i("VPSHUFB", q, u, u)
		g.i("VPAND", k[2], u, u)
		g.i("VPOR", k[3], u, u)
		g.i("VSUBPS", k[4], u, u)
	case g.fmt == fE2M1 || g.fmt == fE2M1h: // magnitude from the low 3 bits, then the sign
		g.i("VPBROADCASTD", addr(4*p), u)
		g.i("VPSLLVD", k[0], u, u)
		g.i("VPSRAD", "$28", u, u)
		g.i("VPAND", k[2], u, ch)
		g.i("VPERMPS", k[1], u, u)
		g.i("VPOR", ch, u, u)
	case g.fmt == fU8:
		g.i("VPMOVZXBD", addr(8*p), u)
		g.i("VPSUBD", k[0], u, u)
		g.i("VCVTDQ2PS", u, u)
	default:
		panic("no decoding for " + g.fmt.name)
	}
}

func (g *gen) kregs(rg regs) []string {
	var k []string
	for _, r := range rg.k {
		k = append(k, g.v(r))
	}
	return k
}

// expand writes the centred codes of piece p of weight row j into U.
func (g *gen) expand(rg regs, j, p int) {
	g.decode(g.v(rg.u[j]), g.v(rg.ch[j]), g.kregs(rg), p, func(off int) string { return g.wAddr(off, j) })
}

func (g *gen) group(rg regs, h int) {
	for r := 0; r < g.t.r; r++ {
		for j := 0; j < g.t.c; j++ {
			a := g.v(rg.a[r][j])
			g.i("VXORPS", a, a, a)
		}
	}
	g.i("MOVQ", "BX", "AX")
	l := g.label("chunk")
	g.p("%s:", l)
	pieces := g.fmt.chunk / g.isa.lanes
	for p := 0; p < pieces; p++ {
		for j := 0; j < g.t.c; j++ {
			g.expand(rg, j, p)
		}
		for r := 0; r < g.t.r; r++ {
			xa := g.xAddr(4*g.isa.lanes*p, r)
			if g.t.c > 1 && g.t.r > 1 { // load once for all weight rows
				g.i("VMOVUPS", xa, g.v(rg.tmp))
				xa = g.v(rg.tmp)
			}
			for j := 0; j < g.t.c; j++ {
				g.i("VFMADD231PS", xa, g.v(rg.u[j]), g.v(rg.a[r][j]))
			}
		}
	}
	g.i("ADDQ", fmt.Sprintf("$%d", g.fmt.chunkBytes()), "SI")
	g.i("ADDQ", fmt.Sprintf("$%d", 4*g.fmt.chunk), "DI")
	g.i("DECQ", "AX")
	g.i("JNZ", l)
	for j := 0; j < g.t.c; j++ {
		g.i("VBROADCASTSS", g.sAddr(0, j), g.v(rg.s))
		for r := 0; r < g.t.r; r++ {
			if g.t.tmem { // A = s·A + T (one rounding, as below), then T = A
				g.i("VFMADD213PS", g.tAddr(h, r, j), g.v(rg.s), g.v(rg.a[r][j]))
				g.i("VMOVUPS", g.v(rg.a[r][j]), g.tAddr(h, r, j))
			} else {
				g.i("VFMADD231PS", g.v(rg.s), g.v(rg.a[r][j]), g.v(rg.t[h][r][j]))
			}
		}
	}
	g.i("ADDQ", "$4", "DX")
}

// tAddr is the frame slot of running sum T[h] of pair (r, j).
func (g *gen) tAddr(h, r, j int) string {
	return fmt.Sprintf("%d(SP)", ((h*g.t.r+r)*g.t.c+j)*4*g.isa.lanes)
}

func (g *gen) frame() int {
	if !g.t.tmem {
		return 0
	}
	return g.isa.tsplit * g.t.r * g.t.c * 4 * g.isa.lanes
}

func (g *gen) name() string {
	m := ""
	if g.t.tmem {
		m = "m"
	}
	return fmt.Sprintf("%sTile%dx%d%s%s", g.fmt.name, g.t.r, g.t.c, m, g.isa.name)
}

// wType is the Go type of the code pointer.
func (g *gen) wType() string {
	if g.fmt.bits == 32 {
		return "*float32"
	}
	return "*byte"
}

func (g *gen) kernel() {
	rg := g.plan()
	L := g.isa.lanes
	g.p("// func %s(w %s, s, b, x, xsum *float32, ng, cpg, c, k int, out *float32, ldo int)", g.name(), g.wType())
	if g.t.tmem {
		g.p("TEXT ·%s(SB), $%d-88", g.name(), g.frame())
		g.p("\tNO_LOCAL_POINTERS")
	} else {
		g.p("TEXT ·%s(SB), NOSPLIT, $0-88", g.name())
	}
	g.i("MOVQ", "w+0(FP)", "SI")
	g.i("MOVQ", "s+8(FP)", "DX")
	g.i("MOVQ", "x+24(FP)", "DI")
	g.i("MOVQ", "ng+40(FP)", "CX")
	g.i("MOVQ", "cpg+48(FP)", "BX")
	g.i("MOVQ", "CX", "R10")
	g.i("SHLQ", "$2", "R10")
	g.i("LEAQ", "(R10)(R10*2)", "R11")
	if g.t.c > 1 {
		g.i("MOVQ", "k+64(FP)", "R8")
		switch g.fmt.bits {
		case 4:
			g.i("SHRQ", "$1", "R8")
		case 8:
		case 32:
			g.i("SHLQ", "$2", "R8")
		default:
			panic("no multi-row tiles for " + g.fmt.name)
		}
		g.i("LEAQ", "(R8)(R8*2)", "R9")
	}
	if g.t.r > 1 {
		g.i("MOVQ", "k+64(FP)", "R12")
		g.i("SHLQ", "$2", "R12")
		g.i("LEAQ", "(R12)(R12*2)", "R13")
	}
	g.loadConsts(rg)
	if g.t.tmem {
		z := g.v(rg.tmp)
		g.i("VXORPS", z, z, z)
	}
	for h := 0; h < g.isa.tsplit; h++ {
		for r := 0; r < g.t.r; r++ {
			for j := 0; j < g.t.c; j++ {
				if g.t.tmem {
					g.i("VMOVUPS", g.v(rg.tmp), g.tAddr(h, r, j))
					continue
				}
				t := g.v(rg.t[h][r][j])
				g.i("VXORPS", t, t, t)
			}
		}
	}
	loop, bias := g.label("loop"), g.label("bias")
	g.p("%s:", loop)
	for h := 0; h < g.isa.tsplit; h++ {
		g.group(rg, h)
		g.i("DECQ", "CX")
		if h < g.isa.tsplit-1 {
			g.i("JZ", bias)
		} else {
			g.i("JNZ", loop)
		}
	}
	g.p("%s:", bias)

	// Bias: B[r][j] += (b_j + c·s_j)·xsum_r, L groups per step; B = 0
	// without biases (b = nil).
	g.i("MOVQ", "ng+40(FP)", "CX")
	g.i("MOVQ", "s+8(FP)", "DX")
	g.i("MOVQ", "b+16(FP)", "SI")
	g.i("MOVQ", "xsum+32(FP)", "DI")
	g.i("VPBROADCASTD", "c+56(FP)", g.v(rg.cf))
	g.i("VCVTDQ2PS", g.v(rg.cf), g.v(rg.cf))
	for r := 0; r < g.t.r; r++ {
		for j := 0; j < g.t.c; j++ {
			a := g.v(rg.a[r][j])
			g.i("VXORPS", a, a, a)
		}
	}
	bl, bt, done := g.label("bloop"), g.label("btail"), g.label("done")
	g.i("TESTQ", "SI", "SI")
	g.i("JZ", done)
	g.p("%s:", bl)
	g.i("CMPQ", "CX", fmt.Sprintf("$%d", L))
	g.i("JLT", bt)
	for j := 0; j < g.t.c; j++ {
		u := g.v(rg.u[j])
		g.i("VMOVUPS", row(0, "SI", "R10", "R11", j), u)
		g.i("VFMADD231PS", g.sAddr(0, j), g.v(rg.cf), u)
	}
	for r := 0; r < g.t.r; r++ {
		for j := 0; j < g.t.c; j++ {
			g.i("VFMADD231PS", g.xsAddr(0, r), g.v(rg.u[j]), g.v(rg.a[r][j]))
		}
	}
	g.i("ADDQ", fmt.Sprintf("$%d", 4*L), "DX")
	g.i("ADDQ", fmt.Sprintf("$%d", 4*L), "SI")
	g.i("ADDQ", fmt.Sprintf("$%d", 4*L), "DI")
	g.i("SUBQ", fmt.Sprintf("$%d", L), "CX")
	g.i("JMP", bl)
	g.p("%s:", bt)
	g.i("TESTQ", "CX", "CX")
	g.i("JZ", done)
	if g.isa.name == "AVX512" {
		// Zero-masked loads of b and s; merge-masked FMAs leave the lanes
		// past the end untouched.
		g.i("MOVL", "$1", "AX")
		g.i("SHLL", "CX", "AX")
		g.i("DECL", "AX")
		g.i("KMOVW", "AX", "K1")
		for j := 0; j < g.t.c; j++ {
			u := g.v(rg.u[j])
			g.i("VMOVUPS.Z", row(0, "SI", "R10", "R11", j), "K1", u)
			g.i("VFMADD231PS", g.sAddr(0, j), g.v(rg.cf), "K1", u)
		}
		for r := 0; r < g.t.r; r++ {
			for j := 0; j < g.t.c; j++ {
				g.i("VFMADD231PS", g.xsAddr(0, r), g.v(rg.u[j]), "K1", g.v(rg.a[r][j]))
			}
		}
	} else {
		// Masked loads (zero past the end) of b, s and xsum.
		m := g.v(rg.s)
		g.i("LEAQ", "tailmask<>+32(SB)", "AX")
		g.i("SHLQ", "$2", "CX")
		g.i("SUBQ", "CX", "AX")
		g.i("VMOVDQU", "(AX)", m)
		for j := 0; j < g.t.c; j++ {
			u := g.v(rg.u[j])
			g.i("VMASKMOVPS", row(0, "SI", "R10", "R11", j), m, u)
			g.i("VMASKMOVPS", g.sAddr(0, j), m, g.v(rg.tmp))
			g.i("VFMADD231PS", g.v(rg.tmp), g.v(rg.cf), u)
		}
		for r := 0; r < g.t.r; r++ {
			g.i("VMASKMOVPS", g.xsAddr(0, r), m, g.v(rg.tmp))
			for j := 0; j < g.t.c; j++ {
				g.i("VFMADD231PS", g.v(rg.tmp), g.v(rg.u[j]), g.v(rg.a[r][j]))
			}
		}
	}
	g.p("%s:", done)

	// Result per pair: hsum((T0 [+ T1]) + B), stored to out[r·ldo + j].
	g.i("MOVQ", "out+72(FP)", "AX")
	g.i("MOVQ", "ldo+80(FP)", "BX")
	g.i("SHLQ", "$2", "BX")
	g.i("LEAQ", "(BX)(BX*2)", "CX")
	tmp := rg.tmp
	for r := 0; r < g.t.r; r++ {
		for j := 0; j < g.t.c; j++ {
			t := rg.t[0][r][j]
			if g.t.tmem {
				t = rg.s
				g.i("VMOVUPS", g.tAddr(0, r, j), g.v(t))
				if g.isa.tsplit == 2 {
					g.i("VADDPS", g.tAddr(1, r, j), g.v(t), g.v(t))
				}
			} else if g.isa.tsplit == 2 {
				g.i("VADDPS", g.v(rg.t[1][r][j]), g.v(t), g.v(t))
			}
			g.i("VADDPS", g.v(rg.a[r][j]), g.v(t), g.v(t))
			if g.isa.name == "AVX512" {
				g.i("VEXTRACTF64X4", "$1", g.v(t), g.y(tmp))
				g.i("VADDPS", g.y(tmp), g.y(t), g.y(t))
				g.i("VEXTRACTF32X4", "$1", g.y(t), g.x(tmp))
			} else {
				g.i("VEXTRACTF128", "$1", g.y(t), g.x(tmp))
			}
			g.i("VADDPS", g.x(tmp), g.x(t), g.x(t))
			g.i("VPERMILPS", "$0x4e", g.x(t), g.x(tmp))
			g.i("VADDPS", g.x(tmp), g.x(t), g.x(t))
			g.i("VPERMILPS", "$0xb1", g.x(t), g.x(tmp))
			g.i("VADDSS", g.x(tmp), g.x(t), g.x(t))
			g.i("VMOVSS", g.x(t), row(4*j, "AX", "BX", "CX", r))
		}
	}
	g.i("VZEROUPPER")
	g.i("RET")
	g.p("")
}

// expanderName is the expander of a packed format.
func (g *gen) expanderName() string { return fmt.Sprintf("%sExpand%s", g.fmt.name, g.isa.name) }

// expander writes func NAME(dst *float32, w *byte, n int): the n·chunk
// centred codes of the n·chunkBytes bytes at w, decoded as the tiles do.
func (g *gen) expander() {
	pieces := g.fmt.chunk / g.isa.lanes
	cs, _ := g.consts()
	rg := regs{}
	for p := range pieces {
		rg.u[p] = p
	}
	ch := pieces
	top := g.isa.nvec
	for range cs {
		top--
		rg.k = append(rg.k, top)
	}
	name := g.expanderName()
	g.p("// func %s(dst *float32, w *byte, n int)", name)
	g.p("TEXT ·%s(SB), NOSPLIT, $0-24", name)
	g.i("MOVQ", "dst+0(FP)", "DI")
	g.i("MOVQ", "w+8(FP)", "SI")
	g.i("MOVQ", "n+16(FP)", "CX")
	g.loadConsts(rg)
	l := g.label("expand")
	g.p("%s:", l)
	for p := range pieces {
		g.decode(g.v(rg.u[p]), g.v(ch), g.kregs(rg), p, func(off int) string { return row(off, "SI", "", "", 0) })
	}
	for p := range pieces {
		g.i("VMOVUPS", g.v(rg.u[p]), row(4*g.isa.lanes*p, "DI", "", "", 0))
	}
	g.i("ADDQ", fmt.Sprintf("$%d", g.fmt.chunkBytes()), "SI")
	g.i("ADDQ", fmt.Sprintf("$%d", 4*g.fmt.chunk), "DI")
	g.i("DECQ", "CX")
	g.i("JNZ", l)
	g.i("VZEROUPPER")
	g.i("RET")
	g.p("")
}

const header = `// Code generated by gen_asm.go; DO NOT EDIT.

//go:build amd64 && !purego

#include "textflag.h"
#include "funcdata.h"
`

const doc512 = `
// AVX-512 (F, BW, VL, VBMI) kernels: tiles of R activation rows × C weight
// rows. For every (activation row, weight row) pair every tile performs the
// same float operations in the same order:
//
//   codes are decoded to exact float32 values u: the centred code q - c for
//   affine codes (c = 2^(bits-1), 8 for packed 4-bit), the code's value for
//   E2M1 and E4M3
//   per group g:  A = 0; for each 16-code piece p in order: A += u[p]·x[p]   (16-lane FMA)
//                 T[g%2] += s[g]·A
//   bias, 16 groups per step (masked tail):  B += (b + c·s)·xsum             (b + c·s by one FMA; c·s is exact)
//                 (B = 0 when b is nil)
//   result:       hsum((T0 + T1) + B), halves added pairwise
//
// Decoding, 16 codes per piece:
//   packed 4-bit (q4, e2m1), 2- and 3-bit: VPMULTISHIFTQB on a broadcast
//     qword rotates code i into the low bits of dword i; VPERMPS then reads
//     its value from a 16-entry float table indexed by the low 4 bits (the
//     table repeats for narrower codes, so the bits above need no masking).
//     32 2-bit codes are one qword; 32 3-bit codes, 12 bytes, are read as
//     the qwords at bytes 0 and 4.
//   5- and 6-bit: the 16 bytes that hold a piece (those at 0 and at 4 or 8
//     of the 20 or 24 bytes of 32 codes) are broadcast to every 128-bit
//     lane; VPSHUFB brings the two bytes that hold code i into the low half
//     of dword i, where the code sits at bit r = bits·i mod 8. VPTERNLOGD
//     masks it and ORs in the exponent of 2^(23-r), which makes the float
//     2^(23-r) + q; subtracting 2^(23-r) + c leaves q - c.
//   bytes (u8): VPMOVZXBD, VPSUBD c, VCVTDQ2PS.
//   E4M3: VPMOVSXBW, a left shift by 7 and a mask give a float16 with the
//     code's sign, exponent and mantissa, 2^-8 times its value (subnormal
//     codes become float16 subnormals); VCVTPH2PS converts it exactly and
//     multiplying by 2^8 is exact. (No float32 subnormal is ever formed:
//     they would cost microcode assists.)
// All give the values as exact floats, so all formats of equal values give
// equal results. No load reaches past the 32 codes of a step (16 for e2m1h).
//
// Centring keeps the running sums near the size of the result instead of
// carrying the mean c·s·Σx that the bias term cancels at the end.
//
// The f32 tiles read codes expanded beforehand to exactly these floats by
// the expanders, so they too perform the same operations. Tiles marked m
// keep their running sums T in the stack frame; formats marked h step 16
// codes at a time (groups of 16).

// Multishift control: qword lane L takes bits 8L (low nibble of byte L) into
// byte 0 and bits 8L+4 (its high nibble) into byte 4.
`

const doc2 = `
// AVX2 + FMA kernels: tiles of R activation rows × C weight rows. For every
// (activation row, weight row) pair every tile performs the same float
// operations in the same order:
//
//   codes are decoded to exact float32 values u: the centred code q - c for
//   affine codes (c = 2^(bits-1), 8 for packed 4-bit), the code's value for
//   E2M1 and E4M3
//   per group g:  A = 0; for each 8-code piece p in order: A += u[p]·x[p]   (8-lane FMA)
//                 T += s[g]·A
//   bias, 8 groups per step (masked tail):  B += (b + c·s)·xsum             (b + c·s by one FMA; c·s is exact)
//                 (B = 0 when b is nil)
//   result:       hsum(T + B), halves added pairwise
//
// Decoding, 8 codes per piece (b bytes for b-bit codes):
//   packed 4-bit: a 4-byte word is broadcast and XORed with 0x88888888,
//     which turns every nibble q into the 4-bit two's complement of q-8; a
//     per-lane left shift by 28, 24, ..., 0 and an arithmetic right shift by
//     28 sign-extend nibble j into lane j before conversion.
//   2-bit: the same with 0xAAAAAAAA, one broadcast dword for 16 codes.
//   3-bit: a broadcast dword, the per-lane left shift, the top bit flipped
//     (centring), an arithmetic right shift by 29.
//   5- and 6-bit: a broadcast qword, VPSHUFB bringing the two bytes that
//     hold code j into the low half of dword j, where the code sits at bit
//     r = bits·j mod 8; a mask and an OR with the exponent of 2^(23-r) make
//     the float 2^(23-r) + q, and subtracting 2^(23-r) + c leaves q - c.
//   E2M1: the nibble sign-extended into lane j as for 4-bit codes; VPERMPS
//     reads the magnitude from an 8-entry table indexed by the low 3 bits,
//     and the sign bit is ORed in.
//   E4M3: VPMOVSXBW, a left shift by 7 and a mask give a float16 of 2^-8
//     times the value (subnormals included); VCVTPH2PS and a product by 2^8
//     are exact.
//   bytes (u8): zero-extended, reduced by c and converted.
// All give the values as exact floats, so all formats of equal values give
// equal results. No load reaches past the codes of a step: the pieces at
// the end of a step read the word or qword that ends with the step.
//
// The f32 tiles read codes expanded beforehand to exactly these floats by
// the expanders, so they too perform the same operations. Tiles marked m
// keep their running sums T in the stack frame; formats marked h step 16
// codes at a time (groups of 16).

`

func f32bits(f float32) uint32 { return math.Float32bits(f) }

// The tiles generated; kernels_amd64.go dispatches them. ftiles run on
// codes expanded beforehand (float32, rows k floats apart) by the
// expanders, which produce exactly the floats the other tiles compute.
var (
	ftiles512 = []tile{{4, 4, true}}
	ftiles2   = []tile{{4, 2, true}}

	tiles512 = []tile{{1, 1, false}, {4, 1, false}}
	tiles2   = []tile{{1, 1, false}, {4, 1, false}}
)

// kernels lists the kernels of one ISA in file order.
func kernels(is isa, tiles, ftiles []tile, dat *datas) []*gen {
	var out []*gen
	for _, fm := range append([]cfmt{fQ4, fU8}, packed...) {
		for _, t := range tiles {
			out = append(out, &gen{isa: is, fmt: fm, t: t, dat: dat})
		}
	}
	for _, fm := range []cfmt{fF32, fF32h} {
		for _, t := range ftiles {
			out = append(out, &gen{isa: is, fmt: fm, t: t, dat: dat})
		}
	}
	return out
}

func main() {
	var decl bytes.Buffer
	decl.WriteString("// Code generated by gen_asm.go; DO NOT EDIT.\n\n//go:build amd64 && !purego\n\npackage qdot\n")
	write := func(file string, is isa, tiles, ftiles []tile, data func(*bytes.Buffer)) {
		dat := &datas{text: map[string]string{}}
		var body bytes.Buffer
		for _, g := range kernels(is, tiles, ftiles, dat) {
			g.kernel()
			body.Write(g.b.Bytes())
			fmt.Fprintf(&decl, "\n//go:noescape\nfunc %s(w %s, s, b, x, xsum *float32, ng, cpg, c, k int, out *float32, ldo int)\n", g.name(), g.wType())
		}
		body.WriteString(expanders[is.name])
		fmt.Fprintf(&decl, "\n//go:noescape\nfunc q4Expand%s(dst *float32, w *byte, n int)\n", is.name)
		fmt.Fprintf(&decl, "\n//go:noescape\nfunc u8Expand%s(dst *float32, q *byte, n, c int)\n", is.name)
		for _, fm := range packed {
			g := &gen{isa: is, fmt: fm, dat: dat}
			g.expander()
			body.Write(g.b.Bytes())
			fmt.Fprintf(&decl, "\n//go:noescape\nfunc %s(dst *float32, w *byte, n int)\n", g.expanderName())
		}
		var out bytes.Buffer
		out.WriteString(header)
		data(&out)
		dat.write(&out)
		out.Write(body.Bytes())
		if err := os.WriteFile(file, out.Bytes(), 0o644); err != nil {
			panic(err)
		}
	}
	write("kernels_avx512_amd64.s", avx512, tiles512, ftiles512, func(b *bytes.Buffer) {
		b.WriteString(doc512)
		for l := 0; l < 8; l++ {
			fmt.Fprintf(b, "DATA mshift<>+%d(SB)/8, $0x%016x\n", 8*l, uint64(8*l)|uint64(8*l+4)<<32)
		}
		b.WriteString("GLOBL mshift<>(SB), RODATA|NOPTR, $64\n\n// nibfloat[i] = float32(i - 8), i < 16.\n")
		for i := 0; i < 16; i++ {
			fmt.Fprintf(b, "DATA nibfloat<>+%d(SB)/4, $0x%08x\n", 4*i, f32bits(float32(i-8)))
		}
		b.WriteString("GLOBL nibfloat<>(SB), RODATA|NOPTR, $64\n\n")
	})
	write("kernels_avx2_amd64.s", avx2, tiles2, ftiles2, func(b *bytes.Buffer) {
		b.WriteString(doc2)
		b.WriteString("// Per-lane left shifts putting nibble j at the top of lane j.\n")
		for i := 0; i < 8; i++ {
			fmt.Fprintf(b, "DATA shifts<>+%d(SB)/4, $%d\n", 4*i, 28-4*i)
		}
		b.WriteString("GLOBL shifts<>(SB), RODATA|NOPTR, $32\n\nDATA flip8<>+0(SB)/4, $0x88888888\nGLOBL flip8<>(SB), RODATA|NOPTR, $4\n\n")
		b.WriteString("// tailmask+32-4n: n all-ones lanes followed by zero lanes.\n")
		for i := 0; i < 8; i++ {
			v := "$-1"
			if i >= 4 {
				v = "$0"
			}
			fmt.Fprintf(b, "DATA tailmask<>+%d(SB)/8, %s\n", 8*i, v)
		}
		b.WriteString("GLOBL tailmask<>(SB), RODATA|NOPTR, $64\n\n")
	})
	if err := os.WriteFile("kernels_decl_amd64.go", decl.Bytes(), 0o644); err != nil {
		panic(err)
	}
}

// expanders: func q4ExpandISA(dst *float32, w *byte, n int) writes the 32·n
// centred codes of the n·16 packed bytes at w; func u8ExpandISA(dst *float32,
// q *byte, n, c int) those of the 32·n unpacked codes at q, less c. The
// expanders of the other formats are generated from their tiles' decoding.
var expanders = map[string]string{
	"AVX512": `
// func q4ExpandAVX512(dst *float32, w *byte, n int)
TEXT ·q4ExpandAVX512(SB), NOSPLIT, $0-24
	MOVQ                dst+0(FP), DI
	MOVQ                w+8(FP), SI
	MOVQ                n+16(FP), CX
	VMOVDQU64           mshift<>(SB), Z30
	VMOVUPS             nibfloat<>(SB), Z31
q4expand:
	VPMULTISHIFTQB.BCST (SI), Z30, Z0
	VPMULTISHIFTQB.BCST 8(SI), Z30, Z1
	VPERMPS             Z31, Z0, Z0
	VPERMPS             Z31, Z1, Z1
	VMOVUPS             Z0, (DI)
	VMOVUPS             Z1, 64(DI)
	ADDQ                $16, SI
	ADDQ                $128, DI
	DECQ                CX
	JNZ                 q4expand
	VZEROUPPER
	RET

// func u8ExpandAVX512(dst *float32, q *byte, n, c int)
TEXT ·u8ExpandAVX512(SB), NOSPLIT, $0-32
	MOVQ                dst+0(FP), DI
	MOVQ                q+8(FP), SI
	MOVQ                n+16(FP), CX
	VPBROADCASTD        c+24(FP), Z29
u8expand:
	VPMOVZXBD           (SI), Z0
	VPMOVZXBD           16(SI), Z1
	VPSUBD              Z29, Z0, Z0
	VPSUBD              Z29, Z1, Z1
	VCVTDQ2PS           Z0, Z0
	VCVTDQ2PS           Z1, Z1
	VMOVUPS             Z0, (DI)
	VMOVUPS             Z1, 64(DI)
	ADDQ                $32, SI
	ADDQ                $128, DI
	DECQ                CX
	JNZ                 u8expand
	VZEROUPPER
	RET

`,
	"AVX2": `
// func q4ExpandAVX2(dst *float32, w *byte, n int)
TEXT ·q4ExpandAVX2(SB), NOSPLIT, $0-24
	MOVQ                dst+0(FP), DI
	MOVQ                w+8(FP), SI
	MOVQ                n+16(FP), CX
	VMOVDQU             shifts<>(SB), Y14
	VPBROADCASTD        flip8<>(SB), Y15
q4expand:
	VPBROADCASTD        (SI), Y0
	VPBROADCASTD        4(SI), Y1
	VPBROADCASTD        8(SI), Y2
	VPBROADCASTD        12(SI), Y3
	VPXOR               Y15, Y0, Y0
	VPXOR               Y15, Y1, Y1
	VPXOR               Y15, Y2, Y2
	VPXOR               Y15, Y3, Y3
	VPSLLVD             Y14, Y0, Y0
	VPSLLVD             Y14, Y1, Y1
	VPSLLVD             Y14, Y2, Y2
	VPSLLVD             Y14, Y3, Y3
	VPSRAD              $28, Y0, Y0
	VPSRAD              $28, Y1, Y1
	VPSRAD              $28, Y2, Y2
	VPSRAD              $28, Y3, Y3
	VCVTDQ2PS           Y0, Y0
	VCVTDQ2PS           Y1, Y1
	VCVTDQ2PS           Y2, Y2
	VCVTDQ2PS           Y3, Y3
	VMOVUPS             Y0, (DI)
	VMOVUPS             Y1, 32(DI)
	VMOVUPS             Y2, 64(DI)
	VMOVUPS             Y3, 96(DI)
	ADDQ                $16, SI
	ADDQ                $128, DI
	DECQ                CX
	JNZ                 q4expand
	VZEROUPPER
	RET

// func u8ExpandAVX2(dst *float32, q *byte, n, c int)
TEXT ·u8ExpandAVX2(SB), NOSPLIT, $0-32
	MOVQ                dst+0(FP), DI
	MOVQ                q+8(FP), SI
	MOVQ                n+16(FP), CX
	VPBROADCASTD        c+24(FP), Y14
u8expand:
	VPMOVZXBD           (SI), Y0
	VPMOVZXBD           8(SI), Y1
	VPMOVZXBD           16(SI), Y2
	VPMOVZXBD           24(SI), Y3
	VPSUBD              Y14, Y0, Y0
	VPSUBD              Y14, Y1, Y1
	VPSUBD              Y14, Y2, Y2
	VPSUBD              Y14, Y3, Y3
	VCVTDQ2PS           Y0, Y0
	VCVTDQ2PS           Y1, Y1
	VCVTDQ2PS           Y2, Y2
	VCVTDQ2PS           Y3, Y3
	VMOVUPS             Y0, (DI)
	VMOVUPS             Y1, 32(DI)
	VMOVUPS             Y2, 64(DI)
	VMOVUPS             Y3, 96(DI)
	ADDQ                $32, SI
	ADDQ                $128, DI
	DECQ                CX
	JNZ                 u8expand
	VZEROUPPER
	RET

`,
}
