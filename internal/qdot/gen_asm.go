//go:build ignore

// gen_asm writes kernels_avx512_amd64.s and kernels_avx2_amd64.s: register
// tiles of R activation rows × C weight rows for packed 4-bit and unpacked
// 8-bit codes. Every tile performs, for each (activation row, weight row)
// pair, exactly the same float operations in the same order (the canonical
// sequence documented in the generated files), so all tiles agree bit for
// bit. Run `go generate` in this directory (the directive is in
// kernels_amd64.go).
package main

import (
	"bytes"
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

// tile is R activation rows × C weight rows; tmem keeps the running sums T
// in the stack frame instead of registers (for tiles too big for both).
type tile struct {
	r, c int
	tmem bool
}

type gen struct {
	b   bytes.Buffer
	isa isa
	fmt string // "q4" or "u8"
	t   tile
	lbl int
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

// Vector register plan.
type regs struct {
	a      [8][8]int // A[r][j]; reused as bias sums B[r][j]
	t      [2][8][8]int
	u      [8]int // expanded codes per weight row; bias b+c·s per weight row
	s      int    // scale broadcast; tail mask
	tmp    int    // spare temp
	k0, k1 int    // format constants (q4); k0 = int c (u8)
	cf     int    // float(c), set for the bias phase (= k1)
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
	top := g.isa.nvec
	take := func() int { top--; return top }
	if g.fmt == "f32" && g.isa.name == "AVX512" {
		rg.cf = rg.s // no format constants; the bias phase needs no mask register
	} else {
		rg.k0, rg.k1 = take(), take()
		rg.cf = rg.k1
	}
	if n > top {
		panic(fmt.Sprintf("%s %s %dx%d: needs %d vector registers", g.isa.name, g.fmt, g.t.r, g.t.c, n+g.isa.nvec-top))
	}
	return rg
}

func (g *gen) label(s string) string { g.lbl++; return fmt.Sprintf("%s%d", s, g.lbl) }

// expand writes the centred codes of piece p (lanes codes) of weight row j into U.
func (g *gen) expand(rg regs, j, p int) {
	u := g.v(rg.u[j])
	switch {
	case g.isa.name == "AVX512" && g.fmt == "q4":
		g.i("VPMULTISHIFTQB.BCST", g.wAddr(8*p, j), g.v(rg.k0), u)
		g.i("VPERMPS", g.v(rg.k1), u, u)
	case g.isa.name == "AVX512" && g.fmt == "u8":
		g.i("VPMOVZXBD", g.wAddr(16*p, j), u)
		g.i("VPSUBD", g.v(rg.k0), u, u)
		g.i("VCVTDQ2PS", u, u)
	case g.isa.name == "AVX2" && g.fmt == "q4":
		g.i("VPBROADCASTD", g.wAddr(4*p, j), u)
		g.i("VPXOR", g.v(rg.k1), u, u)
		g.i("VPSLLVD", g.v(rg.k0), u, u)
		g.i("VPSRAD", "$28", u, u)
		g.i("VCVTDQ2PS", u, u)
	case g.isa.name == "AVX2" && g.fmt == "u8":
		g.i("VPMOVZXBD", g.wAddr(8*p, j), u)
		g.i("VPSUBD", g.v(rg.k0), u, u)
		g.i("VCVTDQ2PS", u, u)
	case g.fmt == "f32": // codes expanded beforehand
		g.i("VMOVUPS", g.wAddr(4*g.isa.lanes*p, j), u)
	}
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
	pieces := 32 / g.isa.lanes
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
	g.i("ADDQ", fmt.Sprintf("$%d", g.chunkBytes()), "SI")
	g.i("ADDQ", "$128", "DI")
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

// chunkBytes is the size of 32 codes in the weight format.
func (g *gen) chunkBytes() int {
	switch g.fmt {
	case "q4":
		return 16
	case "u8":
		return 32
	}
	return 128
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
	return fmt.Sprintf("%sTile%dx%d%s%s", g.fmt, g.t.r, g.t.c, m, g.isa.name)
}

func (g *gen) kernel() {
	rg := g.plan()
	L := g.isa.lanes
	g.p("// func %s(w *byte, s, b, x, xsum *float32, ng, cpg, c, k int, out *float32, ldo int)", g.name())
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
		switch g.fmt {
		case "q4":
			g.i("SHRQ", "$1", "R8")
		case "f32":
			g.i("SHLQ", "$2", "R8")
		}
		g.i("LEAQ", "(R8)(R8*2)", "R9")
	}
	if g.t.r > 1 {
		g.i("MOVQ", "k+64(FP)", "R12")
		g.i("SHLQ", "$2", "R12")
		g.i("LEAQ", "(R12)(R12*2)", "R13")
	}
	if g.fmt == "u8" {
		g.i("VPBROADCASTD", "c+56(FP)", g.v(rg.k0))
	} else if g.fmt == "q4" {
		if g.isa.name == "AVX512" {
			g.i("VMOVDQU64", "mshift<>(SB)", g.v(rg.k0))
			g.i("VMOVUPS", "nibfloat<>(SB)", g.v(rg.k1))
		} else {
			g.i("VMOVDQU", "shifts<>(SB)", g.v(rg.k0))
			g.i("VPBROADCASTD", "flip8<>(SB)", g.v(rg.k1))
		}
	}
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

	// Bias: B[r][j] += (b_j + c·s_j)·xsum_r, L groups per step.
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
//   codes are centred: u = q - c (c = 2^(bits-1), 8 for 4-bit), exact in float32
//   per group g:  A = 0; for each 16-code piece p in order: A += u[p]·x[p]   (16-lane FMA)
//                 T[g%2] += s[g]·A
//   bias, 16 groups per step (masked tail):  B += (b + c·s)·xsum             (b + c·s by one FMA; c·s is exact)
//   result:       hsum((T0 + T1) + B), halves added pairwise
//
// Packed nibbles: VPMULTISHIFTQB broadcasts 8 bytes (16 codes) to every qword
// lane and rotates code 2L / 2L+1 into the low bits of dwords 2L / 2L+1 of
// lane L; VPERMPS then reads q-8 from a 16-entry float table indexed by those
// low 4 bits (the bits above are ignored). Unpacked codes use VPMOVZXBD,
// VPSUBD c and VCVTDQ2PS. Both give the centred codes as exact floats.
//
// Centring keeps the running sums near the size of the result instead of
// carrying the mean c·s·Σx that the bias term cancels at the end.
//
// The f32 tiles read codes expanded beforehand to exactly these floats by
// q4ExpandAVX512 / u8ExpandAVX512, so they too perform the same operations.
// Tiles marked m keep their running sums T in the stack frame.

// Multishift control: qword lane L takes bits 8L (low nibble of byte L) into
// byte 0 and bits 8L+4 (its high nibble) into byte 4.
`

const doc2 = `
// AVX2 + FMA kernels: tiles of R activation rows × C weight rows. For every
// (activation row, weight row) pair every tile performs the same float
// operations in the same order:
//
//   codes are centred: u = q - c (c = 2^(bits-1), 8 for 4-bit), exact in float32
//   per group g:  A = 0; for each 8-code piece p in order: A += u[p]·x[p]   (8-lane FMA)
//                 T += s[g]·A
//   bias, 8 groups per step (masked tail):  B += (b + c·s)·xsum             (b + c·s by one FMA; c·s is exact)
//   result:       hsum(T + B), halves added pairwise
//
// Packed nibbles: a 4-byte word (8 codes) is broadcast and XORed with
// 0x88888888, which turns every nibble q into the 4-bit two's complement of
// q-8; a per-lane left shift by 28, 24, ..., 0 and an arithmetic right shift
// by 28 sign-extend nibble j into lane j before conversion. Unpacked codes are
// zero-extended, reduced by c and converted. Both give the centred codes as
// exact floats.
//
// The f32 tiles read codes expanded beforehand to exactly these floats by
// q4ExpandAVX2 / u8ExpandAVX2, so they too perform the same operations.
// Tiles marked m keep their running sums T in the stack frame.

`

func f32bits(f float32) uint32 { return math.Float32bits(f) }

func main() {
	write := func(file string, is isa, tiles, ftiles []tile, data func(*bytes.Buffer)) {
		var out bytes.Buffer
		out.WriteString(header)
		data(&out)
		for _, fm := range []string{"q4", "u8"} {
			for _, t := range tiles {
				g := &gen{isa: is, fmt: fm, t: t}
				g.kernel()
				out.Write(g.b.Bytes())
			}
		}
		for _, t := range ftiles {
			g := &gen{isa: is, fmt: "f32", t: t}
			g.kernel()
			out.Write(g.b.Bytes())
		}
		out.WriteString(expanders[is.name])
		if err := os.WriteFile(file, out.Bytes(), 0o644); err != nil {
			panic(err)
		}
	}
	var decl bytes.Buffer
	decl.WriteString("// Code generated by gen_asm.go; DO NOT EDIT.\n\n//go:build amd64 && !purego\n\npackage qdot\n")
	for _, is := range []struct {
		isa    isa
		tiles  []tile
		ftiles []tile
	}{{avx512, tiles512, ftiles512}, {avx2, tiles2, ftiles2}} {
		for _, fm := range []string{"q4", "u8"} {
			for _, t := range is.tiles {
				g := &gen{isa: is.isa, fmt: fm, t: t}
				fmt.Fprintf(&decl, "\n//go:noescape\nfunc %s(w *byte, s, b, x, xsum *float32, ng, cpg, c, k int, out *float32, ldo int)\n", g.name())
			}
		}
		for _, t := range is.ftiles {
			g := &gen{isa: is.isa, fmt: "f32", t: t}
			fmt.Fprintf(&decl, "\n//go:noescape\nfunc %s(w *float32, s, b, x, xsum *float32, ng, cpg, c, k int, out *float32, ldo int)\n", g.name())
		}
		fmt.Fprintf(&decl, "\n//go:noescape\nfunc q4Expand%s(dst *float32, w *byte, n int)\n", is.isa.name)
		fmt.Fprintf(&decl, "\n//go:noescape\nfunc u8Expand%s(dst *float32, q *byte, n, c int)\n", is.isa.name)
	}
	if err := os.WriteFile("kernels_decl_amd64.go", decl.Bytes(), 0o644); err != nil {
		panic(err)
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
}

// The tiles generated; kernels_amd64.go dispatches them. ftiles run on
// codes expanded beforehand (centred float32, rows k floats apart) by the
// expanders, which produce exactly the floats the other tiles compute.
var (
	ftiles512 = []tile{{4, 4, true}}
	ftiles2   = []tile{{4, 2, true}}

	tiles512 = []tile{{1, 1, false}, {4, 1, false}}
	tiles2   = []tile{{1, 1, false}, {4, 1, false}}
)

// expanders: func q4ExpandISA(dst *float32, w *byte, n int) writes the 32·n
// centred codes of the n·16 packed bytes at w; func u8ExpandISA(dst *float32,
// q *byte, n, c int) those of the 32·n unpacked codes at q, less c.
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
