package quant

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The worked example of the format document, §2.5: 4-bit, group 32, bf16.
func TestQuantizeWorkedExample(t *testing.T) {
	w := make([]float32, 32)
	for i := range w {
		w[i] = float32(float64(i-10) / 10)
	}
	m, err := Quantize(w, 1, 32, Format{Affine, 4, 32}, BF16)
	require.NoError(t, err)
	require.NoError(t, m.Check())

	assert.Equal(t, uint16(0xBE57), binary.LittleEndian.Uint16(m.Scales))
	assert.Equal(t, uint16(0x4006), binary.LittleEndian.Uint16(m.Biases))
	assert.Equal(t, -0.2099609375, m.Scale(0, 0))
	assert.Equal(t, 2.09375, m.Bias(0, 0))

	wantCodes := []uint8{15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 10, 9, 9, 8, 8, 7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0}
	codes := make([]uint8, 32)
	Unpack(codes, m.Weight, 4)
	assert.Equal(t, wantCodes, codes)
	assert.Equal(t, wordsLE(0xBCCDDEEF, 0x8899AAAB, 0x44556677, 0x00112233), m.Weight)

	deq := m.Dequantize()
	assert.Equal(t, float32(-1.0556640625), deq[0])
	assert.Equal(t, float32(-0.005859375), deq[10]) // w = 0 no longer exact after bf16 rounding
}

// The fp32 scale and bias of the same group, before storage: negative scale,
// bias at the group maximum.
func TestAffineGroupNegativeScale(t *testing.T) {
	w := make([]float32, 32)
	for i := range w {
		w[i] = float32(float64(i-10) / 10)
	}
	codes := make([]uint8, 32)
	s, b := AffineGroup(codes, w, 4)
	assert.InDelta(t, -0.21, s, 1e-6)
	assert.Equal(t, float32(2.1), b)
	// In fp32, zero maps to an exact code: q = (0-b)/s = 10.
	assert.Equal(t, uint8(10), codes[10])
	assert.Equal(t, float32(0), s*float32(codes[10])+b)
}

func TestQuantizeZerosDequantizeToExactZero(t *testing.T) {
	for _, bits := range []int{2, 3, 4, 5, 6, 8} {
		for _, st := range []DType{F32, F16, BF16} {
			m, err := Quantize(make([]float32, 4*128), 4, 128, Format{Affine, bits, 64}, st)
			require.NoError(t, err)
			for i, v := range m.Dequantize() {
				require.Equal(t, uint32(0), math.Float32bits(v), "bits %d %v element %d", bits, st, i)
			}
		}
	}
}

// An all-negative group: the edge is the minimum and the scale positive.
// The min/max scale 2.5/3 puts the edge at -3.6 steps, so q0 = -4 and the
// scale becomes 3/4: zero lies on the grid (code 4, out of range) and -0.5
// is clipped to the top code.
func TestAffineGroupPositiveScale(t *testing.T) {
	w := []float32{-3, -2, -1, -0.5}
	codes := make([]uint8, 4)
	s, b := AffineGroup(codes, w, 2)
	assert.Equal(t, float32(0.75), s)
	assert.Equal(t, float32(-3), b)
	assert.Equal(t, []uint8{0, 1, 3, 3}, codes)
}

// Round-trip error is at most half a step inside the grid's range. Moving
// the scale so that zero is on the grid can shorten the range, so values
// beyond it are clipped, by less than a step.
func TestQuantizeErrorBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, f := range []Format{{Affine, 2, 32}, {Affine, 3, 64}, {Affine, 4, 128}, {Affine, 5, 32}, {Affine, 6, 64}, {Affine, 8, 128}} {
		rows, cols := 8, 256
		w := make([]float32, rows*cols)
		for i := range w {
			w[i] = float32(rng.NormFloat64() * 0.02)
		}
		m, err := Quantize(w, rows, cols, f, F32)
		require.NoError(t, err)
		require.NoError(t, m.Check())
		deq := m.Dequantize()
		for r := range rows {
			for g := range m.Groups() {
				s, b := m.Scale(r, g), m.Bias(r, g)
				end := b + s*float64(int(1)<<f.Bits-1)
				lo, hi := min(b, end), max(b, end)
				step := math.Abs(s)
				for c := g * f.GroupSize; c < (g+1)*f.GroupSize; c++ {
					i := r*cols + c
					bound := step
					if v := float64(w[i]); v >= lo && v <= hi {
						bound = step / 2
					}
					require.LessOrEqual(t, math.Abs(float64(deq[i]-w[i])), bound+1e-7, "%v at (%d,%d)", f, r, c)
				}
			}
		}
	}
}

func TestQuantizeRejects(t *testing.T) {
	w := make([]float32, 64)
	_, err := Quantize(w, 1, 64, Format{Affine, 7, 32}, F16)
	assert.ErrorIs(t, err, ErrFormat)
	_, err = Quantize(w, 1, 64, Format{Affine, 4, 128}, F16)
	assert.ErrorIs(t, err, ErrShape)
	_, err = Quantize(w, 1, 64, Format{Affine, 4, 32}, U8)
	assert.ErrorIs(t, err, ErrFormat)
	_, err = Quantize(w, 2, 64, Format{Affine, 4, 32}, F16)
	assert.ErrorIs(t, err, ErrShape)
	_, err = Quantize(w, 1, 64, Format{MXFP4, 4, 32}, F16)
	assert.ErrorIs(t, err, ErrFormat)
}
