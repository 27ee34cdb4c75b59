package cpu

import (
	"slices"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/internal/qdot"
	"github.com/mlxq/mlxq/quant"
)

type (
	embedFunc  func(threads int, a *engine.EmbedArgs)
	gatherFunc func(threads int, a *engine.GatherArgs, r *engine.Routing)
)

// gatherKernels are the gathered products: each tile of rows routed to
// one expert runs through qmv's or qmm's loop on that expert's rows.
var gatherKernels = map[engine.Kernel]gatherFunc{
	engine.GatherQMV: gatherKernel(qdot.MatVec),
	engine.GatherQMM: gatherKernel(qdot.MatMat),
}

// embed dequantizes the rows named by the ids into y, each value exact
// in float64 and rounded once to float32 (then to a 16-bit y).
var embed embedFunc = func(threads int, a *engine.EmbedArgs) {
	m := &quant.Matrix{Format: a.Format, Rows: a.N, Cols: a.K, Weight: bytesOf(a.W), Scales: bytesOf(a.Scales),
		Biases: bytesOf(a.Biases), ScaleType: a.Scales.DType()}
	y := bytesOf(a.Y)
	size := a.Act.Size()
	parallel(threads, a.M, 1, func(lo, hi int) {
		row := make([]float64, a.K)
		out := make([]float32, a.K)
		for i := lo; i < hi; i++ {
			m.DequantizeRow(row, int(a.IDs[i]))
			for k, v := range row {
				out[k] = float32(v)
			}
			a.Act.Encode(y[i*a.K*size:(i+1)*a.K*size], out)
		}
	})
}

// gatherKernel builds a gathered product on run (qdot.MatVec or
// qdot.MatMat): the rows of x of each tile are gathered once, with their
// group sums, then each thread computes blocks of rowBlock outputs of one
// tile from its expert's weight rows and scatters them to the tile's
// pairs' rows of y, adding the expert bias.
func gatherKernel(run layerFunc) gatherFunc {
	return func(threads int, a *engine.GatherArgs, r *engine.Routing) {
		p := a.Params
		codes := codesOf(p.Format)
		ng := p.K / p.GroupSize
		rb := codes.RowBytes(p.K)
		x := activations(a.X, p.M*p.K)
		xs := make([][]float32, len(r.Tiles))
		sums := make([][]float32, len(r.Tiles))
		for t, tl := range r.Tiles {
			pairs := r.Pairs[tl.First : tl.First+tl.Count]
			xs[t] = make([]float32, len(pairs)*p.K)
			for i, pair := range pairs {
				m := int(pair) / r.TopK
				copy(xs[t][i*p.K:], x[m*p.K:(m+1)*p.K])
			}
			sums[t] = make([]float32, len(pairs)*ng)
			qdot.GroupSums(sums[t], xs[t], p.GroupSize)
		}
		w, y, bias := bytesOf(a.W), bytesOf(a.Y), float32s(a.Bias)
		scales := newScaleReader(p.Mode, a.Scales)
		var biases *scaleReader
		if a.Biases != nil {
			biases = newScaleReader(p.Mode, a.Biases)
		}
		size := p.Act.Size()
		blocks := (p.N + rowBlock - 1) / rowBlock
		tileRows := slices.MaxFunc(r.Tiles, func(a, b engine.Tile) int { return int(a.Count - b.Count) }).Count
		parallel(threads, len(r.Tiles)*blocks, 1, func(lo, hi int) {
			s := make([]float32, rowBlock*ng)
			var b []float32
			if biases != nil {
				b = make([]float32, len(s))
			}
			out := make([]float32, int(tileRows)*rowBlock)
			for item := lo; item < hi; item++ {
				tl := r.Tiles[item/blocks]
				n0 := item % blocks * rowBlock
				n1 := min(p.N, n0+rowBlock)
				r0, r1 := int(tl.Expert)*p.N+n0, int(tl.Expert)*p.N+n1
				sr := scales.rows(s, r0*ng, r1*ng)
				var br []float32
				if biases != nil {
					br = biases.rows(b, r0*ng, r1*ng)
				}
				width := n1 - n0
				yt := out[:int(tl.Count)*width]
				run(yt, width, w[r0*rb:r1*rb], codes, sr, br, xs[item/blocks], sums[item/blocks], int(tl.Count), p.GroupSize)
				for i, pair := range r.Pairs[tl.First : tl.First+tl.Count] {
					row := yt[i*width : (i+1)*width]
					if bias != nil {
						for j := range row {
							row[j] += bias[r0+j]
						}
					}
					at := (int(pair)*p.N + n0) * size
					p.Act.Encode(y[at:at+width*size], row)
				}
			}
		})
	}
}

func (q *queue) Embed(c engine.Compiled, a *engine.EmbedArgs) error {
	f := c.(embedFunc)
	args := *a
	args.IDs = slices.Clone(a.IDs)
	q.work = append(q.work, func() error {
		f(q.threads, &args)
		return nil
	})
	return nil
}

func (q *queue) GatherMatmul(c engine.Compiled, a *engine.GatherArgs, r *engine.Routing) error {
	f := c.(gatherFunc)
	args := *a
	q.work = append(q.work, func() error {
		f(q.threads, &args, r)
		return nil
	})
	return nil
}
