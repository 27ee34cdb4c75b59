// Package kernelabi is what the CUDA and Metal kernel sources share with
// the Go side: the preamble macros that select a compile unit's variant
// (MLXQ_MODE, MLXQ_BITS, MLXQ_GROUP, MLXQ_ACT, MLXQ_SCALE) and their codes.
package kernelabi

import (
	"fmt"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/quant"
)

// Defines are the values of a compile unit's preamble macros: the
// quantization mode (quant.Mode's value), bits and group size, and the
// codes of the activation dtype (0 F32, 1 F16, 2 BF16) and of the scale
// dtype (the same, or 3 for U8).
type Defines struct {
	Mode, Bits, Group, Act, Scale int
}

// ActCode returns the preamble code of activation dtype dt, and false for
// a dtype activations cannot have.
func ActCode(dt quant.DType) (int, bool) {
	switch dt {
	case quant.F32:
		return 0, true
	case quant.F16:
		return 1, true
	case quant.BF16:
		return 2, true
	}
	return 0, false
}

func scaleCode(dt quant.DType) (int, bool) {
	if dt == quant.U8 {
		return 3, true
	}
	return ActCode(dt)
}

// Of returns the preamble macros of catalog kernel variant v. For unpack
// only the bits are set.
func Of(v engine.Variant) (Defines, error) {
	if v.Kernel == engine.Unpack {
		if v.Bits < 1 || v.Bits > 8 {
			return Defines{}, fmt.Errorf("%w: unpack of %d bits", engine.ErrArgs, v.Bits)
		}
		return Defines{Bits: v.Bits}, nil
	}
	act, ok := ActCode(v.Act)
	if !ok {
		return Defines{}, fmt.Errorf("%w: %v: activation dtype %v, want F32, F16 or BF16", engine.ErrArgs, v, v.Act)
	}
	scale, ok := scaleCode(v.Scale)
	if !ok {
		return Defines{}, fmt.Errorf("%w: %v: scale dtype %v, want F32, F16, BF16 or U8", engine.ErrArgs, v, v.Scale)
	}
	return Defines{Mode: int(v.Mode), Bits: v.Bits, Group: v.GroupSize, Act: act, Scale: scale}, nil
}

// Preamble returns the lines that start a compile unit: one #define per
// macro, then a #line directive so that compiler messages point into the
// source file that follows.
func (d Defines) Preamble(file string) string {
	return fmt.Sprintf("#define MLXQ_MODE %d\n#define MLXQ_BITS %d\n#define MLXQ_GROUP %d\n#define MLXQ_ACT %d\n#define MLXQ_SCALE %d\n#line 1 %q\n",
		d.Mode, d.Bits, d.Group, d.Act, d.Scale, file)
}

// UnitName names the compile unit of kernel family family with these
// macros, such as "qmv/mode=0,bits=4,group=64,act=2,scale=2".
func (d Defines) UnitName(family string) string {
	return fmt.Sprintf("%s/mode=%d,bits=%d,group=%d,act=%d,scale=%d", family, d.Mode, d.Bits, d.Group, d.Act, d.Scale)
}

// NeedsBFloat reports whether the unit uses bfloat16 activations or scales.
func (d Defines) NeedsBFloat() bool { return d.Act == 2 || d.Scale == 2 }
