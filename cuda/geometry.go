package cuda

import (
	"slices"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/quant"
)

// launchSpec says how a kernel variant is dispatched.
type launchSpec struct {
	grid  func(p engine.Params) [3]uint32 // for unpack, p.N = rows, p.K = cols
	block [3]uint32
	// blockFor, where set, gives the block per dispatch instead of block.
	blockFor func(p engine.Params) [3]uint32
	shared   func(p engine.Params) uint32 // dynamic shared memory bytes; nil for none
	tf32     bool                         // computes on TF32 tensor cores for F32 activations
}

// blockOf returns the block of a dispatch with parameters p.
func (s launchSpec) blockOf(p engine.Params) [3]uint32 {
	if s.blockFor != nil {
		return s.blockFor(p)
	}
	return s.block
}

// Tile sizes of the kernels in shaders/cuda; each must match its source.
const (
	elemTile  = 16  // per_element, tiled: 16 x 16 outputs per block
	simdRows  = 8   // simd: one warp per output, 8 warps per block
	simd4Tile = 32  // simd4, simd4_gs64, packed_simd4_b4: 32 x 32 outputs per block
	unpackPer = 4   // unpack: codes per thread
	unpackBlk = 256 // unpack: threads per block
	qmvWarps  = 4   // qmv: warps per block (f32; f16/bf16 where the grid is large)
	qmvWide   = 8   // qmv, f16/bf16 activations: warps per block where the grid is small
	// qmv, f16/bf16 activations: grids of at most this many blocks take
	// qmvWide warps per block, so that small layers still fill the GPU.
	qmvSmallGrid = 512
	qmvTokens    = 4   // qmv, f32 activations: rows of x per block
	qmvTile      = 16  // qmv, f16/bf16 activations: 16 x 16 outputs per block
	qmmTile      = 128 // qmm: 128 x 128 outputs per block
	qmmThreads   = 256 // qmm: threads per block
	// qmm: dynamic shared memory, two stages of a 128-row x tile and a
	// 128-row W tile of 36 words per row.
	qmmShared = 2 * 2 * qmmTile * 36 * 4
)

// Block sizes of the backend's own kernels (dequant.cu, bias_add.cu).
const (
	dequantBlock = 256 // dequant: threads per block, a quarter of a chunk of 32 codes each
	biasBlock    = 256 // bias_add: threads per block, one column each
)

// qmvRows is the number of weight rows each qmv warp owns with f32
// activations (QMV_ROWS).
func qmvRows(bits int) int {
	if bits > 4 {
		return 2
	}
	return 4
}

func ceilDiv(a, b int) uint32 {
	if a <= 0 {
		return 1
	}
	return uint32((a + b - 1) / b)
}

// tiles2D is a grid of ceil(N/bn) x ceil(M/bm) blocks.
func tiles2D(bn, bm int) func(p engine.Params) [3]uint32 {
	return func(p engine.Params) [3]uint32 {
		return [3]uint32{ceilDiv(p.N, bn), ceilDiv(p.M, bm), 1}
	}
}

// geometry returns the launch of kernel variant v, and false if the backend lacks it.
func geometry(v engine.Variant) (launchSpec, bool) {
	if v.Kernel == engine.Unpack {
		switch v.Bits {
		case 2, 3, 4, 5, 6, 8:
		default:
			return launchSpec{}, false
		}
		return launchSpec{
			grid: func(p engine.Params) [3]uint32 {
				return [3]uint32{ceilDiv(p.N*p.K/unpackPer, unpackBlk), 1, 1}
			},
			block: [3]uint32{unpackBlk, 1, 1},
		}, true
	}
	switch v.Kernel {
	case kernelHold:
		return launchSpec{grid: func(engine.Params) [3]uint32 { return [3]uint32{1, 1, 1} }, block: [3]uint32{32, 1, 1}}, true
	case kernelBiasAdd:
		if !slices.Contains(cublasActs, v.Act) {
			return launchSpec{}, false
		}
		return launchSpec{
			grid: func(p engine.Params) [3]uint32 {
				return [3]uint32{ceilDiv(p.N, biasBlock), uint32(min(max(p.M, 1), 65535)), 1}
			},
			block: [3]uint32{biasBlock, 1, 1},
		}, true
	case kernelDequant:
		if !slices.Contains(cublasActs, v.Act) {
			return launchSpec{}, false
		}
		v.Kernel = engine.QMM // the formats and scale dtypes of QMM
		if _, ok := geometry(v); !ok {
			return launchSpec{}, false
		}
		return launchSpec{
			// p.N is the chunk's rows; four threads per chunk of 32 codes.
			grid: func(p engine.Params) [3]uint32 {
				return [3]uint32{ceilDiv(4*p.N*((p.K+31)/32), dequantBlock), 1, 1}
			},
			block: [3]uint32{dequantBlock, 1, 1},
		}, true
	}
	if v.Kernel.Accepts(v.Format) != nil {
		return launchSpec{}, false
	}
	switch v.Act {
	case quant.F32, quant.F16, quant.BF16:
	default:
		return launchSpec{}, false
	}
	if v.Mode == quant.Affine {
		if !v.Scale.IsFloat() {
			return launchSpec{}, false
		}
	} else if v.Scale != quant.U8 {
		return launchSpec{}, false
	}
	switch v.Kernel {
	case engine.PerElement, engine.Tiled:
		return launchSpec{grid: tiles2D(elemTile, elemTile), block: [3]uint32{elemTile, elemTile, 1}}, true
	case engine.SIMD:
		return launchSpec{
			grid: func(p engine.Params) [3]uint32 {
				return [3]uint32{ceilDiv(p.N, simdRows), uint32(max(p.M, 1)), 1}
			},
			block: [3]uint32{32 * simdRows, 1, 1},
		}, true
	case engine.SIMD4, engine.SIMD4GS64, engine.PackedSIMD4B4:
		return launchSpec{grid: tiles2D(simd4Tile, simd4Tile), block: [3]uint32{128, 1, 1}}, true
	case engine.QMV:
		if v.Act != quant.F32 {
			// Tensor-core design: 16 weight rows by 16 tokens per block.
			grid := tiles2D(qmvTile, qmvTile)
			return launchSpec{grid: grid, block: [3]uint32{32 * qmvWarps, 1, 1},
				blockFor: func(p engine.Params) [3]uint32 {
					if g := grid(p); g[0]*g[1] <= qmvSmallGrid {
						return [3]uint32{32 * qmvWide, 1, 1}
					}
					return [3]uint32{32 * qmvWarps, 1, 1}
				}}, true
		}
		return launchSpec{
			grid:  tiles2D(qmvWarps*qmvRows(v.Bits), qmvTokens),
			block: [3]uint32{32 * qmvWarps, 1, 1},
		}, true
	case engine.QMM:
		return launchSpec{
			grid:   tiles2D(qmmTile, qmmTile),
			block:  [3]uint32{qmmThreads, 1, 1},
			shared: func(engine.Params) uint32 { return qmmShared },
			tf32:   v.Act == quant.F32,
		}, true
	case engine.Embed, engine.GatherQMV, engine.GatherQMM:
		return gatherGeometry(v), true
	}
	return launchSpec{}, false
}

// crossover is the largest M at which the plan runs qmv rather than qmm.
//
// Measured on an H200 with 4-bit group-64 layers: the tensor-core qmv of
// f16/bf16 activations costs about 1.4x its M = 1 time at M = 16 and grows
// linearly past that, while qmm costs about one pass of 128-row tiles up to
// M = 128 (16384 x 16384: qmv 118 us at M = 16, 224 us at M = 32, about
// 450 us at M = 64; qmm 424 us at M = 32, 444 us at M = 64, 509 us at
// M = 128). Layers of few 128-row tiles leave most of the GPU idle in qmm
// (4096 x 4096: qmm 98 to 114 us for M <= 64, qmv 32 us at M = 64). The f32
// qmv grows with M from the start (exact float32 FMA per token): 309 us at
// M = 4, 604 us at M = 8 and 1171 us at M = 16 against 898 us for TF32 qmm.
func crossover(p engine.Params) int {
	small := p.N <= 8192
	if p.Act == quant.F32 {
		if small {
			return 16
		}
		return 12
	}
	if small {
		return 64
	}
	return 48
}
