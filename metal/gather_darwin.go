package metal

import "github.com/mlxq/mlxq/engine"

// Embed records an embedding lookup dispatch; buffers as EmbedBindings,
// the parameter block holding the vocabulary in N.
func (q *queue) Embed(c engine.Compiled, a *engine.EmbedArgs) error {
	k, err := q.kernelOf(c)
	if err != nil {
		return err
	}
	params := Params{M: uint32(a.M), N: uint32(a.N), K: uint32(a.K)}
	if a.Biases != nil {
		params.Flags |= FlagBiases
	}
	return q.record(k, a.Params, params, map[Binding]*engine.Buffer{
		BindIDs: a.Index, BindW: a.W, BindScales: a.Scales, BindBiases: a.Biases, BindY: a.Y,
	})
}

// GatherMatmul records a gathered product dispatch, one threadgroup row
// per tile of r; buffers as GatherBindings.
func (q *queue) GatherMatmul(c engine.Compiled, a *engine.GatherArgs, r *engine.Routing) error {
	k, err := q.kernelOf(c)
	if err != nil {
		return err
	}
	p := a.Params
	p.M = len(r.Tiles)
	params := Params{M: uint32(p.M), N: uint32(a.N), K: uint32(a.K)}
	if a.Biases != nil {
		params.Flags |= FlagBiases
	}
	if a.Bias != nil {
		params.Flags |= FlagBias
	}
	return q.record(k, p, params, map[Binding]*engine.Buffer{
		BindX: a.X, BindW: a.W, BindScales: a.Scales, BindBiases: a.Biases, BindBias: a.Bias, BindY: a.Y, BindRoute: a.Routing,
	})
}
