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
			switch ll.Kind() {
			case loader.Embedding:
				checkGoldenEmbedding(t, dev, man, gl, ll, x, want)
			case loader.SwitchLinear:
				checkGoldenSwitch(t, dev, man, gl, ll, x)
			}
		}
	}
}

// checkGoldenEmbedding looks the golden ids up and runs the golden x
// through the embedding as the tied head.
func checkGoldenEmbedding(t *testing.T, dev *engine.Device, man *golden.Manifest, gl golden.Layer, ll *loader.Layer, x []float32, y []float64) {
	t.Helper()
	e, err := layers.LoadEmbedding(dev, ll, len(gl.IDs))
	require.NoError(t, err)
	defer e.Close()
	rows, err := e.Lookup(gl.IDs)
	require.NoError(t, err)
	want, err := man.Lookup(gl)
	require.NoError(t, err)
	assert.LessOrEqual(t, quant.RelErr(rows, want), enginetest.Tolerance, "%s: lookup", gl.Name)
	head, err := e.AsLinear(man.Rows)
	require.NoError(t, err)
	defer head.Close()
	logits, err := head.Forward(x, man.Rows)
	require.NoError(t, err)
	assert.LessOrEqual(t, quant.RelErr(logits, y), enginetest.Tolerance, "%s: tied head", gl.Name)
}

// checkGoldenSwitch runs the golden x through the golden routing with
// each gathered product kernel.
func checkGoldenSwitch(t *testing.T, dev *engine.Device, man *golden.Manifest, gl golden.Layer, ll *loader.Layer, x []float32) {
	t.Helper()
	want, err := man.Gathered(gl)
	require.NoError(t, err)
	for _, k := range engine.GatherKernels() {
		l, err := layers.LoadSwitch(dev, ll, gl.TopK, man.Rows, layers.WithKernel(k))
		require.NoError(t, err)
		y, err := l.Forward(x, gl.Indices, man.Rows)
		require.NoError(t, err)
		assert.LessOrEqual(t, quant.RelErr(y, want), enginetest.Tolerance, "%s: %s", gl.Name, k)
		l.Close()
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
	l, err := layers.Load(dev, tinyLayer(t, "model.layers.0.self_attn.q_proj"), 64)
	require.NoError(t, err)
	defer l.Close()
	p, err := l.Plan(1)
	require.NoError(t, err)
	assert.Equal(t, engine.Plan{Kernel: engine.QMV, Layout: engine.Packed}, p)
	p, err = l.Plan(64)
	require.NoError(t, err)
	assert.Equal(t, engine.Plan{Kernel: engine.QMM, Layout: engine.Packed}, p)
	assert.Equal(t, []int{64, 256}, l.Output().Shape())
	assert.Equal(t, []int{64, 256}, l.Input().Shape())
	assert.Equal(t, 256*128+2*256*8*2, l.Bytes())
	assert.Equal(t, l.Bytes(), l.DeviceBytes())

	forced, err := layers.Load(dev, tinyLayer(t, "model.layers.0.self_attn.q_proj"), 8, layers.WithKernel(engine.PerElement))
	require.NoError(t, err)
	defer forced.Close()
	p, err = forced.Plan(4)
	require.NoError(t, err)
	assert.Equal(t, engine.Plan{Kernel: engine.PerElement, Layout: engine.Codes}, p)
	assert.Equal(t, 256*256+2*256*8*2, forced.DeviceBytes(), "one byte per code when unpacked")

	x := enginetest.RandomX(rand.New(rand.NewPCG(1, 1)), quant.F32, 3, 256)
	a, err := l.Forward(x, 3)
	require.NoError(t, err)
	b, err := forced.Forward(x, 3)
	require.NoError(t, err)
	assert.InDeltaSlice(t, a, b, 1e-4)

	// EncodeKernel runs another kernel on the same weights: qmm at M = 3
	// agrees with the planned qmv; simd4 needs unpacked codes.
	e := dev.NewEncoder()
	require.NoError(t, dev.UploadFloat32(l.Input(), x))
	require.NoError(t, l.EncodeKernel(e, engine.QMM, l.Input(), 3))
	require.NoError(t, e.Commit())
	c := make([]float32, 3*256)
	require.NoError(t, dev.DownloadFloat32(c, l.Output()))
	assert.InDeltaSlice(t, a, c, 1e-4)
	err = l.EncodeKernel(dev.NewEncoder(), engine.SIMD4, l.Input(), 3)
	assert.ErrorIs(t, err, engine.ErrArgs)
	assert.ErrorContains(t, err, "kernel simd4 reads the codes layout, weights are packed")
	assert.ErrorIs(t, l.EncodeKernel(dev.NewEncoder(), engine.QMM, l.Input(), 65), layers.ErrSeqLen)

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
	_, err = layers.Load(dev, tinyLayer(t, "model.layers.0.mlp.down_proj"), 4, layers.WithDType(quant.F64))
	assert.ErrorIs(t, err, engine.ErrArgs)
	assert.ErrorContains(t, err, "activation dtype F64, want F32, F16 or BF16")

	h, err := layers.Load(dev, tinyLayer(t, "model.layers.0.mlp.down_proj"), 4, layers.WithDType(quant.BF16))
	require.NoError(t, err)
	defer h.Close()
	_, err = h.ForwardRaw(make([]byte, 1023), 1)
	assert.ErrorContains(t, err, "x has 1023 bytes, not whole BF16 elements")
	_, err = h.ForwardRaw(make([]byte, 1022), 1)
	assert.ErrorContains(t, err, "x has 511 values, want M·In = 1·512 = 512")
}

// With the default plan every layer of the mixed model (every width, group
// size and mode) takes on the device exactly the bytes of its codes, scales
// and biases on disk.
func TestDeviceBytesEqualFileBytes(t *testing.T) {
	dev := openCPU(t)
	model, err := loader.Open(filepath.Join("..", "testdata", "mixed"))
	require.NoError(t, err)
	defer model.Close()
	formats := map[quant.Format]bool{}
	for _, ll := range model.Layers() {
		disk := (len(ll.Weight.Data) + len(ll.Scales.Data)) / max(ll.Experts, 1)
		if ll.Biases != nil {
			disk += len(ll.Biases.Data) / max(ll.Experts, 1)
		}
		l, err := layers.LoadExpert(dev, ll, 0, 4)
		require.NoError(t, err)
		p, err := l.Plan(1)
		require.NoError(t, err)
		assert.Equal(t, engine.Packed, p.Layout, ll.Name)
		assert.Equal(t, disk, l.DeviceBytes(), "%s (%v)", ll.Name, ll.Format)
		assert.Equal(t, disk, l.Bytes(), ll.Name)
		formats[ll.Format] = true
		l.Close()
	}
	assert.GreaterOrEqual(t, len(formats), 9, "the mixed model covers every width and mode")
}

// Layers built for 16-bit activations hold x and y in that dtype and stay
// within the 16-bit tolerance of the float64 reference on the rounded x,
// at M below and above the crossover; ForwardRaw takes and gives the bits.
func TestActivationDTypes(t *testing.T) {
	dev := openCPU(t)
	model, err := loader.Open(filepath.Join("..", "testdata", "mixed"))
	require.NoError(t, err)
	defer model.Close()
	rng := rand.New(rand.NewPCG(3, 3))
	for _, ll := range model.Layers() {
		for _, dt := range engine.ActDTypes() {
			l, err := layers.LoadExpert(dev, ll, 0, 40, layers.WithDType(dt))
			require.NoError(t, err)
			assert.Equal(t, dt, l.Input().DType())
			assert.Equal(t, dt, l.Output().DType())
			for _, m := range []int{1, 40} {
				x := enginetest.RandomX(rng, dt, m, l.In)
				y, err := l.Forward(x, m)
				require.NoError(t, err)
				prec, err := l.Precision(m)
				require.NoError(t, err)
				assert.Equal(t, engine.ActPrecision(dt), prec)
				ref := quant.Reference(x, m, ll.Matrix(0), ll.BiasValues(0))
				assert.LessOrEqual(t, quant.RelErr(y, ref), prec.Tolerance(), "%s %v M=%d", ll.Name, dt, m)
				for i, v := range y {
					require.Equal(t, v, dt.Round(v), "%s %v: y[%d] = %v is not a %v value", ll.Name, dt, i, v, dt)
				}
				raw, err := l.ForwardRaw(dt.Bytes(x), m)
				require.NoError(t, err)
				assert.Equal(t, dt.Bytes(y), raw, "%s %v: ForwardRaw gives Forward's bits", ll.Name, dt)
			}
			l.Close()
		}
	}
}

func TestExperts(t *testing.T) {
	dev := openCPU(t)
	model, err := loader.Open(filepath.Join("..", "testdata", "mixed"))
	require.NoError(t, err)
	defer model.Close()
	l, err := model.Layer("model.layers.1.mlp.switch_mlp.gate_proj")
	require.NoError(t, err)
	_, err = layers.Load(dev, l, 4)
	assert.ErrorContains(t, err, "stacks 8 experts: use LoadExpert for one expert, or LoadSwitch for all")
	_, err = layers.LoadExpert(dev, l, 8, 4)
	assert.ErrorContains(t, err, "expert 8, want 0 to 7")
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
	x := enginetest.RandomX(rand.New(rand.NewPCG(2, 2)), quant.F32, m, 256)
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
