package metal

import (
	"fmt"
	"slices"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/quant"
	"github.com/mlxq/mlxq/shaders"
)

// EntryPoint is the name of every compile unit's kernel function.
const EntryPoint = "mlxq_kernel"

// Defines are the values of a compile unit's preamble macros, with the
// codes of shaders/metal/common.metal.
type Defines struct {
	Mode, Bits, Group, Act, Scale int
}

func actCode(dt quant.DType) (int, bool) {
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
	return actCode(dt)
}

// VariantDefines returns the preamble macros of kernel variant v. For
// unpack only the bits are set.
func VariantDefines(v engine.Variant) (Defines, error) {
	if v.Kernel == engine.Unpack {
		if v.Bits < 1 || v.Bits > 8 {
			return Defines{}, fmt.Errorf("%w: unpack of %d bits", engine.ErrArgs, v.Bits)
		}
		return Defines{Bits: v.Bits}, nil
	}
	act, ok := actCode(v.Act)
	if !ok {
		return Defines{}, fmt.Errorf("%w: %v: activation dtype %v, want F32, F16 or BF16", engine.ErrArgs, v, v.Act)
	}
	scale, ok := scaleCode(v.Scale)
	if !ok {
		return Defines{}, fmt.Errorf("%w: %v: scale dtype %v, want F32, F16, BF16 or U8", engine.ErrArgs, v, v.Scale)
	}
	return Defines{Mode: int(v.Mode), Bits: v.Bits, Group: v.GroupSize, Act: act, Scale: scale}, nil
}

// NeedsBFloat reports whether the unit uses Metal's bfloat type (bf16
// activations or scales), which needs Metal Shading Language 3.1.
func (d Defines) NeedsBFloat() bool { return d.Act == 2 || d.Scale == 2 }

// Preamble returns the #define lines that start a compile unit.
func (d Defines) Preamble() string {
	return fmt.Sprintf("#define MLXQ_MODE %d\n#define MLXQ_BITS %d\n#define MLXQ_GROUP %d\n#define MLXQ_ACT %d\n#define MLXQ_SCALE %d\n",
		d.Mode, d.Bits, d.Group, d.Act, d.Scale)
}

// Unit is one compile unit: the preamble, common.metal and a kernel
// family's source, each part behind a #line directive so that compiler
// messages name the file and line.
type Unit struct {
	// File is the kernel source's name in shaders/metal, such as
	// "qmv.metal".
	File string
	// Name names the unit, such as "qmv/mode=0,bits=4,group=64,act=2,scale=2".
	Name string
	// Defines are the preamble's values.
	Defines Defines
	// Source is the whole unit's text.
	Source string
}

// CompileUnit returns the compile unit of kernel variant v, from the
// kernel sources embedded in package shaders.
func CompileUnit(v engine.Variant) (Unit, error) {
	defs, err := VariantDefines(v)
	if err != nil {
		return Unit{}, err
	}
	file := v.Kernel.String() + ".metal"
	return unitOf(file, defs)
}

// unitOf joins the preamble, common.metal and file.
func unitOf(file string, defs Defines) (Unit, error) {
	common, err := shaders.MetalSource(shaders.MetalCommon)
	if err != nil {
		return Unit{}, err
	}
	text, err := shaders.MetalSource(file)
	if err != nil {
		return Unit{}, err
	}
	name := fmt.Sprintf("%s/mode=%d,bits=%d,group=%d,act=%d,scale=%d", file[:len(file)-len(".metal")], defs.Mode, defs.Bits, defs.Group, defs.Act, defs.Scale)
	src := defs.Preamble() +
		fmt.Sprintf("#line 1 %q\n", shaders.MetalCommon) + common + "\n" +
		fmt.Sprintf("#line 1 %q\n", file) + text
	return Unit{File: file, Name: name, Defines: defs, Source: src}, nil
}

// advertised lists the catalog kernels that have a geometry for every one
// of their variants.
func advertised() []engine.Kernel {
	var out []engine.Kernel
	for _, k := range engine.Kernels() {
		vs := k.Variants()
		if len(vs) > 0 && !slices.ContainsFunc(vs, func(v engine.Variant) bool { _, ok := Geometry(v); return !ok }) {
			out = append(out, k)
		}
	}
	return out
}

// Variants lists every variant of every kernel the backend advertises:
// the compile units a Mac may build.
func Variants() []engine.Variant {
	var out []engine.Variant
	for _, k := range advertised() {
		out = append(out, k.Variants()...)
	}
	return out
}

// Kernels returns the catalog kernels the backend implements, on every
// OS (the driver advertises them on a Mac).
func Kernels() []engine.Kernel { return advertised() }
