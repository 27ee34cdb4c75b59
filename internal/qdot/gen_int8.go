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
// At the end of a group each row adds s·d·float32(Σ) lane by lane to a
// float32 sum; at the end of the weight row Σ b·xs is added and the lanes
// are summed. The activations are laid out by the quantizer in the order
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
	b   bytes.Buffer
	w   width
	r   int
	dat map[string]string
	ord []string
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
// sums, Y8 the decoded codes, Y9 a product, Y10 the group's scale, Y11-Y14
// constants.
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
		g.i("VMOVDQU", g.vec("i8ones", "int16 ones.", fill(16, func(int) uint64 { return 1 }, 2)), y(13))
	case b == 2:
		g.i("VMOVDQU", g.vec("i8m2", "Two low bits.", fill(32, func(int) uint64 { return 0x03 }, 1)), y(11))
		g.i("VMOVDQU", g.vec("i8sh2", "Qword shifts 0, 2, 4, 6: qword r holds codes 4j+r.",
			fill(4, func(i int) uint64 { return uint64(2 * i) }, 8)), y(12))
		g.i("VMOVDQU", g.vec("i8ones", "int16 ones.", fill(16, func(int) uint64 { return 1 }, 2)), y(13))
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

func (g *gen) name() string { return fmt.Sprintf("i8a%dTile%dAVX2", g.w.bits, g.r) }

func (g *gen) kernel() {
	R := g.r
	xs := func(off, r int) string { return row(off, "DI", "R12", "R13", r) }
	ds := func(r int) string { return row(0, "DX", "R10", "R11", r) }
	g.p("// func %s(w *byte, s, b *float32, x *byte, d, xs, xr *float32, ng, cpg, n, ldx int, out *float32, ldo int)", g.name())
	g.p("TEXT ·%s(SB), NOSPLIT, $0-104", g.name())
	g.i("MOVQ", "w+0(FP)", "SI")
	g.i("MOVQ", "s+8(FP)", "BX")
	g.i("MOVQ", "b+16(FP)", "R8")
	g.i("MOVQ", "out+88(FP)", "R9")
	g.i("MOVQ", "ng+56(FP)", "R10")
	g.i("SHLQ", "$2", "R10")
	g.i("LEAQ", "(R10)(R10*2)", "R11")
	g.i("MOVQ", "ldx+80(FP)", "R12")
	g.i("LEAQ", "(R12)(R12*2)", "R13")
	g.consts()
	g.p("row:")
	for r := range R {
		g.i("VXORPS", y(fr(r)), y(fr(r)), y(fr(r)))
	}
	g.i("MOVQ", "x+24(FP)", "DI")
	g.i("MOVQ", "d+32(FP)", "DX")
	g.i("MOVQ", "ng+56(FP)", "CX")
	g.p("group:")
	for r := range R {
		g.i("VPXOR", y(ir(r)), y(ir(r)), y(ir(r)))
	}
	g.i("MOVQ", "cpg+64(FP)", "AX")
	g.p("step:")
	if g.w.wide {
		for h := range 2 {
			g.decode(h)
			for r := range R {
				g.i("VPMADDWD", xs(32*h, r), y(yc), y(yt))
				g.i("VPADDD", y(yt), y(ir(r)), y(ir(r)))
			}
		}
		g.i("ADDQ", "$64", "DI")
	} else {
		g.decode(0)
		for r := range R {
			g.i("VPMADDUBSW", xs(0, r), y(yc), y(yt))
			g.i("VPADDW", y(yt), y(ir(r)), y(ir(r)))
		}
		g.i("ADDQ", "$32", "DI")
	}
	g.i("ADDQ", fmt.Sprintf("$%d", g.w.stepBytes()), "SI")
	g.i("DECQ", "AX")
	g.i("JNZ", "step")
	g.i("VBROADCASTSS", "(BX)", y(ys))
	for r := range R {
		if !g.w.wide {
			g.i("VPMADDWD", y(13), y(ir(r)), y(ir(r)))
		}
		g.i("VCVTDQ2PS", y(ir(r)), y(ir(r)))
		g.i("VBROADCASTSS", ds(r), y(yt))
		g.i("VMULPS", y(ys), y(yt), y(yt))
		g.i("VFMADD231PS", y(yt), y(ir(r)), y(fr(r)))
	}
	g.i("ADDQ", "$4", "BX")
	g.i("ADDQ", "$4", "DX")
	g.i("DECQ", "CX")
	g.i("JNZ", "group")

	// The bias and the rounding's rest: Σ b·xs + s·xr, eight groups at a
	// time into F, the rest one at a time into I. BX goes back to the row's
	// scales and ends at the next row's; AX walks the rests.
	g.i("SUBQ", "R10", "BX")
	g.i("MOVQ", "xs+40(FP)", "DX")
	g.i("MOVQ", "xr+48(FP)", "AX")
	g.i("MOVQ", "ng+56(FP)", "CX")
	g.i("SHRQ", "$3", "CX")
	g.i("JZ", "btail")
	g.p("bias8:")
	g.i("VMOVUPS", "(R8)", y(yt))
	g.i("VMOVUPS", "(BX)", y(ys))
	for r := range R {
		g.i("VFMADD231PS", ds(r), y(yt), y(fr(r)))
		g.i("VFMADD231PS", row(0, "AX", "R10", "R11", r), y(ys), y(fr(r)))
	}
	g.i("ADDQ", "$32", "R8")
	g.i("ADDQ", "$32", "BX")
	g.i("ADDQ", "$32", "DX")
	g.i("ADDQ", "$32", "AX")
	g.i("DECQ", "CX")
	g.i("JNZ", "bias8")
	g.p("btail:")
	for r := range R {
		g.i("VPXOR", y(ir(r)), y(ir(r)), y(ir(r)))
	}
	g.i("MOVQ", "ng+56(FP)", "CX")
	g.i("ANDQ", "$7", "CX")
	g.i("JZ", "sum")
	g.p("bias1:")
	g.i("VMOVSS", "(R8)", x(yt))
	g.i("VMOVSS", "(BX)", x(ys))
	for r := range R {
		g.i("VFMADD231SS", ds(r), x(yt), x(ir(r)))
		g.i("VFMADD231SS", row(0, "AX", "R10", "R11", r), x(ys), x(ir(r)))
	}
	g.i("ADDQ", "$4", "R8")
	g.i("ADDQ", "$4", "BX")
	g.i("ADDQ", "$4", "DX")
	g.i("ADDQ", "$4", "AX")
	g.i("DECQ", "CX")
	g.i("JNZ", "bias1")
	g.p("sum:")
	g.i("MOVQ", "ldo+96(FP)", "AX")
	g.i("SHLQ", "$2", "AX")
	g.i("LEAQ", "(AX)(AX*2)", "CX")
	for r := range R {
		f := fr(r)
		g.i("VEXTRACTF128", "$1", y(f), x(yt))
		g.i("VADDPS", x(yt), x(f), x(f))
		g.i("VADDPS", x(ir(r)), x(f), x(f))
		g.i("VHADDPS", x(f), x(f), x(f))
		g.i("VHADDPS", x(f), x(f), x(f))
		g.i("VMOVSS", x(f), row(0, "R9", "AX", "CX", r))
	}
	g.i("ADDQ", "$4", "R9")
	g.i("DECQ", "n+72(FP)")
	g.i("JNZ", "row")
	g.i("VZEROUPPER")
	g.i("RET")
	g.p("")
}

func main() {
	g := &gen{dat: map[string]string{}}
	var body bytes.Buffer
	var decl bytes.Buffer
	decl.WriteString("// Code generated by gen_int8.go; DO NOT EDIT.\n\n//go:build amd64 && !purego\n\npackage qdot\n")
	for _, w := range widths {
		for _, r := range []int{1, 4} {
			g.w, g.r = w, r
			g.b.Reset()
			g.kernel()
			body.Write(g.b.Bytes())
			fmt.Fprintf(&decl, "\n//go:noescape\nfunc %s(w *byte, s, b *float32, x *byte, d, xs, xr *float32, ng, cpg, n, ldx int, out *float32, ldo int)\n", g.name())
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
