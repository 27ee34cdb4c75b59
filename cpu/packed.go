package cpu

import (
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/internal/qdot"
	"github.com/mlxq/mlxq/quant"
)

// crossover is the largest M at which qmv runs at least as fast as qmm on
// this backend, measured by BenchmarkCrossover (docs/perf.md): up to it,
// decoding the codes in registers once per four rows of x beats expanding
// blocks of the weight to float32 once for all rows.
const crossover = 8

// rowBlock is the number of weight rows whose scales and biases the packed
// kernels decode at a time, into a per-thread scratch.
const rowBlock = 64

// layerFunc is qdot.MatVec or qdot.MatMat.
type layerFunc func(y []float32, ldy int, w []byte, c qdot.Codes, s, b, x, xsum []float32, m, gs int)

// packedKernel builds qmv (run = qdot.MatVec) or qmm (qdot.MatMat) on the
// packed words as stored, for every mode, width and group size. Scales and
// biases stay in their stored dtype and are decoded rowBlock rows at a time.
// 16-bit activations of affine layers take the integer kernels instead
// (packedInt8).
func packedKernel(run layerFunc) matmulFunc {
	return func(threads int, p engine.Params, o *operands) {
		if integerKernel(p) {
			packedInt8(threads, p, o)
			return
		}
		codes := codesOf(p.Format)
		ng := p.K / p.GroupSize
		x := o.x[:p.M*p.K]
		xsum := make([]float32, p.M*ng)
		qdot.GroupSums(xsum, x, p.GroupSize)
		rb := codes.RowBytes(p.K)
		scales := newScaleReader(p.Mode, o.scales)
		var biases *scaleReader
		if o.biases != nil {
			biases = newScaleReader(p.Mode, o.biases)
		}
		parallel(threads, p.N, 8, func(lo, hi int) {
			s := make([]float32, min(rowBlock, hi-lo)*ng)
			var b []float32
			if biases != nil {
				b = make([]float32, len(s))
			}
			for r0 := lo; r0 < hi; r0 += rowBlock {
				r1 := min(hi, r0+rowBlock)
				sr := scales.rows(s, r0*ng, r1*ng)
				var br []float32
				if biases != nil {
					br = biases.rows(b, r0*ng, r1*ng)
				}
				run(o.y[r0:], p.N, o.w[r0*rb:r1*rb], codes, sr, br, x, xsum, p.M, p.GroupSize)
			}
			o.addBias(p, lo, hi)
		})
	}
}

// codesOf returns the qdot code format of f.
func codesOf(f quant.Format) qdot.Codes {
	switch f.Mode {
	case quant.MXFP4, quant.NVFP4:
		return qdot.E2M1
	case quant.MXFP8:
		return qdot.E4M3
	}
	return qdot.Affine(f.Bits)
}

// scaleReader decodes a buffer of scales or biases in its stored dtype:
// F32, F16 or BF16 for affine layers, E8M0 (mxfp4, mxfp8) or E4M3 (nvfp4)
// bytes for the floating-point modes.
type scaleReader struct {
	dtype quant.DType
	raw   []byte
	f32   []float32     // the buffer itself, for F32
	table *[256]float32 // byte codes, for the floating-point modes
}

// The scale tables of the floating-point modes.
var (
	e8m0Table = byteTable(quant.E8M0ToFloat)
	e4m3Table = byteTable(quant.E4M3ToFloat)
)

func byteTable(decode func(uint8) float64) *[256]float32 {
	t := new([256]float32)
	for c := range t {
		t[c] = float32(decode(uint8(c)))
	}
	return t
}

func newScaleReader(mode quant.Mode, b *engine.Buffer) *scaleReader {
	r := &scaleReader{dtype: b.DType(), raw: bytesOf(b)}
	switch {
	case r.dtype == quant.F32:
		r.f32 = asFloat32(r.raw)
	case mode == quant.NVFP4:
		r.table = e4m3Table
	case mode != quant.Affine:
		r.table = e8m0Table
	}
	return r
}

// rows returns elements [i, j) as float32: a view of an F32 buffer, or
// decoded into the start of scratch.
func (r *scaleReader) rows(scratch []float32, i, j int) []float32 {
	if r.f32 != nil {
		return r.f32[i:j]
	}
	out := scratch[:j-i]
	if r.table != nil {
		for k, c := range r.raw[i:j] {
			out[k] = r.table[c]
		}
		return out
	}
	if r.dtype == quant.BF16 {
		qdot.WidenBF16(out, r.raw[i*2:j*2])
	} else {
		qdot.WidenF16(out, r.raw[i*2:j*2])
	}
	return out
}

// addBias adds the Linear bias to columns [lo, hi) of the M rows of y.
func (o *operands) addBias(p engine.Params, lo, hi int) {
	if o.bias == nil {
		return
	}
	for i := range p.M {
		y := o.y[i*p.N : (i+1)*p.N]
		for n := lo; n < hi; n++ {
			y[n] += o.bias[n]
		}
	}
}
