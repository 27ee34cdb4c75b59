// Package qdot holds the CPU hot loops for MLX-format quantized Linear
// layers: dot products between weight rows of codes q (with a float32 scale
// s and, for affine codes, a bias b per group of gs codes along k) and
// float32 activation rows x,
//
//	y = Σ_k x[k]·(v(q[k])·s[g(k)] + b[g(k)])
//	  = Σ_g ( s[g]·Σ_{k∈g} v(q[k])·x[k] + b[g]·xsum[g] ),
//
// where xsum[g] = Σ_{k∈g} x[k] is computed by the caller once per activation
// row (see GroupSums) and shared by every weight row: the bias fold. v(q) is
// the code itself for affine codes and the code's floating-point value for
// E2M1 and E4M3 codes, which have no biases.
//
// Two families of entry points:
//
//   - MatVec and MatMat run whole layers on the codes as MLX stores them,
//     for every format (see Codes): affine codes packed 2, 3, 4, 5, 6 or 8
//     bits wide in an LSB-first bitstream, E2M1 (mxfp4, nvfp4) and E4M3
//     (mxfp8). The codes are decoded in registers, never unpacked in memory.
//     MatVec decodes each weight row once per four activation rows; MatMat,
//     for many activation rows, expands blocks of weight rows to float32
//     once and runs register tiles of several activation × weight rows.
//   - DotQ4, DotU8, DotQ4Rows, DotU8Rows, MatQ4, MatU8 and MatU8Bits take
//     affine codes packed 4-bit (byte i holds code 2i in its low nibble and
//     code 2i+1 in its high nibble) or unpacked, one uint8 per code of any
//     width up to 8 bits.
//
// The group size gs must be a positive multiple of 32 that divides k; E2M1
// codes in MatVec and MatMat also take multiples of 16 (nvfp4 uses groups of
// 16). Lengths are checked and a mismatch panics: these are internal
// functions and the caller is expected to have validated shapes already.
// No entry point reads outside the slices it is given.
//
// Arithmetic: affine codes are centred, u = q − c with c = 2^(bits−1) (8 for
// DotQ4, DotU8, MatQ4 and MatU8), and the bias becomes b + c·s, so the
// float32 running sums stay near the size of the result instead of
// carrying the mean c·s·Σx that the bias cancels at the end. Every decoded
// value is exact in float32. Everything runs in float32 with FMAs in a fixed
// order.
//
// Reproducibility: within one implementation (see Impl) every entry point
// performs, for a given (weight row, activation row) pair, the same float
// operations in the same order, so DotQ4, DotU8 (same codes), DotQ4Rows,
// DotU8Rows, MatQ4 and MatU8 agree bit for bit whatever the blocking; so do
// MatVec and MatMat, and for affine codes of width bits they equal
// MatU8Bits(bits) on the unpacked codes (and MatQ4 for 4 bits). Different
// implementations (avx512, avx2, generic) order their operations
// differently and may differ in the last bits; neon performs the portable
// path's operations in its order, so on arm64 the two agree bit for bit.
package qdot

import (
	"fmt"
	"sync"
)

// implKind names a code path.
type implKind int

const (
	implGeneric implKind = iota // portable Go
	implAVX2                    // amd64 AVX2 + FMA assembly
	implAVX512                  // amd64 AVX-512 (F, BW, VL, VBMI) assembly
	implNEON                    // arm64 NEON assembly
)

func (k implKind) String() string {
	switch k {
	case implAVX512:
		return "avx512"
	case implAVX2:
		return "avx2"
	case implNEON:
		return "neon"
	}
	return "generic"
}

// impl is the path in use: the best one the CPU supports, chosen once at
// start-up. Tests lower it to exercise the other paths.
var impl = detectImpl()

// Impl names the code path in use: "avx512", "avx2", "neon" or "generic".
func Impl() string { return impl.String() }

// kernel is one assembly tile (see kernels_amd64.go); kernelF the same on
// codes expanded to float32.
type (
	kernel  func(w *byte, s, b, x, xsum *float32, ng, cpg, c, k int, out *float32, ldo int)
	kernelF func(u *float32, s, b, x, xsum *float32, ng, cpg, c, k int, out *float32, ldo int)
)

// tileSet holds the tiles of one path and code format: 1×1 and 4×1 (four
// activation rows, one weight row), and the expander writing k codes as the
// float32 values the tiles decode them to, for the matrix tile.
type tileSet struct {
	one, rows4 kernel
	expand     func(dst *float32, codes *byte, k, c int)
}

// kernelSet is one path: tiles per format and the matrix tiles, 4
// activation rows × mmC weight rows of expanded codes, in steps of 32 codes
// (mm) or 16 (mmh, for groups of an odd multiple of 16).
type kernelSet struct {
	q4, u8            tileSet
	a2, a3, a5, a6    tileSet
	e2m1, e2m1h, e4m3 tileSet
	mm, mmh           kernelF
	mmC               int
}

// center4 is the centre of 4-bit codes.
const center4 = 8

// format describes how one weight row's codes are stored: the portable
// decoder, the tiles, and whether the tiles step 16 codes at a time.
type format struct {
	dec   decoder
	tiles func(*kernelSet) *tileSet
	half  bool
}

var (
	fmtQ4 = format{dec: decodeQ4, tiles: func(ks *kernelSet) *tileSet { return &ks.q4 }}
	fmtU8 = format{dec: decodeU8, tiles: func(ks *kernelSet) *tileSet { return &ks.u8 }}
)

// Codes says how a weight row's codes are stored and what value each code
// stands for. The zero Codes is not a format; use Affine, E2M1 or E4M3.
type Codes struct {
	kind codeKind
	bits uint8
}

type codeKind uint8

const (
	kindAffine codeKind = iota + 1
	kindE2M1
	kindE4M3
)

// Affine returns the codes of MLX's affine mode, unsigned integers packed
// bits wide (2, 3, 4, 5, 6 or 8) and centred on 2^(bits−1): code j of a row
// occupies bits [j·bits, (j+1)·bits) of the row read as an LSB-first
// bitstream (bit i is bit i%8 of byte i/8). It panics for other widths.
func Affine(bits int) Codes {
	switch bits {
	case 2, 3, 4, 5, 6, 8:
		return Codes{kindAffine, uint8(bits)}
	}
	panic(fmt.Sprintf("qdot: no packed affine codes of %d bits", bits))
}

// The floating-point codes, centred on 0 and without biases: E2M1 (FP4, of
// MLX's mxfp4 and nvfp4 modes) is packed two codes to a byte, low nibble
// first, bit 3 the sign and bits 0-2 indexing 0, 0.5, 1, 1.5, 2, 3, 4, 6;
// E4M3 (FP8, of mxfp8) is one byte per code, decoded as MLX does: exponent
// bias 7, subnormals, and ±480 for 0x7F and 0xFF (no NaN).
var (
	E2M1 = Codes{kindE2M1, 4}
	E4M3 = Codes{kindE4M3, 8}
)

// RowBytes returns the bytes of k codes (k a multiple of 8).
func (c Codes) RowBytes(k int) int { return k * int(c.bits) / 8 }

// String names the codes: "affine4", "e2m1", "e4m3".
func (c Codes) String() string {
	switch c.kind {
	case kindAffine:
		return fmt.Sprintf("affine%d", c.bits)
	case kindE2M1:
		return "e2m1"
	case kindE4M3:
		return "e4m3"
	}
	return "invalid"
}

// center is the value subtracted from every code, folded into the bias.
func (c Codes) center() int {
	if c.kind == kindAffine {
		return 1 << (c.bits - 1)
	}
	return 0
}

var (
	fmtA2    = format{dec: decoder{decBits, 2}, tiles: func(ks *kernelSet) *tileSet { return &ks.a2 }}
	fmtA3    = format{dec: decoder{decBits, 3}, tiles: func(ks *kernelSet) *tileSet { return &ks.a3 }}
	fmtA5    = format{dec: decoder{decBits, 5}, tiles: func(ks *kernelSet) *tileSet { return &ks.a5 }}
	fmtA6    = format{dec: decoder{decBits, 6}, tiles: func(ks *kernelSet) *tileSet { return &ks.a6 }}
	fmtE2M1  = format{dec: decodeE2M1, tiles: func(ks *kernelSet) *tileSet { return &ks.e2m1 }}
	fmtE2M1h = format{dec: decodeE2M1, tiles: func(ks *kernelSet) *tileSet { return &ks.e2m1h }, half: true}
	fmtE4M3  = format{dec: decodeE4M3, tiles: func(ks *kernelSet) *tileSet { return &ks.e4m3 }}
)

// format returns the code format of c for groups of gs codes. Packed 4-bit
// and 8-bit affine codes are the MatQ4 and MatU8Bits formats.
func (c Codes) format(gs int) format {
	switch {
	case c.kind == kindE2M1 && gs%32 != 0:
		return fmtE2M1h
	case c.kind == kindE2M1:
		return fmtE2M1
	case c.kind == kindE4M3:
		return fmtE4M3
	}
	switch c.bits {
	case 2:
		return fmtA2
	case 3:
		return fmtA3
	case 4:
		return fmtQ4
	case 5:
		return fmtA5
	case 6:
		return fmtA6
	}
	return fmtU8
}

// DotQ4 returns the dot product of one packed 4-bit weight row w (k/2 bytes,
// k = 2·len(w)) with the activation row x (k values). s and b hold the k/gs
// group scales and biases of the row and xsum the k/gs group sums of x.
func DotQ4(w []byte, s, b, x, xsum []float32, gs int) float32 {
	k := 2 * len(w)
	ng := checkRow(k, len(s), len(b), len(x), len(xsum), gs)
	if kernelsFor(impl) != nil {
		return dot1(impl, false, &w[0], &s[0], &b[0], &x[0], &xsum[0], ng, gs/32, center4, k)
	}
	var y [1]float32
	blockFor(impl)(decodeQ4, y[:], 1, w, center4, s, b, x, xsum, 1, gs)
	return y[0]
}

// DotU8 is DotQ4 for unpacked codes: q holds one code per byte (k = len(q)),
// any width up to 8 bits. For the same codes it returns exactly what DotQ4
// returns. (Codes are centred on 8 like 4-bit ones; wider codes are handled
// exactly, only with less cancellation of the running sums.)
func DotU8(q []uint8, s, b, x, xsum []float32, gs int) float32 {
	k := len(q)
	ng := checkRow(k, len(s), len(b), len(x), len(xsum), gs)
	const c = center4
	if kernelsFor(impl) != nil {
		return dot1(impl, true, &q[0], &s[0], &b[0], &x[0], &xsum[0], ng, gs/32, c, k)
	}
	var y [1]float32
	blockFor(impl)(decodeU8, y[:], 1, q, c, s, b, x, xsum, 1, gs)
	return y[0]
}

// DotQ4Rows computes dst[i] = DotQ4(w, s, b, x[i·k:(i+1)·k], xsum[i·ng:(i+1)·ng], gs)
// for every activation row i < len(dst), with k = 2·len(w) and ng = k/gs: x is
// a row-major len(dst)×k matrix and xsum a len(dst)×ng one. Each weight code
// is expanded once per four activation rows. Results equal DotQ4's bit for
// bit.
func DotQ4Rows(dst []float32, w []byte, s, b, x, xsum []float32, gs int) {
	if len(dst) == 0 {
		panic("qdot: DotQ4Rows with no rows")
	}
	k := 2 * len(w)
	checkRows(len(dst), k, len(s), len(b), len(x), len(xsum), gs)
	matmul(fmtQ4, true, dst, 1, w, center4, s, b, x, xsum, len(dst), 1, k, gs)
}

// DotU8Rows is DotQ4Rows for unpacked codes (k = len(q)). Results equal
// DotU8's (and so DotQ4's) bit for bit.
func DotU8Rows(dst []float32, q []uint8, s, b, x, xsum []float32, gs int) {
	if len(dst) == 0 {
		panic("qdot: DotU8Rows with no rows")
	}
	k := len(q)
	checkRows(len(dst), k, len(s), len(b), len(x), len(xsum), gs)
	matmul(fmtU8, true, dst, 1, q, center4, s, b, x, xsum, len(dst), 1, k, gs)
}

// MatQ4 computes a whole layer: y[i·ldy + j] = DotQ4(w_j, s_j, b_j, x_i, xsum_i, gs)
// for the m activation rows x_i (x is row-major m×k, xsum m×(k/gs)) and the
// n weight rows w_j (w is n×k/2 bytes, s and b are n×(k/gs)); k and n follow
// from the lengths. y needs ldy ≥ n and (m−1)·ldy + n elements, so a
// worker can fill a column range of a wider output. For four or more
// activation rows MatQ4 expands blocks of weight rows to float32 once and
// runs register tiles of several activation × weight rows over them;
// results equal DotQ4's bit for bit.
func MatQ4(y []float32, ldy int, w []byte, s, b, x, xsum []float32, m, gs int) {
	k, n := checkMat(y, ldy, len(w), 2, s, b, x, xsum, m, gs)
	matmul(fmtQ4, true, y, ldy, w, center4, s, b, x, xsum, m, n, k, gs)
}

// MatU8 is MatQ4 for unpacked codes: q is n×k bytes. Results equal DotU8's
// bit for bit.
func MatU8(y []float32, ldy int, q []uint8, s, b, x, xsum []float32, m, gs int) {
	k, n := checkMat(y, ldy, len(q), 1, s, b, x, xsum, m, gs)
	matmul(fmtU8, true, y, ldy, q, center4, s, b, x, xsum, m, n, k, gs)
}

// MatU8Bits is MatU8 for codes of the given width (1 to 8 bits), centred
// on 2^(bits−1) instead of 8, which keeps the running sums small for widths
// other than 4. For bits = 4 it equals MatU8. With m = 1 and a single weight
// row it is the single dot product; results agree bit for bit whatever the
// shape of the call.
func MatU8Bits(y []float32, ldy int, q []uint8, bits int, s, b, x, xsum []float32, m, gs int) {
	if bits < 1 || bits > 8 {
		panic(fmt.Sprintf("qdot: code width %d bits is not in 1..8", bits))
	}
	k, n := checkMat(y, ldy, len(q), 1, s, b, x, xsum, m, gs)
	matmul(fmtU8, true, y, ldy, q, 1<<(bits-1), s, b, x, xsum, m, n, k, gs)
}

// MatVec computes a whole layer on codes c read as stored, decoding them in
// registers:
//
//	y[i·ldy + j] = Σ_g s[j,g]·Σ_{k∈g} v(q[j,k])·x[i,k] + (b[j,g] + center·s[j,g])·xsum[i,g]
//
// for the m activation rows x_i (x is row-major m×k, xsum m×(k/gs), as
// GroupSums writes it) and the n weight rows (w is n rows of c.RowBytes(k)
// bytes, s and b are n×(k/gs)); k and n follow from the lengths. v(q) is
// the centred code q − center for affine codes (center = 2^(bits−1)) and the
// code's value for E2M1 and E4M3 (center = 0). Codes without biases (E2M1,
// E4M3) take b = nil, and xsum may then be nil too. y needs ldy ≥ n and
// (m−1)·ldy + n elements. The group size gs is a positive multiple of 32
// dividing k; E2M1 codes also take multiples of 16 (nvfp4's groups of 16).
//
// Each weight row is decoded once per four activation rows (4×1 tiles),
// leftover rows one by one. For affine codes the results equal MatU8Bits's
// on the unpacked codes (and MatQ4's for 4 bits) bit for bit. No byte
// outside the slices given is read.
func MatVec(y []float32, ldy int, w []byte, c Codes, s, b, x, xsum []float32, m, gs int) {
	k, n := checkCodes(y, ldy, w, c, s, b, x, xsum, m, gs)
	matmul(c.format(gs), false, y, ldy, w, c.center(), s, b, x, xsum, m, n, k, gs)
}

// MatMat is MatVec for many activation rows: blocks of weight rows are
// expanded once to float32 and swept by register tiles of four activation
// rows × several weight rows, leftovers by MatVec's tiles. Results equal
// MatVec's bit for bit.
func MatMat(y []float32, ldy int, w []byte, c Codes, s, b, x, xsum []float32, m, gs int) {
	k, n := checkCodes(y, ldy, w, c, s, b, x, xsum, m, gs)
	matmul(c.format(gs), true, y, ldy, w, c.center(), s, b, x, xsum, m, n, k, gs)
}

// GroupSums writes xsum[g] = Σ x[g·gs:(g+1)·gs] for every group of x (one or
// more rows of k values each; groups never straddle rows when gs divides k),
// accumulated in float64 and rounded once. gs must be a positive multiple
// of 16 and len(xsum) must be len(x)/gs.
func GroupSums(xsum, x []float32, gs int) {
	if gs <= 0 || gs%16 != 0 || len(x) == 0 || len(x)%gs != 0 || len(xsum) != len(x)/gs {
		panic(fmt.Sprintf("qdot: GroupSums of %d values in groups of %d into %d sums", len(x), gs, len(xsum)))
	}
	for g := range xsum {
		var t float64
		for _, v := range x[g*gs : (g+1)*gs] {
			t += float64(v)
		}
		xsum[g] = float32(t)
	}
}

// wblockBytes bounds the expanded weight rows MatQ4 keeps in cache (L2)
// while it sweeps the activation rows. A variable so tests can shrink it.
var wblockBytes = 256 << 10

// scratch holds expanded weight blocks between calls.
var scratch = sync.Pool{New: func() any { return new([]float32) }}

// matmul is the driver behind the multi-row entry points; all lengths have
// been checked (b and xsum may be nil for codes without biases). Row i of
// the output lives at y[i·ldy:].
//
// With mm, activation rows in fours go through the matrix tile: a block of
// weight rows is expanded once to float32 (the same exact values the other
// tiles compute in registers, in the same lanes, so results do not change)
// and every block of four activation rows sweeps it. Leftover weight rows
// (all of them without mm) use the 4×1 tile, leftover activation rows the
// 1×1 tile.
func matmul(f format, mm bool, y []float32, ldy int, codes []byte, c int, s, b, x, xsum []float32, m, n, k, gs int) {
	ng := k / gs
	rowBytes := f.dec.bytes(k)
	ks := kernelsFor(impl)
	if ks == nil {
		blk := blockFor(impl)
		for j := range n {
			for i := 0; i < m; i += blockRows {
				r := min(blockRows, m-i)
				blk(f.dec, y[i*ldy+j:], ldy, codes[j*rowBytes:(j+1)*rowBytes], c,
					s[j*ng:(j+1)*ng], part(b, j*ng, (j+1)*ng), x[i*k:(i+r)*k], part(xsum, i*ng, (i+r)*ng), r, gs)
			}
		}
		return
	}
	ts := f.tiles(ks)
	cpg, mmk := gs/32, ks.mm
	if f.half {
		cpg, mmk = gs/16, ks.mmh
	}
	call := func(kern kernel, i, j int) {
		kern(&codes[j*rowBytes], &s[j*ng], at(b, j*ng), &x[i*k], at(xsum, i*ng), ng, cpg, c, k, &y[i*ldy+j], ldy)
	}
	full := m - m%blockRows
	nfull := n - n%ks.mmC
	if !mm {
		nfull = 0
	}
	if full > 0 && nfull > 0 {
		wb := max(ks.mmC, wblockBytes/(4*k)/ks.mmC*ks.mmC)
		wb = min(wb, nfull)
		bp := scratch.Get().(*[]float32)
		if cap(*bp) < wb*k {
			*bp = make([]float32, wb*k)
		}
		u := (*bp)[:wb*k]
		for j0 := 0; j0 < nfull; j0 += wb {
			j1 := min(nfull, j0+wb)
			for j := j0; j < j1; j++ {
				ts.expand(&u[(j-j0)*k], &codes[j*rowBytes], k, c)
			}
			for i := 0; i < full; i += blockRows {
				for j := j0; j < j1; j += ks.mmC {
					mmk(&u[(j-j0)*k], &s[j*ng], at(b, j*ng), &x[i*k], at(xsum, i*ng), ng, cpg, c, k, &y[i*ldy+j], ldy)
				}
			}
		}
		scratch.Put(bp)
	}
	for j := nfull; j < n && full > 0; j++ {
		for i := 0; i < full; i += blockRows {
			call(ts.rows4, i, j)
		}
	}
	// Remaining activation rows one at a time. (Tiles of several weight
	// rows are slower here: a single sequential stream through the weights
	// prefetches better once they no longer fit in cache.)
	for i := full; i < m; i++ {
		for j := range n {
			call(ts.one, i, j)
		}
	}
}

// at is &p[i], or nil for a nil slice (biases and group sums of codes
// without biases).
func at(p []float32, i int) *float32 {
	if p == nil {
		return nil
	}
	return &p[i]
}

// part is p[i:j], or nil for a nil slice.
func part(p []float32, i, j int) []float32 {
	if p == nil {
		return nil
	}
	return p[i:j]
}

// blockRows is the register blocking over activation rows.
const blockRows = 4

// checkRow validates one row's lengths and returns the group count k/gs.
func checkRow(k, ns, nb, nx, nxsum, gs int) int {
	ng := checkK(k, gs)
	if ns != ng || nb != ng || nx != k || nxsum != ng {
		panic(fmt.Sprintf("qdot: lengths s=%d b=%d x=%d xsum=%d, want %d %d %d %d (k=%d gs=%d)",
			ns, nb, nx, nxsum, ng, ng, k, ng, k, gs))
	}
	return ng
}

// checkK validates k and gs and returns k/gs.
func checkK(k, gs int) int {
	if gs <= 0 || gs%32 != 0 {
		panic(fmt.Sprintf("qdot: group size %d is not a positive multiple of 32", gs))
	}
	if k <= 0 || k%gs != 0 {
		panic(fmt.Sprintf("qdot: k=%d is not a positive multiple of the group size %d", k, gs))
	}
	return k / gs
}

// checkRows validates the lengths of a multi-row call.
func checkRows(rows, k, ns, nb, nx, nxsum, gs int) {
	ng := checkRow(k, ns, nb, k, ng0(k, gs), gs)
	if nx != rows*k || nxsum != rows*ng {
		panic(fmt.Sprintf("qdot: %d rows need x=%d xsum=%d, got %d %d (k=%d gs=%d)",
			rows, rows*k, rows*ng, nx, nxsum, k, gs))
	}
}

// ng0 is k/gs for a valid gs (checkRow reports an invalid one).
func ng0(k, gs int) int {
	if gs <= 0 {
		return 0
	}
	return k / gs
}

// checkMat validates a MatQ4/MatU8 call (codes holds n·k/per bytes) and
// returns k and n.
func checkMat(y []float32, ldy, ncodes, per int, s, b, x, xsum []float32, m, gs int) (k, n int) {
	if m <= 0 || len(x)%m != 0 {
		panic(fmt.Sprintf("qdot: %d activation values do not make %d rows", len(x), m))
	}
	k = len(x) / m
	ng := checkK(k, gs)
	n = len(s) / ng
	if n == 0 || len(s) != n*ng || len(b) != n*ng || ncodes*per != n*k || len(xsum) != m*ng {
		panic(fmt.Sprintf("qdot: lengths codes=%d s=%d b=%d xsum=%d do not fit m=%d k=%d gs=%d",
			ncodes, len(s), len(b), len(xsum), m, k, gs))
	}
	if ldy < n || len(y) < (m-1)*ldy+n {
		panic(fmt.Sprintf("qdot: output of %d values with stride %d is too small for %d×%d", len(y), ldy, m, n))
	}
	return k, n
}

// checkCodes validates a MatVec/MatMat call and returns k and n.
func checkCodes(y []float32, ldy int, w []byte, c Codes, s, b, x, xsum []float32, m, gs int) (k, n int) {
	if c.kind == 0 {
		panic("qdot: zero Codes value")
	}
	if m <= 0 || len(x)%m != 0 {
		panic(fmt.Sprintf("qdot: %d activation values do not make %d rows", len(x), m))
	}
	k = len(x) / m
	step := 32
	if c.kind == kindE2M1 {
		step = 16
	}
	if gs <= 0 || gs%step != 0 {
		panic(fmt.Sprintf("qdot: group size %d is not a positive multiple of %d (%v codes)", gs, step, c))
	}
	if k <= 0 || k%gs != 0 {
		panic(fmt.Sprintf("qdot: k=%d is not a positive multiple of the group size %d", k, gs))
	}
	ng := k / gs
	n = len(s) / ng
	bias := c.kind == kindAffine
	switch {
	case n == 0 || len(s) != n*ng || len(w) != n*c.RowBytes(k):
		panic(fmt.Sprintf("qdot: lengths w=%d s=%d do not fit %v codes with k=%d gs=%d", len(w), len(s), c, k, gs))
	case bias && (len(b) != n*ng || len(xsum) != m*ng):
		panic(fmt.Sprintf("qdot: lengths b=%d xsum=%d, want %d %d (m=%d n=%d k=%d gs=%d)", len(b), len(xsum), n*ng, m*ng, m, n, k, gs))
	case !bias && b != nil:
		panic(fmt.Sprintf("qdot: %v codes take no biases", c))
	case !bias && xsum != nil && len(xsum) != m*ng:
		panic(fmt.Sprintf("qdot: xsum=%d, want %d or nil (m=%d k=%d gs=%d)", len(xsum), m*ng, m, k, gs))
	}
	if ldy < n || len(y) < (m-1)*ldy+n {
		panic(fmt.Sprintf("qdot: output of %d values with stride %d is too small for %d×%d", len(y), ldy, m, n))
	}
	return k, n
}
