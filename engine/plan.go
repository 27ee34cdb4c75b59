package engine

import (
	"fmt"
	"slices"
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

// PlanFor picks the kernel for a product like p (its format and M) among
// kernels, given the device's crossover (see Driver.Crossover):
//
//  0. a device with the packed kernels runs every format on the packed
//     words as stored: QMV for M up to the crossover, QMM above it (either
//     one for every M when the device has only that one);
//  1. affine bits 4, group 32: packed_simd4_b4 (no unpack pass);
//  2. other affine group 32 or 64: simd4 or simd4_gs64 on codes unpacked at
//     load;
//  3. anything else: per_element on unpacked codes.
//
// A rule whose kernel is not in kernels falls through to the next. The
// layout does not depend on M, so a layer uploads its weights once.
func PlanFor(p Params, kernels []Kernel, crossover int) (Plan, error) {
	if err := p.Format.Validate(); err != nil {
		return Plan{}, err
	}
	if p.M <= 0 {
		return Plan{}, fmt.Errorf("%w: plan for M = %d, want > 0", ErrArgs, p.M)
	}
	has := func(k Kernel) bool { return k.Accepts(p.Format) == nil && slices.Contains(kernels, k) }
	switch {
	case has(QMV) && has(QMM):
		if p.M <= crossover {
			return Plan{QMV, Packed}, nil
		}
		return Plan{QMM, Packed}, nil
	case has(QMV):
		return Plan{QMV, Packed}, nil
	case has(QMM):
		return Plan{QMM, Packed}, nil
	}
	for _, k := range []Kernel{PackedSIMD4B4, SIMD4, SIMD4GS64, PerElement} {
		if has(k) {
			return Plan{Kernel: k, Layout: k.Spec().Layout}, nil
		}
	}
	return Plan{}, fmt.Errorf("%w: no kernel for %v among %v", ErrUnsupported, p.Format, kernels)
}

// Plan picks the kernel for a product like p on the device.
func (d *Device) Plan(p Params) (Plan, error) {
	return PlanFor(p, d.kernels, d.Crossover(p))
}
