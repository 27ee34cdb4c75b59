package metal

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/internal/kernelabi"
	"github.com/mlxq/mlxq/shaders"
)

// EntryPoint is the name of every compile unit's kernel function.
const EntryPoint = "mlxq_kernel"

// Defines are the values of a compile unit's preamble macros, with the
// codes of shaders/metal/common.metal.
type Defines = kernelabi.Defines

// VariantDefines returns the preamble macros of kernel variant v. For
// unpack only the bits are set.
func VariantDefines(v engine.Variant) (Defines, error) { return kernelabi.Of(v) }

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
	src := defs.Preamble(shaders.MetalCommon) + common + "\n" + fmt.Sprintf("#line 1 %q\n", file) + text
	return Unit{File: file, Name: defs.UnitName(strings.TrimSuffix(file, ".metal")), Defines: defs, Source: src}, nil
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
