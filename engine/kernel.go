package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mlxq/mlxq/quant"
)

// Kernel names an entry of the kernel catalog.
type Kernel uint8

// The catalog. The matrix product kernels (OpMatmul) compute
//
//	y[m,n] = Σ_k x[m,k]·w[n,k] (+ bias[n])
//
// for the m < M rows of x, where w is the dequantized weight. The first
// seven entries are the reference design's family; QMV and QMM read MLX's
// packed words of every format as stored, and so do Embed (OpEmbed) and
// the gathered products GatherQMV and GatherQMM (OpGather).
const (
	// PerElement computes one output per thread from unpacked codes; it
	// takes every format: affine with any bit width and group size, and
	// the floating-point modes.
	PerElement Kernel = iota
	// Tiled computes output tiles from unpacked affine codes, group 32.
	Tiled
	// SIMD computes one output at a time with vector instructions from
	// unpacked affine codes, group 32.
	SIMD
	// SIMD4 computes blocks of outputs with vector instructions from
	// unpacked affine codes, group 32.
	SIMD4
	// SIMD4GS64 is SIMD4 for group 64.
	SIMD4GS64
	// PackedSIMD4B4 is SIMD4 reading packed 4-bit codes directly (MLX's
	// on-disk layout), group 32; no unpack pass.
	PackedSIMD4B4
	// Unpack expands packed codes of any width into one byte per code.
	Unpack
	// QMV is the packed matrix-vector kernel, for few rows of x (decoding):
	// it reads the packed words of every mode, width and group size as
	// stored and decodes them as it goes, once per few rows of x.
	QMV
	// QMM is the packed matrix-matrix kernel, for many rows of x
	// (prefill): it decodes tiles of the packed weight once and reuses
	// each across tiles of rows of x.
	QMM
	// Embed dequantizes the rows of the weight named by token ids into
	// the activation dtype, y[m,k] = w[id[m],k]: a quantized embedding.
	Embed
	// GatherQMV is the gathered product of MLX's gather_qmm for few rows
	// of x (decoding): each row m of x goes through the TopK experts
	// indices[m] picks among stacked weights [E, N, K],
	//
	//	y[m,j,n] = Σ_k x[m,k]·w[indices[m,j],n,k] (+ bias[indices[m,j],n]),
	//
	// reading only the experts some row picks, in tiles of at most
	// TileRows rows of x routed to one expert.
	GatherQMV
	// GatherQMM is GatherQMV for many rows of x (prefill): the rows are
	// grouped by expert into larger tiles, so that each expert's weights
	// are decoded once per tile of many rows.
	GatherQMM
	numKernels
)

// Op is what a kernel computes, and so which arguments it takes.
type Op uint8

const (
	// OpMatmul is a matrix product, y = x·wᵀ (+ bias): MatmulArgs.
	OpMatmul Op = iota
	// OpUnpack expands packed codes to one byte each: UnpackArgs.
	OpUnpack
	// OpEmbed dequantizes weight rows by id: EmbedArgs.
	OpEmbed
	// OpGather is a gathered product over stacked experts: GatherArgs.
	OpGather
)

// Layout is the form in which a kernel reads the weight codes.
type Layout uint8

const (
	// Packed is MLX's on-disk layout: U32 words, LSB-first bitstream rows.
	Packed Layout = iota
	// Codes is one U8 per code, [N, K], made by the Unpack kernel.
	Codes
)

// CodeBytes returns the bytes of rows×cols codes of width bits in layout l.
func (l Layout) CodeBytes(rows, cols, bits int) int {
	if l == Packed {
		return rows * quant.RowBytes(cols, bits)
	}
	return rows * cols
}

func (l Layout) String() string {
	if l == Packed {
		return "packed"
	}
	return "codes"
}

// Spec describes what a catalog kernel accepts.
type Spec struct {
	Name   string
	Op     Op
	Layout Layout
	// Modes, Bits and GroupSizes list what the kernel takes; Bits and
	// GroupSizes are nil where any width or group size of a supported
	// format is fine.
	Modes      []quant.Mode
	Bits       []int
	GroupSizes []int
	// TileRows is, for the gathered products, the most rows of x one
	// tile of the routing sends to one expert (see Route); 0 otherwise.
	TileRows int
}

var allModes = []quant.Mode{quant.Affine, quant.MXFP4, quant.MXFP8, quant.NVFP4}

var specs = [numKernels]Spec{
	PerElement:    {Name: "per_element", Layout: Codes, Modes: allModes},
	Tiled:         {Name: "tiled", Layout: Codes, Modes: []quant.Mode{quant.Affine}, GroupSizes: []int{32}},
	SIMD:          {Name: "simd", Layout: Codes, Modes: []quant.Mode{quant.Affine}, GroupSizes: []int{32}},
	SIMD4:         {Name: "simd4", Layout: Codes, Modes: []quant.Mode{quant.Affine}, GroupSizes: []int{32}},
	SIMD4GS64:     {Name: "simd4_gs64", Layout: Codes, Modes: []quant.Mode{quant.Affine}, GroupSizes: []int{64}},
	PackedSIMD4B4: {Name: "packed_simd4_b4", Layout: Packed, Modes: []quant.Mode{quant.Affine}, Bits: []int{4}, GroupSizes: []int{32}},
	Unpack:        {Name: "unpack", Op: OpUnpack, Layout: Packed, Modes: allModes},
	QMV:           {Name: "qmv", Layout: Packed, Modes: allModes},
	QMM:           {Name: "qmm", Layout: Packed, Modes: allModes},
	Embed:         {Name: "embed", Op: OpEmbed, Layout: Packed, Modes: allModes},
	GatherQMV:     {Name: "gather_qmv", Op: OpGather, Layout: Packed, Modes: allModes, TileRows: 4},
	GatherQMM:     {Name: "gather_qmm", Op: OpGather, Layout: Packed, Modes: allModes, TileRows: 16},
}

// Kernels returns every kernel of the catalog, in catalog order.
func Kernels() []Kernel {
	out := make([]Kernel, numKernels)
	for i := range out {
		out[i] = Kernel(i)
	}
	return out
}

// MatmulKernels returns the catalog's matrix product kernels (OpMatmul).
func MatmulKernels() []Kernel { return kernelsOf(OpMatmul) }

// GatherKernels returns the catalog's gathered product kernels (OpGather).
func GatherKernels() []Kernel { return kernelsOf(OpGather) }

// kernelsOf returns the kernels of the catalog that compute op.
func kernelsOf(op Op) []Kernel {
	return slices.DeleteFunc(Kernels(), func(k Kernel) bool { return specs[k].Op != op })
}

// Spec returns the kernel's description.
func (k Kernel) Spec() Spec {
	if k >= numKernels {
		return Spec{Name: fmt.Sprintf("Kernel(%d)", uint8(k))}
	}
	return specs[k]
}

// String returns the kernel's catalog name, such as "packed_simd4_b4".
func (k Kernel) String() string { return k.Spec().Name }

// KernelNames returns the names of ks, comma-separated.
func KernelNames(ks []Kernel) string {
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.String()
	}
	return strings.Join(names, ", ")
}

// ParseKernel returns the kernel with the given catalog name.
func ParseKernel(name string) (Kernel, error) {
	for k, s := range specs {
		if s.Name == name {
			return Kernel(k), nil
		}
	}
	names := make([]string, numKernels)
	for k := range names {
		names[k] = specs[k].Name
	}
	return 0, fmt.Errorf("%w: unknown kernel %q, want one of %v", ErrArgs, name, names)
}

// Variant is one instantiation of a kernel, the unit a backend compiles:
// the kernel, the weight format, the activation dtype (x and y) and the
// dtype of the scales (and biases). The unpack kernel varies only with the
// bit width.
type Variant struct {
	Kernel Kernel
	quant.Format
	Act, Scale quant.DType
}

// String formats v as "qmv affine 4-bit group 64, BF16 x, BF16 scales".
func (v Variant) String() string {
	if v.Kernel == Unpack {
		return fmt.Sprintf("%s %d-bit", v.Kernel, v.Bits)
	}
	return fmt.Sprintf("%s %v, %v x, %v scales", v.Kernel, v.Format, v.Act, v.Scale)
}

// Variants returns every variant of kernel k a backend may be asked to
// compile: each format k accepts, with each activation dtype and each
// dtype the format stores scales in (F32, F16 and BF16 for affine, U8 for
// the floating-point modes); for Unpack, each bit width.
func (k Kernel) Variants() []Variant {
	var out []Variant
	if k == Unpack {
		for _, bits := range []int{2, 3, 4, 5, 6, 8} {
			out = append(out, Variant{Kernel: k, Format: quant.Format{Bits: bits}})
		}
		return out
	}
	for _, f := range quant.Formats() {
		if k.Accepts(f) != nil {
			continue
		}
		scales := []quant.DType{quant.U8}
		if f.Mode == quant.Affine {
			scales = []quant.DType{quant.F32, quant.F16, quant.BF16}
		}
		for _, act := range ActDTypes() {
			for _, st := range scales {
				out = append(out, Variant{Kernel: k, Format: f, Act: act, Scale: st})
			}
		}
	}
	return out
}

// Accepts reports whether the kernel takes weights of format f, and if not,
// why.
func (k Kernel) Accepts(f quant.Format) error {
	if k >= numKernels {
		return fmt.Errorf("%w: unknown kernel %d", ErrArgs, uint8(k))
	}
	if err := f.Validate(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrArgs, k, err)
	}
	s := specs[k]
	if !slices.Contains(s.Modes, f.Mode) {
		return fmt.Errorf("%w: %s: mode %v, want %v", ErrArgs, k, f.Mode, s.Modes)
	}
	if s.Bits != nil && !slices.Contains(s.Bits, f.Bits) {
		return fmt.Errorf("%w: %s: bits %d, want %v", ErrArgs, k, f.Bits, s.Bits)
	}
	if s.GroupSizes != nil && !slices.Contains(s.GroupSizes, f.GroupSize) {
		return fmt.Errorf("%w: %s: group size %d, want %v", ErrArgs, k, f.GroupSize, s.GroupSizes)
	}
	return nil
}
