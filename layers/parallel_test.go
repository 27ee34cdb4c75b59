package layers_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/cpu"
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/engine/enginetest"
	"github.com/mlxq/mlxq/layers"
	"github.com/mlxq/mlxq/quant"
)

// collective opens n CPU devices and a collective over them.
func collective(t *testing.T, n int) *engine.Collective {
	t.Helper()
	devs := make([]*engine.Device, n)
	for i := range devs {
		d, err := engine.OpenDevice(fmt.Sprintf("%s:%d", cpu.Name, i))
		require.NoError(t, err)
		t.Cleanup(func() { d.Close() })
		devs[i] = d
	}
	c, err := engine.NewCollective(devs...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// randomLayer quantizes a random [n, k] weight in format f, with a Linear
// bias when withBias is set.
func randomLayer(t *testing.T, rng *rand.Rand, f quant.Format, n, k int, withBias bool) (*quant.Matrix, []float32) {
	t.Helper()
	w := make([]float32, n*k)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * 0.05)
	}
	st := []quant.DType{quant.F32, quant.F16, quant.BF16}[rng.IntN(3)]
	if f.Mode != quant.Affine {
		st = quant.U8
	}
	m, err := quant.Quantize(w, n, k, f, st)
	require.NoError(t, err)
	var bias []float32
	if withBias {
		bias = make([]float32, n)
		for i := range bias {
			bias[i] = float32(rng.NormFloat64())
		}
	}
	return m, bias
}

// The sharded forward pass equals the unsharded one, and both the float64
// reference, within the layer's precision: 2, 3 and 4 shards, column- and
// row-parallel, every format and activation dtype, with and without a
// Linear bias, at M = 1 and M = 9.
func TestParallelMatchesUnsharded(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	one := openCPU(t)
	colls := map[int]*engine.Collective{2: collective(t, 2), 3: collective(t, 3), 4: collective(t, 4)}
	const n = 96 // divides by 2, 3 and 4
	for i, f := range quant.Formats() {
		k := 12 * f.GroupSize // 12 groups: 6, 4 or 3 per shard
		m, bias := randomLayer(t, rng, f, n, k, i%2 == 0)
		for _, dt := range engine.ActDTypes() {
			l, err := layers.New(one, "w", m, bias, 9, layers.WithDType(dt))
			require.NoError(t, err)
			for _, rows := range []int{1, 9} {
				x := enginetest.RandomX(rng, dt, rows, k)
				want, err := l.Forward(x, rows)
				require.NoError(t, err)
				ref := quant.Reference(x, rows, m, bias)
				for _, shards := range []int{2, 3, 4} {
					for _, split := range []layers.Split{layers.ColumnParallel, layers.RowParallel} {
						name := fmt.Sprintf("%v %v %s x%d M=%d", f, dt, split, shards, rows)
						p, err := layers.NewParallel(colls[shards], "w", m, bias, split, 9, layers.WithDType(dt))
						require.NoError(t, err, name)
						assert.Equal(t, l.Bytes(), p.Bytes(), name)
						prec, err := p.Precision(rows)
						require.NoError(t, err)
						tol := prec.Tolerance()
						y, err := p.Forward(x, rows)
						require.NoError(t, err, name)
						assert.LessOrEqual(t, quant.RelErr(y, widen(want)), tol, "%s: against one device", name)
						assert.LessOrEqual(t, quant.RelErr(y, ref), tol, "%s: against the reference", name)
						p.Close()
					}
				}
			}
			l.Close()
		}
	}
}

func widen(y []float32) []float64 {
	out := make([]float64, len(y))
	for i, v := range y {
		out[i] = float64(v)
	}
	return out
}

// Splits that would cut a row of W inside a group, or the output
// features unevenly, fail and say why; so do inputs on the wrong devices.
func TestParallelErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	f := quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}
	m, _ := randomLayer(t, rng, f, 30, 4*64, false)
	c3, c4 := collective(t, 3), collective(t, 4)

	_, err := layers.NewParallel(c3, "w", m, nil, layers.RowParallel, 4)
	assert.ErrorIs(t, err, layers.ErrSplit)
	assert.ErrorContains(t, err, "256 input features are 4 groups of 64, which do not divide into 3 shards of whole groups")
	_, err = layers.NewParallel(c4, "w", m, nil, layers.ColumnParallel, 4)
	assert.ErrorIs(t, err, layers.ErrSplit)
	assert.ErrorContains(t, err, "30 output features do not divide into 4 equal shards")
	assert.NoError(t, layers.CheckSplit("w", f, 30, 4*64, layers.ColumnParallel, 3))
	assert.NoError(t, layers.CheckSplit("w", f, 30, 4*64, layers.RowParallel, 4))
	assert.ErrorIs(t, layers.CheckSplit("w", f, 30, 4*64, layers.RowParallel, 3), layers.ErrSplit)
	assert.ErrorContains(t, layers.CheckSplit("w", f, 30, 4*64, layers.ColumnParallel, 0), "0 shards")
	_, err = layers.ParseSplit("diagonal")
	assert.ErrorIs(t, err, layers.ErrSplit)
	_, err = layers.NewParallel(c3, "w", m, make([]float32, 7), layers.ColumnParallel, 4)
	assert.ErrorContains(t, err, "bias of 7 values, want 30")

	p, err := layers.NewParallel(c3, "w", m, nil, layers.ColumnParallel, 4)
	require.NoError(t, err)
	defer p.Close()
	xs := p.Inputs()
	_, err = p.Run(xs[:2], 1)
	assert.ErrorIs(t, err, engine.ErrArgs)
	assert.ErrorContains(t, err, "2 inputs for 3 shards")
	xs[0], xs[1] = xs[1], xs[0]
	_, err = p.Run(xs, 1)
	assert.ErrorIs(t, err, engine.ErrArgs)
	assert.ErrorContains(t, err, "belongs to device")
	_, err = p.Run(p.Inputs(), 5)
	assert.ErrorIs(t, err, layers.ErrSeqLen)
	_, err = p.Forward(make([]float32, 10), 1)
	assert.ErrorContains(t, err, "x has 10 values, want M·In = 1·256 = 256")
}

// A row-parallel layer fed by a column-parallel one (the pair of a
// Megatron MLP) runs on the devices with no copy to the host in between:
// each column shard's output is its row shard's input.
func TestParallelPair(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	c := collective(t, 2)
	f := quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}
	up, _ := randomLayer(t, rng, f, 128, 64, false)
	down, bias := randomLayer(t, rng, f, 64, 128, true)
	col, err := layers.NewParallel(c, "up", up, nil, layers.ColumnParallel, 3)
	require.NoError(t, err)
	defer col.Close()
	row, err := layers.NewParallel(c, "down", down, bias, layers.RowParallel, 3)
	require.NoError(t, err)
	defer row.Close()

	const rows = 3
	x := enginetest.RandomX(rng, quant.F32, rows, 64)
	for r, l := range col.Shards() {
		require.NoError(t, l.Device().UploadFloat32(l.Input(), x))
		e := l.Device().NewEncoder()
		_, err := l.Encode(e, l.Input(), rows)
		require.NoError(t, err)
		require.NoError(t, e.Commit(), "shard %d", r)
	}
	var hs []*engine.Buffer
	for _, l := range col.Shards() {
		hs = append(hs, l.Output())
	}
	ys, err := row.Run(hs, rows)
	require.NoError(t, err)
	y := make([]float32, rows*64)
	require.NoError(t, c.Devices()[1].DownloadFloat32(y, ys[1]))

	h := quant.Reference(x, rows, up, nil)
	h32 := make([]float32, len(h))
	for i, v := range h {
		h32[i] = float32(v)
	}
	assert.LessOrEqual(t, quant.RelErr(y, quant.Reference(h32, rows, down, bias)), enginetest.Tolerance)
}
