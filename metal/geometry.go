package metal

import (
	"fmt"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/quant"
)

// Binding names what a kernel argument buffer holds.
type Binding uint8

// The buffers a kernel binds, by what they hold.
const (
	// BindX is the activations x, [M, K] of the activation dtype.
	BindX Binding = iota
	// BindW is the weight: packed U32 words or U8 codes.
	BindW
	// BindScales is the scales, [N, K/group] (U8 for the fp modes).
	BindScales
	// BindBiases is the affine biases, or the dummy buffer.
	BindBiases
	// BindBias is the Linear bias, F32 [N], or the dummy buffer.
	BindBias
	// BindY is the output y, [M, N] of the activation dtype.
	BindY
	// BindParams is the parameter block (Params), set with setBytes.
	BindParams
	// BindCodes is unpack's output, U8 [rows, cols].
	BindCodes
	// BindIDs is embed's ids, I32 [M].
	BindIDs
	// BindRoute is the routing of a gathered product, I32
	// (engine.Routing.Bytes).
	BindRoute
)

var bindingNames = [...]string{"x", "w", "scales", "biases", "bias", "y", "params", "codes", "ids", "route"}

func (b Binding) String() string {
	if int(b) < len(bindingNames) {
		return bindingNames[b]
	}
	return fmt.Sprintf("Binding(%d)", uint8(b))
}

// MatmulBindings is the buffer order of every matrix product kernel:
// [[buffer(i)]] holds MatmulBindings[i].
var MatmulBindings = []Binding{BindX, BindW, BindScales, BindBiases, BindBias, BindY, BindParams}

// UnpackBindings is the buffer order of the unpack kernel.
var UnpackBindings = []Binding{BindW, BindCodes, BindParams}

// EmbedBindings is the buffer order of the embed kernel.
var EmbedBindings = []Binding{BindIDs, BindW, BindScales, BindBiases, BindY, BindParams}

// GatherBindings is the buffer order of the gathered product kernels.
var GatherBindings = []Binding{BindX, BindW, BindScales, BindBiases, BindBias, BindY, BindRoute, BindParams}

// Params is the parameter block every kernel reads from its BindParams
// buffer (struct mlxq_params in shaders/metal/common.metal): the product's
// dimensions (for unpack, N is the rows and K the codes per row) and the
// flags FlagBiases and FlagBias.
type Params struct {
	M, N, K, Flags uint32
}

// ParamsBytes is the size of Params as the kernels see it.
const ParamsBytes = 16

// Flags of Params.
const (
	// FlagBiases says an affine biases buffer is bound.
	FlagBiases uint32 = 1
	// FlagBias says a Linear bias is bound.
	FlagBias uint32 = 2
)

// Bytes returns the little-endian bytes of the parameter block.
func (p Params) Bytes() []byte {
	out := make([]byte, 0, ParamsBytes)
	for _, v := range []uint32{p.M, p.N, p.K, p.Flags} {
		out = append(out, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
	}
	return out
}

// Launch is one dispatch: dispatchThreadgroups:Grid threadsPerThreadgroup:
// Threads, with Memory bytes of threadgroup memory at [[threadgroup(0)]]
// (setThreadgroupMemoryLength:atIndex:0; none when 0).
type Launch struct {
	Grid    [3]int
	Threads [3]int
	Memory  int
}

// Spec says how a kernel variant is dispatched: plain data, the same on
// every OS, so that the Mac and a run of the same kernels elsewhere use
// the same numbers.
type Spec struct {
	// Threads is the threadgroup size.
	Threads [3]int
	// Tile is the outputs one threadgroup covers: Tile[0] rows of W (along
	// N) by Tile[1] rows of x (along M). The grid is ceil(N / Tile[0]) by
	// ceil(M / Tile[1]) threadgroups. For unpack, Tile[0] is the codes
	// one threadgroup writes and Tile[1] is 0: the grid is ceil(rows *
	// cols / Tile[0]) by 1. For the gathered products M is the routing's
	// tiles, one threadgroup row each.
	Tile [2]int
	// AlongK says Tile[0] runs along K instead (embed: a threadgroup
	// writes Tile[0] features of one id, and M is the ids).
	AlongK bool
	// Memory is the threadgroup memory in bytes (a multiple of 16), or 0.
	Memory int
	// Buffers is the binding order: [[buffer(i)]] holds Buffers[i].
	Buffers []Binding
}

// Grid returns the threadgroups per grid for the product p (for unpack,
// p.N is the rows and p.K the codes per row).
func (s Spec) Grid(p engine.Params) [3]int {
	switch {
	case s.Tile[1] == 0:
		return [3]int{ceilDiv(p.N*p.K, s.Tile[0]), 1, 1}
	case s.AlongK:
		return [3]int{ceilDiv(p.K, s.Tile[0]), ceilDiv(p.M, s.Tile[1]), 1}
	}
	return [3]int{ceilDiv(p.N, s.Tile[0]), ceilDiv(p.M, s.Tile[1]), 1}
}

// Launch returns the dispatch of the product p.
func (s Spec) Launch(p engine.Params) Launch {
	return Launch{Grid: s.Grid(p), Threads: s.Threads, Memory: s.Memory}
}

// ThreadCount returns the threads per threadgroup.
func (s Spec) ThreadCount() int { return s.Threads[0] * s.Threads[1] * s.Threads[2] }

func ceilDiv(a, b int) int {
	if a <= 0 {
		return 1
	}
	return (a + b - 1) / b
}

// Tile sizes of the kernels in shaders/metal; each must match its source.
const (
	elemTile    = 16  // per_element, tiled: 16 x 16 outputs per threadgroup
	simdTile    = 16  // simd: 16 x 16 outputs, one 8 x 8 block per simdgroup
	simd4Tile   = 32  // simd4, simd4_gs64, packed_simd4_b4, qmm: 32 x 32 outputs
	tileThreads = 128 // the simdgroup-matrix kernels: 4 simdgroups of 32
	tilePad     = 4   // MLXQ_PAD: floats of padding per threadgroup memory row
	unpackPer   = 4   // unpack: codes per thread
	unpackTG    = 256 // unpack: threads per threadgroup
	qmvRows     = 8   // qmv: rows of W per threadgroup (2 simdgroups x 4)
	qmvThreads  = 64  // qmv: threads per threadgroup
	embedTG     = 256 // embed: threads per threadgroup, one feature each
	gatherRows  = 8   // the gathered products: rows of the expert per threadgroup (2 simdgroups x 4)
	gatherTG    = 64  // the gathered products: threads per threadgroup
)

// tileMemory is the threadgroup memory of mlxq_tile_mma: the x and w
// stages, (bm + bn) rows of bk + pad floats.
func tileMemory(bm, bn, bk int) int { return roundUp((bm+bn)*(bk+tilePad)*4, 16) }

func roundUp(n, to int) int { return (n + to - 1) / to * to }

// Geometry returns the dispatch of kernel variant v, and false if the
// backend lacks it.
func Geometry(v engine.Variant) (Spec, bool) {
	if v.Kernel == engine.Unpack {
		switch v.Bits {
		case 2, 3, 4, 5, 6, 8:
		default:
			return Spec{}, false
		}
		return Spec{Threads: [3]int{unpackTG, 1, 1}, Tile: [2]int{unpackTG * unpackPer, 0}, Buffers: UnpackBindings}, true
	}
	if v.Kernel.Accepts(v.Format) != nil {
		return Spec{}, false
	}
	switch v.Act {
	case quant.F32, quant.F16, quant.BF16:
	default:
		return Spec{}, false
	}
	if v.Mode == quant.Affine {
		if !v.Scale.IsFloat() {
			return Spec{}, false
		}
	} else if v.Scale != quant.U8 {
		return Spec{}, false
	}
	// Every K the engine accepts is a multiple of 16 (of 32 but for
	// nvfp4), which qmv and qmm rely on.
	s := Spec{Buffers: MatmulBindings}
	switch v.Kernel {
	case engine.PerElement:
		s.Threads, s.Tile = [3]int{elemTile, elemTile, 1}, [2]int{elemTile, elemTile}
	case engine.Tiled:
		s.Threads, s.Tile = [3]int{elemTile, elemTile, 1}, [2]int{elemTile, elemTile}
		s.Memory = roundUp(2*elemTile*33*4, 16)
	case engine.SIMD:
		s.Threads, s.Tile = [3]int{tileThreads, 1, 1}, [2]int{simdTile, simdTile}
		s.Memory = tileMemory(simdTile, simdTile, 32)
	case engine.SIMD4, engine.PackedSIMD4B4, engine.QMM:
		s.Threads, s.Tile = [3]int{tileThreads, 1, 1}, [2]int{simd4Tile, simd4Tile}
		s.Memory = tileMemory(simd4Tile, simd4Tile, 32)
	case engine.SIMD4GS64:
		s.Threads, s.Tile = [3]int{tileThreads, 1, 1}, [2]int{simd4Tile, simd4Tile}
		s.Memory = tileMemory(simd4Tile, simd4Tile, 64)
	case engine.QMV:
		s.Threads, s.Tile = [3]int{qmvThreads, 1, 1}, [2]int{qmvRows, 1}
	case engine.Embed:
		s.Threads, s.Tile, s.AlongK, s.Buffers = [3]int{embedTG, 1, 1}, [2]int{embedTG, 1}, true, EmbedBindings
	case engine.GatherQMV, engine.GatherQMM:
		s.Threads, s.Tile, s.Buffers = [3]int{gatherTG, 1, 1}, [2]int{gatherRows, 1}, GatherBindings
	default:
		return Spec{}, false
	}
	return s, true
}

// crossover is the largest M at which the plan runs qmv rather than qmm.
//
// Not yet measured on a Mac: these are MLX's limits for the same choice
// (get_qmv_batch_limit in mlx/backend/metal/quantized.cpp, M1/M2-class
// GPUs: 14 rows when K and N are at most 2048, 10 up to 4096, 6 above).
// qmv reads the weight once per row of x, qmm once per 32 rows, so the
// crossover falls as the layer grows. Replace them with figures from
// go run ./cmd/run eval on a Mac.
func crossover(p engine.Params) int {
	switch big := max(p.N, p.K); {
	case big <= 2048:
		return 14
	case big <= 4096:
		return 10
	}
	return 6
}
