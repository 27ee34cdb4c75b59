package engine

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/mlxq/mlxq/quant"
)

// EmbedArgs are the operands of the Embed kernel: the rows of a quantized
// [N, K] weight (a vocabulary of N rows of K features) named by the M ids,
// dequantized into y [M, K] of dtype Act. W, Scales and Biases are as in
// MatmulArgs (packed words). IDs are on the host; the encoder checks them
// and writes them into Index (I32, at least M elements) ahead of the
// dispatch, where the kernel reads them.
type EmbedArgs struct {
	Params
	IDs                  []int32
	Index                *Buffer
	W, Scales, Biases, Y *Buffer
}

// Variant returns the Embed variant that runs these operands.
func (a *EmbedArgs) Variant() Variant {
	return Variant{Kernel: Embed, Format: a.Format, Act: a.Act, Scale: scaleDType(a.Scales)}
}

func scaleDType(s *Buffer) quant.DType {
	if s == nil {
		return quant.U8
	}
	return s.DType()
}

// GatherArgs are the operands of a gathered product (GatherQMV,
// GatherQMM), MLX's gather_qmm: x is [M, K], W holds Experts stacked
// [N, K] weights (packed words, [Experts, N, K*bits/32]) with their scales
// and biases ([Experts, N, K/GroupSize]) and optional Linear biases (F32
// [Experts, N]), and row m of x goes through the TopK experts
// Indices[m*TopK : (m+1)*TopK] (on the host) into y [M, TopK, N]. The
// encoder checks the indices, routes them (Route) and writes the routing
// into Routing (I32, at least RoutingWords(M*TopK) elements) ahead of the
// dispatch, where the kernel reads it.
type GatherArgs struct {
	Params
	Experts, TopK                 int
	Indices                       []int32
	X, W, Scales, Biases, Bias, Y *Buffer
	Routing                       *Buffer
}

// Variant returns the variant of gathered product kernel k for these
// operands.
func (a *GatherArgs) Variant(k Kernel) Variant {
	return Variant{Kernel: k, Format: a.Format, Act: a.Act, Scale: scaleDType(a.Scales)}
}

// CheckEmbed verifies an Embed dispatch on device d: the weight's
// operands as for a matrix product, y of at least M rows of K, and every
// id in [0, N).
func CheckEmbed(d *Device, a *EmbedArgs) error {
	if err := checkEmbed(d, a); err != nil {
		return fmt.Errorf("%s: %w", Embed, err)
	}
	return nil
}

func checkEmbed(d *Device, a *EmbedArgs) error {
	if err := checkFormat(Embed, a.Params); err != nil {
		return err
	}
	ops, err := weightOperands(a.Params, 1, a.Scales, a.Biases)
	if err != nil {
		return err
	}
	ops = append(ops, operand{"w", a.W, quant.U32, a.N * a.K * a.Bits / 32, false},
		operand{"index", a.Index, quant.I32, a.M, true},
		operand{"y", a.Y, a.Act, a.M * a.K, true})
	if err := checkOperands(d, ops, a.Y, a.W, a.Scales, a.Biases, a.Index); err != nil {
		return err
	}
	if len(a.IDs) != a.M {
		return fmt.Errorf("%w: %d ids for M = %d", ErrArgs, len(a.IDs), a.M)
	}
	for i, id := range a.IDs {
		if id < 0 || int(id) >= a.N {
			return fmt.Errorf("%w: id %d (position %d) out of range: the vocabulary has %d rows", ErrArgs, id, i, a.N)
		}
	}
	return nil
}

// CheckGather verifies a dispatch of gathered product kernel k on device
// d: the weight's operands as for a matrix product, for Experts stacked
// matrices, x of at least M rows, y of at least M*TopK rows, the routing
// buffer's length, and every expert index in [0, Experts).
func CheckGather(d *Device, k Kernel, a *GatherArgs) error {
	if k.Spec().Op != OpGather {
		return fmt.Errorf("%w: %s is not a gathered product kernel", ErrArgs, k)
	}
	if err := checkGather(d, k, a); err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	return nil
}

func checkGather(d *Device, k Kernel, a *GatherArgs) error {
	if err := checkFormat(k, a.Params); err != nil {
		return err
	}
	if a.Experts <= 0 || a.TopK <= 0 {
		return fmt.Errorf("%w: %d experts, top %d, want both > 0", ErrArgs, a.Experts, a.TopK)
	}
	pairs := a.M * a.TopK
	ops, err := weightOperands(a.Params, a.Experts, a.Scales, a.Biases)
	if err != nil {
		return err
	}
	ops = append(ops, operand{"w", a.W, quant.U32, a.Experts * a.N * a.K * a.Bits / 32, false},
		operand{"x", a.X, a.Act, a.M * a.K, true},
		operand{"y", a.Y, a.Act, pairs * a.N, true},
		operand{"routing", a.Routing, quant.I32, RoutingWords(pairs), true})
	if a.Bias != nil {
		ops = append(ops, operand{"bias", a.Bias, quant.F32, a.Experts * a.N, false})
	}
	if err := checkOperands(d, ops, a.Y, a.X, a.W, a.Scales, a.Biases, a.Bias, a.Routing); err != nil {
		return err
	}
	if a.Routing == a.X || a.Routing == a.W || a.Routing == a.Scales || a.Routing == a.Biases || a.Routing == a.Bias {
		return fmt.Errorf("%w: routing aliases an input buffer", ErrArgs)
	}
	return checkIndices(a.Indices, a.M, a.TopK, a.Experts)
}

// checkIndices verifies that indices holds m rows of topK expert indices
// in [0, experts).
func checkIndices(indices []int32, m, topK, experts int) error {
	if len(indices) != m*topK {
		return fmt.Errorf("%w: %d expert indices, want M·TopK = %d·%d = %d", ErrArgs, len(indices), m, topK, m*topK)
	}
	for i, e := range indices {
		if e < 0 || int(e) >= experts {
			return fmt.Errorf("%w: expert index %d (row %d, slot %d) out of range: the layer has %d experts", ErrArgs, e, i/topK, i%topK, experts)
		}
	}
	return nil
}

// checkFormat verifies the dimensions, format and activation dtype of a
// product like p for kernel k.
func checkFormat(k Kernel, p Params) error {
	if p.M <= 0 || p.N <= 0 || p.K <= 0 {
		return fmt.Errorf("%w: M, N, K = %d, %d, %d, want all > 0", ErrArgs, p.M, p.N, p.K)
	}
	if err := k.Accepts(p.Format); err != nil {
		return err
	}
	if p.K%p.GroupSize != 0 {
		return fmt.Errorf("%w: K = %d not a multiple of group size %d", ErrArgs, p.K, p.GroupSize)
	}
	if !slices.Contains(ActDTypes(), p.Act) {
		return fmt.Errorf("%w: activation dtype %v, want F32, F16 or BF16", ErrArgs, p.Act)
	}
	return nil
}

// weightOperands returns the scales and biases operands of mats stacked
// [N, K] matrices of p's format.
func weightOperands(p Params, mats int, scales, biases *Buffer) ([]operand, error) {
	groups := mats * p.N * (p.K / p.GroupSize)
	scaleType := quant.U8
	if p.Mode == quant.Affine {
		if scales == nil {
			return nil, fmt.Errorf("%w: scales buffer is nil", ErrArgs)
		}
		scaleType = scales.DType()
		if !scaleType.IsFloat() {
			return nil, fmt.Errorf("%w: scales dtype %v, want F32, F16 or BF16", ErrArgs, scaleType)
		}
	}
	ops := []operand{{"scales", scales, scaleType, groups, false}}
	switch {
	case p.Mode == quant.Affine:
		ops = append(ops, operand{"biases", biases, scaleType, groups, false})
	case biases != nil:
		return nil, fmt.Errorf("%w: %v takes no biases buffer", ErrArgs, p.Mode)
	}
	return ops, nil
}

// checkOperands checks ops on d and that out aliases none of ins.
func checkOperands(d *Device, ops []operand, out *Buffer, ins ...*Buffer) error {
	for _, op := range ops {
		if err := op.check(d); err != nil {
			return err
		}
	}
	for _, in := range ins {
		if in == out {
			return fmt.Errorf("%w: y aliases an input buffer", ErrArgs)
		}
	}
	return nil
}

// RoutingHeader is the number of int32 words before the pairs in the
// routing a gathered product kernel reads.
const RoutingHeader = 4

// RoutingBias is the flag of the routing header that says an expert bias
// buffer is bound.
const RoutingBias = 1

// RoutingWords returns the most int32 words the routing of a gathered
// product of pairs (row, slot) pairs takes (see Routing.Bytes).
func RoutingWords(pairs int) int { return RoutingHeader + 4*pairs }

// Tile is a run of pairs routed to one expert: Pairs[First : First+Count]
// of the routing.
type Tile struct {
	Expert, First, Count int32
}

// Routing is how a gathered product's rows reach their experts: the
// (row, slot) pairs p = m·TopK + j, grouped by expert (in increasing
// expert order, and in increasing p within an expert), and the tiles that
// cut each expert's run of pairs into pieces of at most TileRows. Row p of
// y [M·TopK, N] is the output of pair p, whose row of x is p / TopK.
type Routing struct {
	TopK  int
	Pairs []int32
	Tiles []Tile
	// Bias says an expert bias is added (the header's RoutingBias flag).
	Bias bool
}

// Route groups the M·topK expert indices (each in [0, experts), row-major
// [M, topK]) by expert into tiles of at most tileRows pairs.
func Route(indices []int32, topK, experts, tileRows int) (*Routing, error) {
	if topK <= 0 || experts <= 0 || tileRows <= 0 || len(indices)%topK != 0 {
		return nil, fmt.Errorf("%w: route %d indices, top %d of %d experts, tiles of %d", ErrArgs, len(indices), topK, experts, tileRows)
	}
	if err := checkIndices(indices, len(indices)/topK, topK, experts); err != nil {
		return nil, err
	}
	start := make([]int, experts+1)
	for _, e := range indices {
		start[e+1]++
	}
	for e := range experts {
		start[e+1] += start[e]
	}
	r := &Routing{TopK: topK, Pairs: make([]int32, len(indices))}
	next := slices.Clone(start[:experts])
	for p, e := range indices {
		r.Pairs[next[e]] = int32(p)
		next[e]++
	}
	for e := range experts {
		for first := start[e]; first < start[e+1]; first += tileRows {
			r.Tiles = append(r.Tiles, Tile{Expert: int32(e), First: int32(first), Count: int32(min(tileRows, start[e+1]-first))})
		}
	}
	return r, nil
}

// Bytes returns the routing as the kernels read it, little-endian int32s:
// a header of RoutingHeader words (the pairs, TopK, the tiles and the
// flags: RoutingBias), the pairs, then each tile's expert, first pair and
// count.
func (r *Routing) Bytes() []byte {
	flags := 0
	if r.Bias {
		flags |= RoutingBias
	}
	out := make([]byte, 0, 4*(RoutingHeader+len(r.Pairs)+3*len(r.Tiles)))
	for _, v := range []int{len(r.Pairs), r.TopK, len(r.Tiles), flags} {
		out = binary.LittleEndian.AppendUint32(out, uint32(v))
	}
	for _, p := range r.Pairs {
		out = binary.LittleEndian.AppendUint32(out, uint32(p))
	}
	for _, t := range r.Tiles {
		for _, v := range []int32{t.Expert, t.First, t.Count} {
			out = binary.LittleEndian.AppendUint32(out, uint32(v))
		}
	}
	return out
}

// PlanGather picks the gathered product kernel for m rows of x, each
// routed to topK of experts experts, among kernels: GatherQMV while the
// rows per expert, m·topK/experts, average at most one (decoding, where
// each row reads only its experts' weights), GatherQMM above (prefill,
// where many rows share an expert's weights); either one alone when the
// device has only that one.
func PlanGather(m, topK, experts int, kernels []Kernel) (Kernel, error) {
	if m <= 0 || topK <= 0 || experts <= 0 {
		return 0, fmt.Errorf("%w: gathered plan for M = %d, top %d of %d experts", ErrArgs, m, topK, experts)
	}
	qmv, qmm := slices.Contains(kernels, GatherQMV), slices.Contains(kernels, GatherQMM)
	switch {
	case qmv && (m*topK <= experts || !qmm):
		return GatherQMV, nil
	case qmm:
		return GatherQMM, nil
	}
	return 0, fmt.Errorf("%w: no gathered product kernel among %v", ErrUnsupported, kernels)
}

// PlanGather picks the device's gathered product kernel for m rows of x,
// each routed to topK of experts experts (see PlanGather).
func (d *Device) PlanGather(m, topK, experts int) (Kernel, error) {
	return PlanGather(m, topK, experts, d.kernels)
}
