package engine

import (
	"fmt"

	"slices"

	"github.com/mlxq/mlxq/quant"
)

// Plan is how a layer runs on a device: the kernel, and the layout its
// weight codes are uploaded in.
type Plan struct {
	Kernel Kernel
	Layout Layout
}

// String formats the plan as "simd4 (codes)".
func (p Plan) String() string { return fmt.Sprintf("%s (%s)", p.Kernel, p.Layout) }

// Unpacked reports whether the codes are unpacked at load.
func (p Plan) Unpacked() bool { return p.Layout == Codes }

// PlanFor picks the kernel for a layer of format f at m rows, among kernels:
//
//  1. affine bits 4, group 32: packed_simd4_b4 (no unpack pass);
//  2. other affine group 32 or 64: simd4 or simd4_gs64 on codes unpacked at
//     load;
//  3. anything else: per_element on unpacked codes.
//
// A rule whose kernel is not in kernels falls through to the next. The
// layout does not depend on m, so a layer uploads its weights once.
func PlanFor(f quant.Format, m int, kernels []Kernel) (Plan, error) {
	if err := f.Validate(); err != nil {
		return Plan{}, err
	}
	if m <= 0 {
		return Plan{}, fmt.Errorf("%w: plan for M = %d, want > 0", ErrArgs, m)
	}
	for _, k := range []Kernel{PackedSIMD4B4, SIMD4, SIMD4GS64, PerElement} {
		if k.Accepts(f) == nil && slices.Contains(kernels, k) {
			return Plan{Kernel: k, Layout: k.Spec().Layout}, nil
		}
	}
	return Plan{}, fmt.Errorf("%w: no kernel for %v among %v", ErrUnsupported, f, kernels)
}

// Plan picks the kernel for a layer of format f at m rows on the device.
func (d *Device) Plan(f quant.Format, m int) (Plan, error) {
	return PlanFor(f, m, d.kernels)
}
