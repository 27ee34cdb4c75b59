package layers_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/engine/enginetest"
	"github.com/mlxq/mlxq/layers"
	"github.com/mlxq/mlxq/loader"
	"github.com/mlxq/mlxq/quant"
)

// The forward pass split by experts over 2, 3 and 4 shards (3 of 8
// experts: shards of 3, 3 and 2) equals the unsharded one and the float64
// reference within the layer's precision, every format and activation
// dtype, with and without expert biases, at M = 1 and M = 9 (gather_qmv
// and gather_qmm), top 2 and top 5 (more than a shard of 2 holds).
func TestParallelSwitchMatchesUnsharded(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	one := openCPU(t)
	colls := map[int]*engine.Collective{2: collective(t, 2), 3: collective(t, 3), 4: collective(t, 4)}
	const experts, n = 8, 24
	for i, f := range quant.Formats() {
		k := 4 * f.GroupSize
		st := []quant.DType{quant.F32, quant.F16, quant.BF16}[i%3]
		if f.Mode != quant.Affine {
			st = quant.U8
		}
		var mats []*quant.Matrix
		var bias [][]float32
		for range experts {
			mats = append(mats, randomMatrix(t, rng, f, st, n, k))
			if i%2 == 0 {
				b := make([]float32, n)
				for j := range b {
					b[j] = float32(rng.NormFloat64())
				}
				bias = append(bias, b)
			}
		}
		for _, dt := range engine.ActDTypes() {
			for _, topK := range []int{2, 5} {
				l, err := layers.NewSwitch(one, "experts", mats, bias, topK, 9, layers.WithDType(dt))
				require.NoError(t, err)
				for _, rows := range []int{1, 9} {
					x := enginetest.RandomX(rng, dt, rows, k)
					indices := randomRouting(rng, rows, topK, experts)
					want, err := l.Forward(x, indices, rows)
					require.NoError(t, err)
					ref := gatherReference(x, topK, indices, mats, bias)
					for _, shards := range []int{2, 3, 4} {
						name := fmt.Sprintf("%v %v top %d x%d M=%d", f, dt, topK, shards, rows)
						p, err := layers.NewParallelSwitch(colls[shards], "experts", mats, bias, topK, 9, layers.WithDType(dt))
						require.NoError(t, err, name)
						assert.Equal(t, l.Bytes(), p.Bytes(), name)
						prec, err := p.Precision(rows)
						require.NoError(t, err)
						y, err := p.Forward(x, indices, rows)
						require.NoError(t, err, name)
						assert.LessOrEqual(t, quant.RelErr(y, widen(want)), prec.Tolerance(), "%s: against one device", name)
						assert.LessOrEqual(t, quant.RelErr(y, ref), prec.Tolerance(), "%s: against the reference", name)
						p.Close()
					}
				}
				l.Close()
			}
		}
	}
}

// The shards hold contiguous ranges of the experts, as even as the
// number of shards allows, and the slots of other shards' experts come
// out of a shard as zeros: each slot of y is one shard's.
func TestParallelSwitchShards(t *testing.T) {
	ll := mixedSwitch(t)
	c := collective(t, 3)
	p, err := layers.LoadParallelSwitch(c, ll, 2, 4)
	require.NoError(t, err)
	defer p.Close()
	var ranges [][2]int
	for r := range p.Shards() {
		first, n := p.ShardExperts(r)
		ranges = append(ranges, [2]int{first, n})
	}
	assert.Equal(t, [][2]int{{0, 2}, {2, 3}, {5, 3}}, ranges)
	assert.Equal(t, ll.Experts*p.ExpertBytes(), p.Bytes())
	assert.Equal(t, p.Bytes()+3*p.ExpertBytes(), p.DeviceBytes(), "one zero expert per shard")

	const rows = 2
	x := enginetest.RandomX(rand.New(rand.NewPCG(1, 2)), quant.F32, rows, ll.In)
	indices := []int32{0, 7, 3, 4} // row 0: shards 0 and 2; row 1: shard 1 only
	for _, l := range p.Shards() {
		require.NoError(t, l.Device().UploadFloat32(l.Input(), x))
	}
	partial := make([][]float32, 3)
	for r, l := range p.Shards() {
		local := make([]int32, len(indices))
		first, n := p.ShardExperts(r)
		for i, e := range indices {
			local[i] = int32(n) // the zero expert
			if int(e) >= first && int(e) < first+n {
				local[i] = e - int32(first)
			}
		}
		partial[r], err = l.Forward(x, local, rows)
		require.NoError(t, err)
	}
	out := ll.Out
	for slot, owner := range []int{0, 2, 1, 1} {
		for r := range 3 {
			piece := partial[r][slot*out : (slot+1)*out]
			if r == owner {
				assert.NotEqual(t, make([]float32, out), piece, "slot %d on its shard %d", slot, r)
			} else {
				assert.Equal(t, make([]float32, out), piece, "slot %d on shard %d", slot, r)
			}
		}
	}
	y, err := p.Forward(x, indices, rows)
	require.NoError(t, err)
	one, err := layers.LoadSwitch(openCPU(t), ll, 2, 4)
	require.NoError(t, err)
	defer one.Close()
	want, err := one.Forward(x, indices, rows)
	require.NoError(t, err)
	assert.Equal(t, want, y, "float32 sums of one value and zeros")
}

// mixedSwitch returns the stacked experts of the mixed testdata model.
func mixedSwitch(t *testing.T) *loader.Layer {
	t.Helper()
	model, err := loader.Open(filepath.Join("..", "testdata", "mixed"))
	require.NoError(t, err)
	t.Cleanup(func() { model.Close() })
	l, err := model.Layer("model.layers.1.mlp.switch_mlp.down_proj")
	require.NoError(t, err)
	require.Equal(t, 8, l.Experts)
	return l
}

// More shards than experts, a 2-D layer, inputs on the wrong devices and
// indices out of range fail and say why.
func TestParallelSwitchErrors(t *testing.T) {
	ll := mixedSwitch(t)
	_, err := layers.LoadParallelSwitch(collective(t, 9), ll, 2, 4)
	assert.ErrorIs(t, err, layers.ErrSplit)
	assert.ErrorContains(t, err, "8 experts do not split into 9 shards of at least one")
	model, err := loader.Open(filepath.Join("..", "testdata", "mixed"))
	require.NoError(t, err)
	defer model.Close()
	flat, err := model.Layer("model.layers.0.mlp.up_proj")
	require.NoError(t, err)
	c := collective(t, 2)
	_, err = layers.LoadParallelSwitch(c, flat, 2, 4)
	assert.ErrorIs(t, err, layers.ErrSplit)
	assert.ErrorContains(t, err, "a 2-D weight, not stacked experts")
	_, err = layers.LoadParallelSwitch(c, ll, 9, 4)
	assert.ErrorContains(t, err, "top 9 of 8 experts, want 1 to 8")

	p, err := layers.LoadParallelSwitch(c, ll, 2, 4)
	require.NoError(t, err)
	defer p.Close()
	xs := p.Inputs()
	_, err = p.Run(xs[:1], []int32{0, 1}, 1)
	assert.ErrorIs(t, err, engine.ErrArgs)
	assert.ErrorContains(t, err, "1 inputs for 2 shards")
	xs[0], xs[1] = xs[1], xs[0]
	_, err = p.Run(xs, []int32{0, 1}, 1)
	assert.ErrorIs(t, err, engine.ErrArgs)
	assert.ErrorContains(t, err, "belongs to device")
	_, err = p.Run(p.Inputs(), []int32{0, 8}, 1)
	assert.ErrorIs(t, err, engine.ErrArgs)
	assert.ErrorContains(t, err, "expert index 8 (row 0, slot 1) out of range: the layer has 8 experts")
	_, err = p.Run(p.Inputs(), []int32{0}, 1)
	assert.ErrorContains(t, err, "1 expert indices, want M·TopK = 1·2 = 2")
	_, err = p.Run(p.Inputs(), []int32{0, 1}, 5)
	assert.ErrorIs(t, err, layers.ErrSeqLen)
	_, err = p.Forward(make([]float32, 3), []int32{0, 1}, 1)
	assert.ErrorContains(t, err, "x has 3 values")
}
