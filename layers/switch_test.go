package layers_test

import (
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

// gatherReference is MLX's gather_qmm of the m rows of x in float64.
func gatherReference(x []float32, topK int, indices []int32, mats []*quant.Matrix, bias [][]float32) []float64 {
	k := mats[0].Cols
	var out []float64
	for p, e := range indices {
		var b []float32
		if bias != nil {
			b = bias[e]
		}
		row := p / topK
		out = append(out, quant.Reference(x[row*k:(row+1)*k], 1, mats[e], b)...)
	}
	return out
}

func randomRouting(rng *rand.Rand, m, topK, experts int) []int32 {
	var out []int32
	for range m {
		for _, e := range rng.Perm(experts)[:topK] {
			out = append(out, int32(e))
		}
	}
	return out
}

func TestSwitchForward(t *testing.T) {
	dev := openCPU(t)
	rng := rand.New(rand.NewPCG(61, 62))
	const experts, n, k, topK = 6, 40, 128, 2
	f := quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}
	var mats []*quant.Matrix
	var bias [][]float32
	for range experts {
		mats = append(mats, randomMatrix(t, rng, f, quant.BF16, n, k))
		b := make([]float32, n)
		for i := range b {
			b[i] = float32(rng.NormFloat64())
		}
		bias = append(bias, b)
	}
	for _, dt := range engine.ActDTypes() {
		l, err := layers.NewSwitch(dev, "switch_mlp.up_proj", mats, bias, topK, 20, layers.WithDType(dt))
		require.NoError(t, err)
		assert.Equal(t, [5]int{experts, k, n, topK, 20}, [5]int{l.Experts, l.In, l.Out, l.TopK, l.MaxSeqLen})
		assert.Equal(t, []int{20 * topK, n}, l.Output().Shape())
		assert.Equal(t, experts*l.ExpertBytes(), l.Bytes())
		assert.Equal(t, l.Bytes(), l.DeviceBytes(), "packed as stored")
		for _, m := range []int{1, 3, 17} {
			x := enginetest.RandomX(rng, dt, m, k)
			indices := randomRouting(rng, m, topK, experts)
			y, err := l.Forward(x, indices, m)
			require.NoError(t, err)
			require.Len(t, y, m*topK*n)
			prec, err := l.Precision(m)
			require.NoError(t, err)
			assert.LessOrEqual(t, quant.RelErr(y, gatherReference(x, topK, indices, mats, bias)), prec.Tolerance(), "%v M=%d", dt, m)
		}
		for m, want := range map[int]engine.Kernel{1: engine.GatherQMV, 3: engine.GatherQMV, 4: engine.GatherQMM, 20: engine.GatherQMM} {
			k, err := l.Plan(m)
			require.NoError(t, err)
			assert.Equal(t, want, k, "M=%d: %d rows over %d experts", m, m*topK, experts)
		}
		l.Close()
	}
}

// Each row's experts give what running that row through each expert as a
// QuantLinear gives.
func TestSwitchMatchesExperts(t *testing.T) {
	dev := openCPU(t)
	rng := rand.New(rand.NewPCG(63, 64))
	model, err := loader.Open(filepath.Join("..", "testdata", "mixed"))
	require.NoError(t, err)
	defer model.Close()
	ll, err := model.Layer("model.layers.1.mlp.switch_mlp.gate_proj")
	require.NoError(t, err)
	const m, topK = 5, 2
	for _, k := range engine.GatherKernels() {
		l, err := layers.LoadSwitch(dev, ll, topK, m, layers.WithKernel(k))
		require.NoError(t, err)
		x := enginetest.RandomX(rng, quant.F32, m, ll.In)
		indices := randomRouting(rng, m, topK, ll.Experts)
		y, err := l.Forward(x, indices, m)
		require.NoError(t, err)
		for p, e := range indices {
			lin, err := layers.LoadExpert(dev, ll, int(e), 1)
			require.NoError(t, err)
			row := p / topK
			want, err := lin.Forward(x[row*ll.In:(row+1)*ll.In], 1)
			require.NoError(t, err)
			assert.InDeltaSlice(t, want, y[p*ll.Out:(p+1)*ll.Out], 1e-5, "%s: row %d, expert %d", k, row, e)
			lin.Close()
		}
		l.Close()
	}
}

func TestSwitchErrors(t *testing.T) {
	dev := openCPU(t)
	rng := rand.New(rand.NewPCG(65, 66))
	f := quant.DefaultFormat(quant.MXFP4)
	mats := []*quant.Matrix{randomMatrix(t, rng, f, quant.U8, 16, 64), randomMatrix(t, rng, f, quant.U8, 16, 64), randomMatrix(t, rng, f, quant.U8, 16, 64)}
	l, err := layers.NewSwitch(dev, "experts", mats, nil, 2, 4)
	require.NoError(t, err)
	defer l.Close()
	x := enginetest.RandomX(rng, quant.F32, 2, 64)
	_, err = l.Forward(x, []int32{0, 1, 2, 3}, 2)
	assert.ErrorIs(t, err, engine.ErrArgs)
	assert.ErrorContains(t, err, "layer experts: gather_qmm: invalid arguments: expert index 3 (row 1, slot 1) out of range: the layer has 3 experts")
	_, err = l.Forward(x, []int32{0, -1, 2, 1}, 2)
	assert.ErrorContains(t, err, "expert index -1 (row 0, slot 1)")
	_, err = l.Forward(x, []int32{0, 1, 2}, 2)
	assert.ErrorContains(t, err, "3 expert indices, want M·TopK = 2·2 = 4")
	_, err = l.Forward(x, []int32{0, 1}, 1)
	assert.ErrorContains(t, err, "x has 128 values, want M·In = 1·64 = 64")
	_, err = l.Forward(make([]float32, 5*64), make([]int32, 10), 5)
	assert.ErrorIs(t, err, layers.ErrSeqLen)
	y, err := l.Forward(x, []int32{2, 0, 1, 2}, 2)
	require.NoError(t, err, "refused products leave the layer usable")
	assert.LessOrEqual(t, quant.RelErr(y, gatherReference(x, 2, []int32{2, 0, 1, 2}, mats, nil)), enginetest.Tolerance)

	_, err = layers.NewSwitch(dev, "experts", mats, nil, 4, 4)
	assert.ErrorContains(t, err, "top 4 of 3 experts, want 1 to 3")
	_, err = layers.NewSwitch(dev, "experts", mats, nil, 2, 4, layers.WithKernel(engine.QMV))
	assert.ErrorContains(t, err, "kernel qmv does not compute this layer's operation")
	_, err = layers.NewSwitch(dev, "experts", mats, [][]float32{make([]float32, 16)}, 2, 4)
	assert.ErrorContains(t, err, "biases of 1 experts, want 3")
	odd := randomMatrix(t, rng, f, quant.U8, 16, 96)
	_, err = layers.NewSwitch(dev, "experts", append(mats[:2:2], odd), nil, 2, 4)
	assert.ErrorContains(t, err, "expert 2 is mxfp4 4-bit group 32 16x96 with U8 scales")
	_, err = layers.NewSwitch(dev, "experts", nil, nil, 1, 4)
	assert.ErrorContains(t, err, "no experts")

	model, err := loader.Open(filepath.Join("..", "testdata", "tiny"))
	require.NoError(t, err)
	defer model.Close()
	ll, err := model.Layer("model.layers.0.mlp.up_proj")
	require.NoError(t, err)
	_, err = layers.LoadSwitch(dev, ll, 1, 4)
	assert.ErrorContains(t, err, "not stacked experts")
}
