package cpu

import (
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/internal/qdot"
	"github.com/mlxq/mlxq/quant"
)

// operands are a matrix product's buffers as host slices.
type operands struct {
	x              []float32
	w              []byte
	scales, biases *engine.Buffer
	bias           []float32
	y              []float32
}

type (
	matmulFunc func(threads int, p engine.Params, o *operands)
	unpackFunc func(threads, rows, cols, bits int, w, codes []byte)
)

var matmulKernels = map[engine.Kernel]matmulFunc{
	engine.PerElement:    perElement,
	engine.Tiled:         tiled,
	engine.SIMD:          rowsKernel(codesRowBytes, dotEach),
	engine.SIMD4:         rowsKernel(codesRowBytes, matCodes),
	engine.SIMD4GS64:     rowsKernel(codesRowBytes, matCodes),
	engine.PackedSIMD4B4: rowsKernel(packedRowBytes, matPacked),
	engine.QMV:           packedKernel(qdot.MatVec),
	engine.QMM:           packedKernel(qdot.MatMat),
}

// dequantTables returns what the scalar kernels dequantize with: the value
// of each code before scaling, and every group's scale and bias as float32
// (biases nil for modes without them).
func dequantTables(p engine.Params, o *operands) (values *[256]float32, s, b []float32) {
	values = new([256]float32)
	for q := range values {
		switch p.Mode {
		case quant.MXFP4, quant.NVFP4:
			values[q] = float32(quant.E2M1ToFloat(uint8(q)))
		case quant.MXFP8:
			values[q] = float32(quant.E4M3ToFloat(uint8(q)))
		default:
			values[q] = float32(q)
		}
	}
	if p.Mode == quant.Affine {
		return values, float32s(o.scales), float32s(o.biases)
	}
	raw := bytesOf(o.scales)
	s = make([]float32, len(raw))
	for i, c := range raw {
		if p.Mode == quant.NVFP4 {
			s[i] = float32(quant.E4M3ToFloat(c))
		} else {
			s[i] = float32(quant.E8M0ToFloat(c))
		}
	}
	return values, s, nil
}

// dequantRow writes row n of the weight as float32 into dst.
func dequantRow(dst []float32, codes []byte, values *[256]float32, s, b []float32, gs int) {
	for k, q := range codes {
		g := k / gs
		v := s[g] * values[q]
		if b != nil {
			v += b[g]
		}
		dst[k] = v
	}
}

func (o *operands) biasOf(n int) float32 {
	if o.bias == nil {
		return 0
	}
	return o.bias[n]
}

// perElement computes each output on its own: dequantize each weight and
// accumulate x·w in float32, in k order.
func perElement(threads int, p engine.Params, o *operands) {
	values, s, b := dequantTables(p, o)
	ng := p.K / p.GroupSize
	parallel(threads, p.N, 16, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			codes := o.w[n*p.K : (n+1)*p.K]
			sn := s[n*ng : (n+1)*ng]
			var bn []float32
			if b != nil {
				bn = b[n*ng : (n+1)*ng]
			}
			for m := range p.M {
				x := o.x[m*p.K : (m+1)*p.K]
				var acc float32
				for k, q := range codes {
					w := sn[k/p.GroupSize] * values[q]
					if bn != nil {
						w += bn[k/p.GroupSize]
					}
					acc += x[k] * w
				}
				o.y[m*p.N+n] = acc + o.biasOf(n)
			}
		}
	})
}

// tileRows is the number of weight rows the tiled kernel dequantizes at once.
const tileRows = 16

// tiled dequantizes tiles of tileRows weight rows once and reuses each tile
// across every row of x.
func tiled(threads int, p engine.Params, o *operands) {
	values, s, b := dequantTables(p, o)
	ng := p.K / p.GroupSize
	tiles := (p.N + tileRows - 1) / tileRows
	parallel(threads, tiles, 1, func(lo, hi int) {
		tile := make([]float32, tileRows*p.K)
		for t := lo; t < hi; t++ {
			n0, n1 := t*tileRows, min((t+1)*tileRows, p.N)
			for n := n0; n < n1; n++ {
				var bn []float32
				if b != nil {
					bn = b[n*ng : (n+1)*ng]
				}
				dequantRow(tile[(n-n0)*p.K:(n-n0+1)*p.K], o.w[n*p.K:(n+1)*p.K], values, s[n*ng:(n+1)*ng], bn, p.GroupSize)
			}
			for m := range p.M {
				x := o.x[m*p.K : (m+1)*p.K]
				for n := n0; n < n1; n++ {
					o.y[m*p.N+n] = dot(x, tile[(n-n0)*p.K:(n-n0+1)*p.K]) + o.biasOf(n)
				}
			}
		}
	})
}

// dot returns Σ x[i]·w[i] with four partial sums.
func dot(x, w []float32) float32 {
	var a0, a1, a2, a3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		a0 += x[i] * w[i]
		a1 += x[i+1] * w[i+1]
		a2 += x[i+2] * w[i+2]
		a3 += x[i+3] * w[i+3]
	}
	for ; i < len(x); i++ {
		a0 += x[i] * w[i]
	}
	return (a0 + a1) + (a2 + a3)
}

// layerKernel computes the outputs of weight rows [lo, hi) for every row
// of x into y (row stride ldy); qdot's whole-layer functions have this form,
// given the code width.
type layerKernel func(y []float32, ldy int, w []byte, bits int, s, b, x, xsum []float32, m, gs int)

// dotEach is the one-output-at-a-time form: a qdot.DotU8 call per output.
func dotEach(y []float32, ldy int, w []byte, _ int, s, b, x, xsum []float32, m, gs int) {
	ng := len(xsum) / m
	k := len(x) / m
	n := len(s) / ng
	for j := range n {
		for i := range m {
			y[i*ldy+j] = qdot.DotU8(w[j*k:(j+1)*k], s[j*ng:(j+1)*ng], b[j*ng:(j+1)*ng], x[i*k:(i+1)*k], xsum[i*ng:(i+1)*ng], gs)
		}
	}
}

// matCodes runs qdot.MatU8Bits on unpacked codes.
func matCodes(y []float32, ldy int, w []byte, bits int, s, b, x, xsum []float32, m, gs int) {
	qdot.MatU8Bits(y, ldy, w, bits, s, b, x, xsum, m, gs)
}

// matPacked runs qdot.MatQ4 on packed 4-bit codes.
func matPacked(y []float32, ldy int, w []byte, _ int, s, b, x, xsum []float32, m, gs int) {
	qdot.MatQ4(y, ldy, w, s, b, x, xsum, m, gs)
}

func codesRowBytes(k int) int  { return k }
func packedRowBytes(k int) int { return k / 2 }

// rowsKernel builds a kernel on a qdot function: the group sums of x are
// computed once, then each thread computes the outputs of a range of weight
// rows for every row of x, and adds the Linear bias.
func rowsKernel(rowBytes func(k int) int, run layerKernel) matmulFunc {
	return func(threads int, p engine.Params, o *operands) {
		ng := p.K / p.GroupSize
		s, b := float32s(o.scales), float32s(o.biases)
		x := o.x[:p.M*p.K]
		xsum := make([]float32, p.M*ng)
		qdot.GroupSums(xsum, x, p.GroupSize)
		rb := rowBytes(p.K)
		parallel(threads, p.N, 8, func(lo, hi int) {
			run(o.y[lo:], p.N, o.w[lo*rb:hi*rb], p.Bits, s[lo*ng:hi*ng], b[lo*ng:hi*ng], x, xsum, p.M, p.GroupSize)
			o.addBias(p, lo, hi)
		})
	}
}

// unpackKernel expands packed rows into one byte per code.
var unpackKernel unpackFunc = func(threads, rows, cols, bits int, w, codes []byte) {
	rb := quant.RowBytes(cols, bits)
	parallel(threads, rows, 64, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			quant.Unpack(codes[r*cols:(r+1)*cols], w[r*rb:(r+1)*rb], bits)
		}
	})
}
