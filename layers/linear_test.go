package layers_test

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/cpu"
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/engine/enginetest"
	"github.com/mlxq/mlxq/internal/golden"
	"github.com/mlxq/mlxq/layers"
	"github.com/mlxq/mlxq/loader"
	"github.com/mlxq/mlxq/quant"
)

func openCPU(t *testing.T) *engine.Device {
	t.Helper()
	dev, err := engine.Open(cpu.Name)
	require.NoError(t, err)
	t.Cleanup(func() { dev.Close() })
	return dev
}

// Every quantized layer of every test model, run on golden inputs, matches
// the golden float64 outputs.
func TestGoldenModels(t *testing.T) {
	dev := openCPU(t)
	for _, name := range []string{"tiny", "mixed", "sharded"} {
		dir := filepath.Join("..", "testdata", name)
		man, err := golden.Read(dir)
		require.NoError(t, err)
		model, err := loader.Open(dir)
		require.NoError(t, err)
		defer model.Close()
		require.Len(t, model.Layers(), len(man.Layers), name)
		for _, gl := range man.Layers {
			ll, err := model.Layer(gl.Name)
			require.NoError(t, err)
			x, err := man.Input(gl)
			require.NoError(t, err)
			want, err := man.Output(gl)
			require.NoError(t, err)
			for e := range max(gl.Experts, 1) {
				l, err := layers.LoadExpert(dev, ll, e, man.Rows)
				require.NoError(t, err)
				y, err := l.Forward(x, man.Rows)
				require.NoError(t, err)
				n := man.Rows * gl.Out
				assert.LessOrEqual(t, quant.RelErr(y, want[e*n:(e+1)*n]), enginetest.Tolerance, "%s/%s expert %d", name, gl.Name, e)
				l.Close()
			}
		}
	}
}

func tinyLayer(t *testing.T, name string) *loader.Layer {
	t.Helper()
	model, err := loader.Open(filepath.Join("..", "testdata", "tiny"))
	require.NoError(t, err)
	t.Cleanup(func() { model.Close() })
	l, err := model.Layer(name)
	require.NoError(t, err)
	return l
}

func TestPlanAndLayout(t *testing.T) {
	dev := openCPU(t)
	l, err := layers.Load(dev, tinyLayer(t, "model.layers.0.self_attn.q_proj"), 8)
	require.NoError(t, err)
	defer l.Close()
	p, err := l.Plan(1)
	require.NoError(t, err)
	assert.Equal(t, engine.Plan{Kernel: engine.PackedSIMD4B4, Layout: engine.Packed}, p)
	assert.Equal(t, []int{8, 256}, l.Output().Shape())
	assert.Equal(t, []int{8, 256}, l.Input().Shape())
	assert.Equal(t, 256*128+2*256*8*2, l.Bytes())

	forced, err := layers.Load(dev, tinyLayer(t, "model.layers.0.self_attn.q_proj"), 8, layers.WithKernel(engine.PerElement))
	require.NoError(t, err)
	defer forced.Close()
	p, err = forced.Plan(4)
	require.NoError(t, err)
	assert.Equal(t, engine.Plan{Kernel: engine.PerElement, Layout: engine.Codes}, p)

	x := enginetest.RandomX(rand.New(rand.NewPCG(1, 1)), 3, 256)
	a, err := l.Forward(x, 3)
	require.NoError(t, err)
	b, err := forced.Forward(x, 3)
	require.NoError(t, err)
	assert.InDeltaSlice(t, a, b, 1e-4)

	_, err = layers.Load(dev, tinyLayer(t, "model.layers.0.self_attn.q_proj"), 8, layers.WithKernel(engine.SIMD4GS64))
	assert.ErrorIs(t, err, engine.ErrArgs)
	assert.ErrorContains(t, err, "simd4_gs64: group size 32, want [64]")
}

func TestForwardErrors(t *testing.T) {
	dev := openCPU(t)
	l, err := layers.Load(dev, tinyLayer(t, "model.layers.0.mlp.down_proj"), 4)
	require.NoError(t, err)
	_, err = l.Forward(make([]float32, 5*512), 5)
	assert.ErrorIs(t, err, layers.ErrSeqLen)
	assert.ErrorContains(t, err, "M = 5, max_seq_len 4")
	_, err = l.Forward(make([]float32, 511), 1)
	assert.ErrorContains(t, err, "x has 511 values, want M·In = 1·512 = 512")
	_, err = l.Forward(nil, 0)
	assert.ErrorIs(t, err, layers.ErrSeqLen)
	l.Close()
	_, err = l.Forward(make([]float32, 512), 1)
	assert.ErrorIs(t, err, engine.ErrClosed)

	_, err = layers.New(dev, "bad", &quant.Matrix{Format: quant.Format{Mode: quant.Affine, Bits: 7, GroupSize: 32}}, nil, 4)
	assert.ErrorIs(t, err, quant.ErrFormat)
	_, err = layers.Load(dev, tinyLayer(t, "model.layers.0.mlp.down_proj"), 0)
	assert.ErrorContains(t, err, "max_seq_len 0, want > 0")
}

func TestExperts(t *testing.T) {
	dev := openCPU(t)
	model, err := loader.Open(filepath.Join("..", "testdata", "mixed"))
	require.NoError(t, err)
	defer model.Close()
	l, err := model.Layer("model.layers.1.mlp.switch_mlp.gate_proj")
	require.NoError(t, err)
	_, err = layers.Load(dev, l, 4)
	assert.ErrorContains(t, err, "stacks 2 experts: use LoadExpert")
	_, err = layers.LoadExpert(dev, l, 2, 4)
	assert.ErrorContains(t, err, "expert 2, want 0 to 1")
	e1, err := layers.LoadExpert(dev, l, 1, 4)
	require.NoError(t, err)
	defer e1.Close()
	assert.Equal(t, "model.layers.1.mlp.switch_mlp.gate_proj[1]", e1.Name)
}

// Two layers chained on the device in one commit: o_proj(q_proj(x)).
func TestEncodeChain(t *testing.T) {
	dev := openCPU(t)
	q, err := layers.Load(dev, tinyLayer(t, "model.layers.0.self_attn.q_proj"), 6)
	require.NoError(t, err)
	defer q.Close()
	o, err := layers.Load(dev, tinyLayer(t, "model.layers.0.self_attn.o_proj"), 6)
	require.NoError(t, err)
	defer o.Close()

	m := 6
	x := enginetest.RandomX(rand.New(rand.NewPCG(2, 2)), m, 256)
	require.NoError(t, dev.UploadFloat32(q.Input(), x))
	e := dev.NewEncoder()
	mid, err := q.Encode(e, q.Input(), m)
	require.NoError(t, err)
	out, err := o.Encode(e, mid, m)
	require.NoError(t, err)
	require.NoError(t, e.Commit())

	got := make([]float32, m*256)
	require.NoError(t, dev.DownloadFloat32(got, out))
	first, err := q.Forward(x, m)
	require.NoError(t, err)
	qm := tinyLayer(t, "model.layers.0.self_attn.o_proj").Matrix(0)
	assert.LessOrEqual(t, quant.RelErr(got, quant.Reference(first, m, qm, nil)), enginetest.Tolerance)
}
