//go:build ignore

// gen_int8 writes int8_avx2_amd64.s and int8_decl_amd64.go: the tiles of
// MatInt8, R = 1 or 4 activation rows quantized to integers × n weight rows
// of affine codes as stored, for every width. Run `go generate` in this
// directory (the directive is in int8_amd64.go).
//
// Each step of 32 codes is decoded into unsigned integers in a vector:
//
//   - 2- and 4-bit codes become 32 bytes (a broadcast load, a variable
//     shift per lane and a mask), multiplied with int8 activations by
//     VPMADDUBSW into int16 pairs, summed over the group and widened to
//     int32 by VPMADDWD with ones (no overflow: 4·2·15·127 < 2^15);
//   - 3-, 5- and 6-bit codes become two vectors of 16 words, each code
//     moved by VPSHUFB into its word and by VPMULLW to bits [15−b, 15),
//     then masked: the word is q·2^(15−b), which the activations' steps
//     divide out; 8-bit codes are zero-extended to words. VPMADDWD with
//     int16 activations sums them in int32 (below 2^27 over a group of 128).
//
// The VNNI tiles are the same with VPDPBUSD and VPDPWSSD (EVEX, 256 bits)
// taking the products and their sums into int32 lanes in one instruction;
// the sums are exact either way, so they return what the AVX2 tiles return.
//
// A prologue per weight row writes t = s·d for every activation row and
// group into a scratch and starts each row's float32 lane sums with
// Σ b·xs + s·xr; at the end of a group each row adds float32(Σ)·t lane by
// lane, and at the end of the weight row the lanes are summed. The activations are laid out by the quantizer in the order
// the decoded codes come in (perm in int8_amd64.go).
package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
)

// width is one code width's decoding.
type width struct {
	bits int
	wide bool // words and VPMADDWD, else bytes and VPMADDUBSW
}

var widths = []width{{2, false}, {3, true}, {4, false}, {5, true}, {6, true}, {8, true}}

// stepBytes is the size of 32 codes.
func (w width) stepBytes() int { return 4 * w.bits }

type gen struct {
	b    bytes.Buffer
	w    width
	r    int
	one  bool // groups of one step (32 codes)
	vnni bool // VPDPBUSD and VPDPWSSD (AVX512-VNNI, VL) for the products
	dat  map[string]string
	ord  []string
}

func (g *gen) p(format string, args ...any) { fmt.Fprintf(&g.b, format+"\n", args...) }
func (g *gen) i(op string, args ...string) {
	g.p("\t%-15s %s", op, strings.Join(args, ", "))
}

func y(n int) string { return fmt.Sprintf("Y%d", n) }
func x(n int) string { return fmt.Sprintf("X%d", n) }

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

// vec registers a 32-byte constant and returns its operand.
func (g *gen) vec(sym, comment string, b []byte) string {
	if _, ok := g.dat[sym]; !ok {
		var t strings.Builder
		fmt.Fprintf(&t, "// %s\n", comment)
		for o := 0; o < len(b); o += 8 {
			fmt.Fprintf(&t, "DATA %s<>+%d(SB)/8, $0x%016x\n", sym, o, binary.LittleEndian.Uint64(b[o:]))
		}
		fmt.Fprintf(&t, "GLOBL %s<>(SB), RODATA|NOPTR, $%d\n\n", sym, len(b))
		g.dat[sym] = t.String()
		g.ord = append(g.ord, sym)
	}
	return sym + "<>(SB)"
}

func fill(n int, f func(i int) uint64, size int) []byte {
	b := make([]byte, n*size)
	for i := range n {
		switch size {
		case 1:
			b[i] = byte(f(i))
		case 2:
			binary.LittleEndian.PutUint16(b[2*i:], uint16(f(i)))
		case 4:
			binary.LittleEndian.PutUint32(b[4*i:], uint32(f(i)))
		case 8:
			binary.LittleEndian.PutUint64(b[8*i:], f(i))
		}
	}
	return b
}

// Registers: F (Y0-Y3) the float sums of the rows, I (Y4-Y7) their group
// sums, Y8 the decoded codes, Y9 a product, Y10 a scale, Y11-Y14
// constants, Y15 the prologue's mask.
func fr(r int) int { return r }
func ir(r int) int { return 4 + r }

const (
	yc, yt, ys = 8, 9, 10
)

// halves are the loads of one step of a wide width: the byte offset of each
// 16-code half and the instruction that broadcasts it.
func (g *gen) halves() (offs [2]int, load string) {
	switch g.w.bits {
	case 3:
		return [2]int{0, 4}, "VPBROADCASTQ" // codes 16-31 start at byte 6
	case 5:
		return [2]int{0, 4}, "VBROADCASTI128" // at byte 10
	case 6:
		return [2]int{0, 8}, "VBROADCASTI128" // at byte 12
	}
	return [2]int{0, 16}, "VPMOVZXBW"
}

// consts loads the width's constants into Y11 and up.
func (g *gen) consts() {
	b := g.w.bits
	switch {
	case b == 4:
		g.i("VMOVDQU", g.vec("i8m4", "Low nibbles.", fill(32, func(int) uint64 { return 0x0F }, 1)), y(11))
		g.i("VMOVDQU", g.vec("i8sh4", "Dword shifts: 0 for the low 128 bits (even codes), 4 for the high (odd codes).",
			fill(8, func(i int) uint64 { return uint64(4 * (i / 4)) }, 4)), y(12))
		g.ones()
	case b == 2:
		g.i("VMOVDQU", g.vec("i8m2", "Two low bits.", fill(32, func(int) uint64 { return 0x03 }, 1)), y(11))
		g.i("VMOVDQU", g.vec("i8sh2", "Qword shifts 0, 2, 4, 6: qword r holds codes 4j+r.",
			fill(4, func(i int) uint64 { return uint64(2 * i) }, 8)), y(12))
		g.ones()
	case b == 8:
	default:
		offs, load := g.halves()
		loaded := 16
		if load == "VPBROADCASTQ" {
			loaded = 8
		}
		for h := range 2 {
			idx := make([]byte, 32)
			for wd := range 16 {
				pos := b*wd + 8*(h*2*b-offs[h])
				first := pos / 8
				last := (pos + b - 1) / 8
				if last >= loaded || offs[h]+loaded > g.w.stepBytes() {
					panic(fmt.Sprintf("%d-bit code %d of half %d is not in its load", b, wd, h))
				}
				idx[2*wd], idx[2*wd+1] = byte(first), 0x80
				if last != first {
					idx[2*wd+1] = byte(last)
				}
			}
			g.i("VMOVDQU", g.vec(fmt.Sprintf("i8w%dshuf%d", b, h),
				fmt.Sprintf("VPSHUFB indices: the bytes of %d-bit code i of half %d of a step to word i.", b, h), idx), y(11+h))
		}
		g.i("VMOVDQU", g.vec(fmt.Sprintf("i8w%dmul", b),
			fmt.Sprintf("VPMULLW factors 2^(%d-r), r the bit of code i in word i.", 15-b),
			fill(16, func(wd int) uint64 { return 1 << (15 - b - b*wd%8) }, 2)), y(13))
		g.i("VMOVDQU", g.vec(fmt.Sprintf("i8w%dmask", b), fmt.Sprintf("Bits [%d, 15).", 15-b),
			fill(16, func(int) uint64 { return uint64(1<<b-1) << (15 - b) }, 2)), y(14))
	}
}

// ones loads the int16 ones that widen the byte tiles' sums into Y13
// (the VNNI tiles sum into int32 directly).
func (g *gen) ones() {
	if !g.vnni {
		g.i("VMOVDQU", g.vec("i8ones", "int16 ones.", fill(16, func(int) uint64 { return 1 }, 2)), y(13))
	}
}

// pos returns, for the kernel's layout, the position along k of the value
// at element p of a step (the order the codes are decoded in).
func pos(w width, p int) int {
	switch w.bits {
	case 4:
		return 2*(p%16) + p/16
	case 2:
		return 4*(p%8) + p/8
	}
	return p
}

// decode decodes step half h (always 0 for bytes) into Y8.
func (g *gen) decode(h int) {
	b := g.w.bits
	switch {
	case b == 4:
		g.i("VBROADCASTI128", "(SI)", y(yc))
		g.i("VPSRLVD", y(12), y(yc), y(yc))
		g.i("VPAND", y(11), y(yc), y(yc))
	case b == 2:
		g.i("VPBROADCASTQ", "(SI)", y(yc))
		g.i("VPSRLVQ", y(12), y(yc), y(yc))
		g.i("VPAND", y(11), y(yc), y(yc))
	default:
		offs, load := g.halves()
		g.i(load, row(offs[h], "SI", "", "", 0), y(yc))
		if b != 8 {
			g.i("VPSHUFB", y(11+h), y(yc), y(yc))
			g.i("VPMULLW", y(13), y(yc), y(yc))
			g.i("VPAND", y(14), y(yc), y(yc))
		}
	}
}

func (g *gen) name() string {
	one := ""
	if g.one {
		one = "g32"
	}
	path := "AVX2"
	if g.vnni {
		path = "VNNI"
	}
	return fmt.Sprintf("i8a%dTile%d%s%s", g.w.bits, g.r, one, path)
}

// The argument list of every tile.
const args = "w *byte, s, b *float32, x *byte, d, xs, xr, t *float32, ng, cpg, n, ldx int, out *float32, ldo int"

func (g *gen) kernel() {
	R := g.r
	ra := func(base string, r int) string { return row(0, base, "R10", "R11", r) }
	g.p("// func %s(%s)", g.name(), args)
	g.p("TEXT ·%s(SB), NOSPLIT, $0-112", g.name())
	g.i("MOVQ", "w+0(FP)", "SI")
	g.i("MOVQ", "s+8(FP)", "BX")
	g.i("MOVQ", "b+16(FP)", "R8")
	g.i("MOVQ", "out+96(FP)", "R9")
	g.i("MOVQ", "ng+64(FP)", "R10")
	g.i("SHLQ", "$2", "R10")
	g.i("LEAQ", "(R10)(R10*2)", "R11")
	g.consts()
	g.p("row:")

	// The prologue, eight groups at a time (the last ones under a mask):
	// t = s·d for every row and group, and F = Σ b·xs + s·xr. BX and R8 end
	// at the next weight row's scales and biases. (A tile of one row
	// clears the four sums it uses.)
	for r := range max(R, 4) {
		g.i("VXORPS", y(fr(r)), y(fr(r)), y(fr(r)))
	}
	g.i("MOVQ", "d+32(FP)", "DX")
	g.i("MOVQ", "xs+40(FP)", "AX")
	g.i("MOVQ", "xr+48(FP)", "DI")
	g.i("MOVQ", "t+56(FP)", "R12")
	g.i("MOVQ", "ng+64(FP)", "CX")
	g.i("SHRQ", "$3", "CX")
	g.i("JZ", "tail")
	g.p("pro8:")
	g.i("VMOVUPS", "(BX)", y(ys))
	g.i("VMOVUPS", "(R8)", y(yt))
	for r := range R {
		g.i("VMULPS", ra("DX", r), y(ys), y(ir(r)))
		g.i("VMOVUPS", y(ir(r)), ra("R12", r))
		g.i("VFMADD231PS", ra("AX", r), y(yt), y(fr(r)))
		g.i("VFMADD231PS", ra("DI", r), y(ys), y(fr(r)))
	}
	for _, reg := range []string{"BX", "R8", "DX", "AX", "DI", "R12"} {
		g.i("ADDQ", "$32", reg)
	}
	g.i("DECQ", "CX")
	g.i("JNZ", "pro8")
	g.p("tail:")
	g.i("MOVQ", "ng+64(FP)", "CX")
	g.i("ANDQ", "$7", "CX")
	g.i("JZ", "groups")
	g.i("SHLQ", "$2", "CX")
	g.i("NEGQ", "CX")
	g.i("LEAQ", g.vec("i8tail", "Eight ones then eight zeros: the mask of the last n < 8 groups starts 8−n dwords in.",
		fill(16, func(i int) uint64 {
			if i < 8 {
				return 0xFFFFFFFF
			}
			return 0
		}, 4)), "R13")
	g.i("VMOVDQU", "32(R13)(CX*1)", y(15))
	g.i("VMASKMOVPS", "(BX)", y(15), y(ys))
	g.i("VMASKMOVPS", "(R8)", y(15), y(yt))
	g.i("SUBQ", "CX", "BX")
	g.i("SUBQ", "CX", "R8")
	for r := range R {
		g.i("VMASKMOVPS", ra("DX", r), y(15), y(ir(r)))
		g.i("VMULPS", y(ir(r)), y(ys), y(ir(r)))
		g.i("VMASKMOVPS", y(ir(r)), y(15), ra("R12", r))
		g.i("VMASKMOVPS", ra("AX", r), y(15), y(ir(r)))
		g.i("VFMADD231PS", y(ir(r)), y(yt), y(fr(r)))
		g.i("VMASKMOVPS", ra("DI", r), y(15), y(ir(r)))
		g.i("VFMADD231PS", y(ir(r)), y(ys), y(fr(r)))
	}

	// The groups: integer sums over cpg steps (one, for the g32 tiles),
	// then F += float32(Σ)·t. A single activation row takes four groups at
	// a time into four sums, so that the additions into F do not wait on
	// each other, and the rest one at a time.
	g.p("groups:")
	g.i("MOVQ", "x+24(FP)", "DI")
	g.i("MOVQ", "t+56(FP)", "DX")
	g.i("MOVQ", "ldx+88(FP)", "R12")
	g.i("LEAQ", "(R12)(R12*2)", "R13")
	g.i("MOVQ", "ng+64(FP)", "CX")
	if R == 1 {
		g.i("SHRQ", "$2", "CX")
		g.i("JZ", "rest")
		g.p("group4:")
		for u := range 4 {
			g.group(u, fmt.Sprintf("step%d", u))
		}
		g.i("DECQ", "CX")
		g.i("JNZ", "group4")
		g.p("rest:")
		g.i("MOVQ", "ng+64(FP)", "CX")
		g.i("ANDQ", "$3", "CX")
		g.i("JZ", "sum")
	}
	g.p("group:")
	g.group(0, "step")
	g.i("DECQ", "CX")
	g.i("JNZ", "group")
	g.p("sum:")
	if R == 1 {
		g.i("VADDPS", y(1), y(0), y(0))
		g.i("VADDPS", y(3), y(2), y(2))
		g.i("VADDPS", y(2), y(0), y(0))
	}

	// The lanes' sum of each row.
	g.i("MOVQ", "ldo+104(FP)", "AX")
	g.i("SHLQ", "$2", "AX")
	g.i("LEAQ", "(AX)(AX*2)", "CX")
	for r := range R {
		f := fr(r)
		g.i("VEXTRACTF128", "$1", y(f), x(yt))
		g.i("VADDPS", x(yt), x(f), x(f))
		g.i("VHADDPS", x(f), x(f), x(f))
		g.i("VHADDPS", x(f), x(f), x(f))
		g.i("VMOVSS", x(f), row(0, "R9", "AX", "CX", r))
	}
	g.i("ADDQ", "$4", "R9")
	g.i("DECQ", "n+80(FP)")
	g.i("JNZ", "row")
	g.i("VZEROUPPER")
	g.i("RET")
	g.p("")
}

// group emits one group: its integer sums over cpg steps (labelled step)
// into I, then F += float32(I)·t, and DX on to the next group's t. A tile of
// one row uses F and I number u, the others one per row.
func (g *gen) group(u int, step string) {
	R := g.r
	xa := func(off, r int) string { return row(off, "DI", "R12", "R13", r) }
	reg := func(r int) (f, i int) {
		if R == 1 {
			return fr(u), ir(u)
		}
		return fr(r), ir(r)
	}
	if !g.one || g.vnni {
		for r := range R {
			_, ri := reg(r)
			g.i("VPXOR", y(ri), y(ri), y(ri))
		}
	}
	if !g.one {
		g.i("MOVQ", "cpg+72(FP)", "AX")
		g.p("%s:", step)
	}
	// acc adds a product into I, or for the one step of a g32 tile writes
	// the first one there.
	acc := func(op, src string, r int, first bool) {
		_, ri := reg(r)
		if g.vnni {
			// The products' sums go straight into the int32 lanes.
			op = map[string]string{"VPMADDWD": "VPDPWSSD", "VPMADDUBSW": "VPDPBUSD"}[op]
			g.i(op, src, y(yc), y(ri))
			return
		}
		if g.one && first {
			g.i(op, src, y(yc), y(ri))
			return
		}
		g.i(op, src, y(yc), y(yt))
		add := "VPADDD"
		if !g.w.wide {
			add = "VPADDW"
		}
		g.i(add, y(yt), y(ri), y(ri))
	}
	if g.w.wide {
		for h := range 2 {
			g.decode(h)
			for r := range R {
				acc("VPMADDWD", xa(32*h, r), r, h == 0)
			}
		}
		g.i("ADDQ", "$64", "DI")
	} else {
		g.decode(0)
		for r := range R {
			acc("VPMADDUBSW", xa(0, r), r, true)
		}
		g.i("ADDQ", "$32", "DI")
	}
	g.i("ADDQ", fmt.Sprintf("$%d", g.w.stepBytes()), "SI")
	if !g.one {
		g.i("DECQ", "AX")
		g.i("JNZ", step)
	}
	for r := range R {
		rf, ri := reg(r)
		if !g.w.wide && !g.vnni {
			g.i("VPMADDWD", y(13), y(ri), y(ri))
		}
		g.i("VCVTDQ2PS", y(ri), y(ri))
		g.i("VBROADCASTSS", row(0, "DX", "R10", "R11", r), y(ys))
		g.i("VFMADD231PS", y(ys), y(ri), y(rf))
	}
	g.i("ADDQ", "$4", "DX")
}

func main() {
	g := &gen{dat: map[string]string{}}
	var body bytes.Buffer
	var decl bytes.Buffer
	decl.WriteString("// Code generated by gen_int8.go; DO NOT EDIT.\n\n//go:build amd64 && !purego\n\npackage qdot\n")
	for _, vnni := range []bool{false, true} {
		for _, w := range widths {
			for _, one := range []bool{false, true} {
				for _, r := range []int{1, 4} {
					g.w, g.r, g.one, g.vnni = w, r, one, vnni
					g.b.Reset()
					g.kernel()
					body.Write(g.b.Bytes())
					fmt.Fprintf(&decl, "\n//go:noescape\nfunc %s(%s)\n", g.name(), args)
				}
			}
		}
	}
	var out bytes.Buffer
	out.WriteString("// Code generated by gen_int8.go; DO NOT EDIT.\n\n//go:build amd64 && !purego\n\n#include \"textflag.h\"\n\n")
	for _, s := range g.ord {
		out.WriteString(g.dat[s])
	}
	out.Write(body.Bytes())
	write("int8_avx2_amd64.s", out.Bytes())
	write("int8_decl_amd64.go", decl.Bytes())
}

func write(name string, b []byte) {
	if err := os.WriteFile(name, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
