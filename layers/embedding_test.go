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

// randomMatrix quantizes a random [rows, cols] weight into format f.
func randomMatrix(t *testing.T, rng *rand.Rand, f quant.Format, st quant.DType, rows, cols int) *quant.Matrix {
	t.Helper()
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * 0.05)
	}
	m, err := quant.Quantize(w, rows, cols, f, st)
	require.NoError(t, err)
	return m
}

// dequantRows returns the rows of m named by ids in float64.
func dequantRows(m *quant.Matrix, ids []int32) []float64 {
	out := make([]float64, len(ids)*m.Cols)
	for i, id := range ids {
		m.DequantizeRow(out[i*m.Cols:(i+1)*m.Cols], int(id))
	}
	return out
}

func TestEmbeddingLookup(t *testing.T) {
	dev := openCPU(t)
	rng := rand.New(rand.NewPCG(51, 52))
	for _, c := range []struct {
		f  quant.Format
		st quant.DType
		k  int
	}{
		{quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}, quant.BF16, 96},
		{quant.Format{Mode: quant.Affine, Bits: 6, GroupSize: 64}, quant.F32, 128},
		{quant.DefaultFormat(quant.NVFP4), quant.U8, 48},
	} {
		m := randomMatrix(t, rng, c.f, c.st, 100, c.k)
		for _, dt := range engine.ActDTypes() {
			e, err := layers.NewEmbedding(dev, "embed", m, 8, layers.WithDType(dt))
			require.NoError(t, err)
			ids := []int32{99, 0, 42, 42, 7}
			y, err := e.Lookup(ids)
			require.NoError(t, err)
			assert.LessOrEqual(t, quant.RelErr(y, dequantRows(m, ids)), e.Precision().Tolerance(), "%v %v", c.f, dt)
			assert.Equal(t, []int{8, c.k}, e.Output().Shape())
			assert.Equal(t, dt, e.Output().DType())
			assert.Equal(t, len(m.Weight)+len(m.Scales)+len(m.Biases), e.Bytes())
			assert.Equal(t, e.Bytes(), e.DeviceBytes(), "packed as stored")
			assert.Equal(t, e.Bytes()/100, e.RowBytes())
			e.Close()
		}
	}
}

func TestEmbeddingErrors(t *testing.T) {
	dev := openCPU(t)
	rng := rand.New(rand.NewPCG(53, 54))
	m := randomMatrix(t, rng, quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}, quant.BF16, 50, 128)
	e, err := layers.NewEmbedding(dev, "model.embed_tokens", m, 4)
	require.NoError(t, err)
	defer e.Close()
	for _, bad := range []int32{50, -1} {
		_, err := e.Lookup([]int32{1, bad})
		assert.ErrorIs(t, err, engine.ErrArgs)
		assert.ErrorContains(t, err, "layer model.embed_tokens: embed: invalid arguments: id")
		assert.ErrorContains(t, err, "(position 1) out of range: the vocabulary has 50 rows")
	}
	_, err = e.Lookup(nil)
	assert.ErrorIs(t, err, layers.ErrSeqLen)
	_, err = e.Lookup(make([]int32, 5))
	assert.ErrorIs(t, err, layers.ErrSeqLen)
	y, err := e.Lookup([]int32{49})
	require.NoError(t, err, "refused lookups leave the embedding usable")
	assert.LessOrEqual(t, quant.RelErr(y, dequantRows(m, []int32{49})), enginetest.Tolerance)

	_, err = layers.NewEmbedding(dev, "e", m, 0)
	assert.ErrorContains(t, err, "max_seq_len 0")
	_, err = layers.NewEmbedding(dev, "e", m, 4, layers.WithKernel(engine.QMV))
	assert.ErrorIs(t, err, engine.ErrArgs)
	assert.ErrorContains(t, err, "kernel qmv does not compute this layer's operation")
	_, err = layers.NewEmbedding(dev, "e", m, 4, layers.WithDType(quant.U8))
	assert.ErrorContains(t, err, "activation dtype U8")

	model, err := loader.Open(filepath.Join("..", "testdata", "mixed"))
	require.NoError(t, err)
	defer model.Close()
	ll, err := model.Layer("model.layers.1.mlp.switch_mlp.gate_proj")
	require.NoError(t, err)
	_, err = layers.LoadEmbedding(dev, ll, 4)
	assert.ErrorContains(t, err, "stacks")
}

// The tied head runs the embedding's own device tensors: no second copy,
// and it stops working once the embedding is closed.
func TestEmbeddingAsLinear(t *testing.T) {
	dev := openCPU(t)
	rng := rand.New(rand.NewPCG(55, 56))
	m := randomMatrix(t, rng, quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}, quant.BF16, 200, 64)
	e, err := layers.NewEmbedding(dev, "model.embed_tokens", m, 6, layers.WithDType(quant.BF16))
	require.NoError(t, err)
	head, err := e.AsLinear(6, layers.WithDType(quant.BF16))
	require.NoError(t, err)
	assert.Equal(t, [2]int{64, 200}, [2]int{head.In, head.Out})
	assert.Equal(t, e.DeviceBytes(), head.DeviceBytes())
	assert.Equal(t, e.Bytes(), head.Bytes())

	x := enginetest.RandomX(rng, quant.BF16, 3, 64)
	y, err := head.Forward(x, 3)
	require.NoError(t, err)
	prec, err := head.Precision(3)
	require.NoError(t, err)
	assert.LessOrEqual(t, quant.RelErr(y, quant.Reference(x, 3, m, nil)), prec.Tolerance())

	// Lookup and head in one commit, the head on the lookup's rows.
	ids := []int32{5, 199, 5}
	enc := dev.NewEncoder()
	rows, err := e.Encode(enc, ids)
	require.NoError(t, err)
	_, err = head.Encode(enc, rows, len(ids))
	require.NoError(t, err)
	require.NoError(t, enc.Commit())
	logits := make([]float32, len(ids)*200)
	require.NoError(t, dev.DownloadFloat32(logits, head.Output()))
	h := make([]float32, len(ids)*64)
	for i, v := range dequantRows(m, ids) {
		h[i] = quant.BF16.Round(float32(v))
	}
	assert.LessOrEqual(t, quant.RelErr(logits, quant.Reference(h, len(ids), m, nil)), prec.Tolerance())

	head.Close()
	_, err = e.Lookup(ids)
	require.NoError(t, err, "closing the head leaves the embedding's weights")
	again, err := e.AsLinear(2)
	require.NoError(t, err)
	e.Close()
	_, err = again.Forward(x[:64], 1)
	assert.ErrorIs(t, err, engine.ErrClosed, "the head's weights are the embedding's")
	again.Close()

	e2, err := layers.NewEmbedding(dev, "e", m, 2)
	require.NoError(t, err)
	defer e2.Close()
	_, err = e2.AsLinear(2, layers.WithKernel(engine.SIMD4))
	assert.ErrorIs(t, err, engine.ErrUnsupported)
	assert.ErrorContains(t, err, "the embedding keeps the packed words")
}
