package cuda

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/engine/enginetest"
	"github.com/mlxq/mlxq/quant"
)

// TestGatherGeometryCoversOutputs checks that the blocks of the lookup
// and of the gathered products cover every output: one block row per id
// or tile, and blocks of features or expert rows covering K or N.
func TestGatherGeometryCoversOutputs(t *testing.T) {
	for _, k := range []engine.Kernel{engine.Embed, engine.GatherQMV, engine.GatherQMM} {
		for _, v := range allVariants(k) {
			spec, ok := geometry(v)
			require.True(t, ok, "%v", v)
			p := engine.Params{M: 7, N: 13, K: 96, Format: v.Format, Act: v.Act}
			g := spec.grid(p)
			assert.Equal(t, uint32(7), g[0], "%v: one block row per id or tile", v)
			switch {
			case k == engine.Embed:
				assert.GreaterOrEqual(t, int(g[1])*embedBlock, p.K, "%v", v)
			case k == engine.GatherQMM && v.Act != quant.F32:
				assert.GreaterOrEqual(t, int(g[1])*gatherTCTile, p.N, "%v", v)
			default:
				assert.GreaterOrEqual(t, int(g[1])*gatherWarps*gatherRows(v.Bits), p.N, "%v", v)
			}
			threads := uint32(32 * gatherWarps)
			if k == engine.Embed {
				threads = embedBlock
			}
			assert.Equal(t, [3]uint32{threads, 1, 1}, spec.block, "%v", v)
		}
	}
}

// TestGPUGatherPTX runs the lookup and the gathered products from the
// embedded PTX, JIT-compiled by the driver, on a few formats, against the
// float64 reference.
func TestGPUGatherPTX(t *testing.T) {
	t.Setenv(EnvPTX, "1")
	t.Setenv(EnvCache, "off")
	dev, d := openGPU(t)
	require.Contains(t, d.Compiler(), "embedded PTX")
	rng := rand.New(rand.NewPCG(31, 32))
	for i, c := range []struct {
		f  quant.Format
		st quant.DType
	}{
		{quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}, quant.BF16},
		{quant.Format{Mode: quant.Affine, Bits: 6, GroupSize: 32}, quant.F16},
		{quant.DefaultFormat(quant.NVFP4), quant.U8},
	} {
		const m, topK, experts, n, k = 20, 3, 5, 40, 256
		x := enginetest.NewExperts(t, dev, rng, c.f, c.st, experts, n, k, i%2 == 0)
		indices := make([]int32, m*topK)
		for j := range indices {
			indices[j] = int32(rng.IntN(experts))
		}
		l := enginetest.NewLayer(t, dev, rng, c.f, c.st, n, k, false)
		ids := []int32{int32(n - 1), 0, 17}
		rows := make([]float64, len(ids)*k)
		for j, id := range ids {
			l.Matrix.DequantizeRow(rows[j*k:(j+1)*k], int(id))
		}
		for _, act := range []quant.DType{quant.F32, quant.BF16} {
			xs := enginetest.RandomX(rng, act, m, k)
			ref := x.Reference(xs, m, topK, indices)
			for _, kern := range engine.GatherKernels() {
				y := x.Run(t, kern, act, xs, m, topK, indices, m*topK)
				tol := dev.Precision(x.Variant(kern, act)).Tolerance()
				assert.LessOrEqual(t, quant.RelErr(y, ref), tol, "%s %v %v x", kern, c.f, act)
			}
			y := l.Lookup(t, act, ids, len(ids))
			assert.LessOrEqual(t, quant.RelErr(y, rows), dev.Precision(l.Variant(engine.Embed, act)).Tolerance(), "embed %v %v y", c.f, act)
		}
	}
}
