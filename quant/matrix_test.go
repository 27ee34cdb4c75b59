package quant

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReferenceByHand(t *testing.T) {
	// Two rows of 32 codes: row 0 all 1, row 1 codes 0..15 twice.
	codes := [][]uint8{repeat([]uint8{1}, 32), seq(32, 16)}
	m := &Matrix{Format: Format{Affine, 4, 32}, Rows: 2, Cols: 32, ScaleType: F32,
		Weight: make([]byte, 2*16), Scales: make([]byte, 8), Biases: make([]byte, 8)}
	for r, c := range codes {
		Pack(m.Row(r), c, 4)
	}
	F32.Store(m.Scales, 0, 0.5)
	F32.Store(m.Biases, 0, -1)
	F32.Store(m.Scales, 1, 2)
	F32.Store(m.Biases, 1, 0.25)
	require.NoError(t, m.Check())

	x := make([]float32, 2*32)
	for k := range 32 {
		x[k] = 1             // row 0 of x: ones
		x[32+k] = float32(k) // row 1 of x: 0..31
	}
	y := Reference(x, 2, m, []float32{10, 20})
	// w row 0 = 0.5*1-1 = -0.5 everywhere; w row 1 = 2q+0.25.
	sumQ := 0.0
	sumKQ := 0.0
	for k, q := range codes[1] {
		sumQ += float64(q)
		sumKQ += float64(k) * float64(q)
	}
	assert.Equal(t, []float64{
		-0.5*32 + 10, 2*sumQ + 0.25*32 + 20,
		-0.5*(31*32/2) + 10, 2*sumKQ + 0.25*(31*32/2) + 20,
	}, y)
}

func TestMatrixCheck(t *testing.T) {
	good := func() *Matrix {
		m, err := Quantize(make([]float32, 2*64), 2, 64, Format{Affine, 4, 32}, F16)
		require.NoError(t, err)
		return m
	}
	require.NoError(t, good().Check())
	tests := []struct {
		name   string
		mutate func(*Matrix)
		err    string
	}{
		{"short weight", func(m *Matrix) { m.Weight = m.Weight[1:] }, "weight has 63 bytes, want 64"},
		{"short scales", func(m *Matrix) { m.Scales = m.Scales[2:] }, "scales have 6 bytes, want 8"},
		{"missing biases", func(m *Matrix) { m.Biases = nil }, "biases have 0 bytes, want 8"},
		{"scale type", func(m *Matrix) { m.ScaleType = U8 }, "scales of type U8 for affine"},
		{"group", func(m *Matrix) { m.Cols = 48; m.GroupSize = 32 }, "48 columns not a multiple of group size 32"},
		{"rows", func(m *Matrix) { m.Rows = 0 }, "dimensions 0x64"},
	}
	for _, tt := range tests {
		m := good()
		tt.mutate(m)
		err := m.Check()
		assert.ErrorIs(t, err, ErrShape, tt.name)
		assert.ErrorContains(t, err, tt.err, tt.name)
	}
	m := good()
	m.Bits = 7
	assert.ErrorIs(t, m.Check(), ErrFormat)

	fp, err := Quantize(make([]float32, 32), 1, 32, Format{MXFP4, 4, 32}, U8)
	require.NoError(t, err)
	fp.Biases = make([]byte, 1)
	assert.ErrorContains(t, fp.Check(), "mxfp4 takes no biases")
}

func TestRelErr(t *testing.T) {
	assert.Equal(t, 0.0, RelErr([]float32{1, 2}, []float64{1, 2}))
	assert.InDelta(t, 0.1, RelErr([]float32{1.1, 0, 9}, []float64{1, 0}), 1e-7, "only len(ref) elements count")
	assert.Equal(t, 0.5, RelErr([]float32{0.5}, []float64{0}), "zero reference: absolute error")
	assert.True(t, math.IsNaN(RelErr([]float32{float32(math.NaN()), 0}, []float64{1, 0})), "NaN never passes a tolerance")
	assert.True(t, math.IsInf(RelErr([]float32{float32(math.Inf(1)), 0}, []float64{1, 0}), 1))
}
