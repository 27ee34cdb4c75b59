package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestE2M1(t *testing.T) {
	want := []float64{0, 0.5, 1, 1.5, 2, 3, 4, 6}
	for c, v := range want {
		assert.Equal(t, v, E2M1ToFloat(uint8(c)))
		assert.Equal(t, -v, E2M1ToFloat(uint8(c)|8))
	}
	assert.True(t, math.Signbit(E2M1ToFloat(8)), "code 8 is -0")
}

func TestE4M3(t *testing.T) {
	tests := []struct {
		code uint8
		want float64
	}{
		{0x00, 0},
		{0x01, math.Ldexp(1, -9)}, // smallest subnormal
		{0x07, math.Ldexp(7, -9)},
		{0x08, math.Ldexp(1, -6)}, // smallest normal
		{0x38, 1},
		{0x3c, 1.5},
		{0x7e, 448},  // largest finite
		{0x7f, 480},  // NaN in the fn encoding, decoded as MLX does
		{0xb8, -1},   //
		{0xfe, -448}, //
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, E4M3ToFloat(tt.code), "%#02x", tt.code)
	}
}

func TestE8M0(t *testing.T) {
	assert.Equal(t, 1.0, E8M0ToFloat(127))
	assert.Equal(t, 0.25, E8M0ToFloat(125))
	assert.Equal(t, math.Ldexp(1, -127), E8M0ToFloat(0))
	assert.Equal(t, math.Ldexp(1, 127), E8M0ToFloat(254))
	assert.True(t, math.IsInf(E8M0ToFloat(255), 1))
}

// A group whose values are exactly representable comes back exactly.
func TestFPGroupExact(t *testing.T) {
	w := make([]float32, 32)
	for i := range w {
		w[i] = float32(E2M1ToFloat(uint8(i%16)) / 4) // scale 2^-2 = amax/6 rounded in log2
	}
	m, err := Quantize(w, 1, 32, Format{MXFP4, 4, 32}, U8)
	require.NoError(t, err)
	require.NoError(t, m.Check())
	assert.Equal(t, uint8(125), m.Scales[0])
	for i, v := range m.Dequantize() {
		assert.Equal(t, w[i], v, "element %d", i)
	}
}

func TestFPQuantizeError(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	tests := []struct {
		f      Format
		maxRel float64 // normwise relative error a format of this precision stays under
	}{
		{Format{MXFP4, 4, 32}, 0.2},
		{Format{NVFP4, 4, 16}, 0.15},
		{Format{MXFP8, 8, 32}, 0.05},
	}
	for _, tt := range tests {
		w := make([]float32, 4*64)
		for i := range w {
			w[i] = float32(rng.NormFloat64())
		}
		m, err := Quantize(w, 4, 64, tt.f, U8)
		require.NoError(t, err)
		require.NoError(t, m.Check())
		assert.Nil(t, m.Biases)
		var num, den float64
		for i, v := range m.Dequantize() {
			num += (float64(v) - float64(w[i])) * (float64(v) - float64(w[i]))
			den += float64(w[i]) * float64(w[i])
		}
		assert.Less(t, math.Sqrt(num/den), tt.maxRel, "%v", tt.f)
	}
}

func TestFPGroupZeros(t *testing.T) {
	m, err := Quantize(make([]float32, 32), 1, 32, Format{MXFP8, 8, 32}, U8)
	require.NoError(t, err)
	assert.Equal(t, uint8(0), m.Scales[0]) // 2^-127, MLX's decoding of 0
	for _, v := range m.Dequantize() {
		assert.Zero(t, v)
	}
}
