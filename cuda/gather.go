package cuda

import (
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/quant"
)

// Block sizes of the embedding lookup and the gathered products
// (embed.cu, gather_qmv.cu, gather_qmm.cu); each must match its source.
const (
	embedBlock   = 256 // embed: threads per block, one code each
	gatherWarps  = 4   // the gathered products: warps per block
	gatherTCTile = 16  // gather_qmm, f16/bf16 activations: rows of the expert per block
)

// gatherRows is the number of expert rows each warp of the CUDA-core
// gathered body owns (MLXQ_GQ_ROWS).
func gatherRows(bits int) int {
	if bits > 4 {
		return 2
	}
	return 4
}

// gatherGeometry returns the launch of an Embed, GatherQMV or GatherQMM
// variant. The engine's parameters of a dispatch are read as: for embed,
// p.M the ids (one block row each, along x) and p.K the features; for the
// gathered products, p.M the routing's tiles (one block row each, along
// x) and p.N the rows of each expert.
func gatherGeometry(v engine.Variant) launchSpec {
	block := [3]uint32{32 * gatherWarps, 1, 1}
	switch {
	case v.Kernel == engine.Embed:
		return launchSpec{
			grid:  func(p engine.Params) [3]uint32 { return [3]uint32{uint32(max(p.M, 1)), ceilDiv(p.K, embedBlock), 1} },
			block: [3]uint32{embedBlock, 1, 1},
		}
	case v.Kernel == engine.GatherQMM && v.Act != quant.F32:
		return launchSpec{
			grid:  func(p engine.Params) [3]uint32 { return [3]uint32{uint32(max(p.M, 1)), ceilDiv(p.N, gatherTCTile), 1} },
			block: block,
		}
	}
	rows := gatherWarps * gatherRows(v.Bits)
	return launchSpec{
		grid:  func(p engine.Params) [3]uint32 { return [3]uint32{uint32(max(p.M, 1)), ceilDiv(p.N, rows), 1} },
		block: block,
	}
}

// Embed records an embedding lookup launch with parameters (ids, w,
// scales, biases, y, V, K), where V is the vocabulary (the weight's rows).
func (q *queue) Embed(c engine.Compiled, a *engine.EmbedArgs) error {
	k, err := q.kernelOf(c)
	if err != nil {
		return err
	}
	o, err := q.launch(k, a.Params)
	if err != nil {
		return err
	}
	o.add(ptrOf(a.Index), ptrOf(a.W), ptrOf(a.Scales), ptrOf(a.Biases), ptrOf(a.Y), i32(a.N), i32(a.K))
	q.ops = append(q.ops, o)
	return nil
}

// GatherMatmul records a gathered product launch with parameters (x, w,
// scales, biases, bias, y, routing, N, K), one block row per tile of r.
func (q *queue) GatherMatmul(c engine.Compiled, a *engine.GatherArgs, r *engine.Routing) error {
	k, err := q.kernelOf(c)
	if err != nil {
		return err
	}
	p := a.Params
	p.M = len(r.Tiles)
	o, err := q.launch(k, p)
	if err != nil {
		return err
	}
	o.add(ptrOf(a.X), ptrOf(a.W), ptrOf(a.Scales), ptrOf(a.Biases), ptrOf(a.Bias), ptrOf(a.Y), ptrOf(a.Routing), i32(a.N), i32(a.K))
	q.ops = append(q.ops, o)
	return nil
}
