package cpu

import (
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/internal/qdot"
	"github.com/mlxq/mlxq/quant"
)

// integerKernel reports whether qmv and qmm run the integer kernels: for
// F16 and BF16 activations of affine layers, whose tolerance the int8
// activations meet. F32 activations keep the float kernels, exact to
// float32 rounding.
func integerKernel(p engine.Params) bool {
	return p.Act != quant.F32 && p.Mode == quant.Affine
}

// packedInt8 runs qmv and qmm on the packed words as stored with the
// activations quantized to int8 per group (qdot.MatInt8), the quantizing
// counted in the kernel's time. Scales and biases are decoded rowBlock
// rows at a time, as for the float kernels.
func packedInt8(threads int, p engine.Params, o *operands) {
	codes := qdot.Affine(p.Bits)
	ng := p.K / p.GroupSize
	var a qdot.Int8Acts
	a.Quantize(o.x[:p.M*p.K], p.M, p.GroupSize, codes)
	rb := codes.RowBytes(p.K)
	scales, biases := newScaleReader(p.Mode, o.scales), newScaleReader(p.Mode, o.biases)
	parallel(threads, p.N, 8, func(lo, hi int) {
		s := make([]float32, min(rowBlock, hi-lo)*ng)
		b := make([]float32, len(s))
		for r0 := lo; r0 < hi; r0 += rowBlock {
			r1 := min(hi, r0+rowBlock)
			qdot.MatInt8(o.y[r0:], p.N, o.w[r0*rb:r1*rb], codes, scales.rows(s, r0*ng, r1*ng), biases.rows(b, r0*ng, r1*ng), &a)
		}
		o.addBias(p, lo, hi)
	})
}
