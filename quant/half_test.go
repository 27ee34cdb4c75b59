package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every half value survives F16ToF32 then F32ToF16 unchanged, NaNs stay NaNs.
func TestF16RoundTripExhaustive(t *testing.T) {
	for h := range 1 << 16 {
		f := F16ToF32(uint16(h))
		back := F32ToF16(f)
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			require.True(t, math.IsNaN(float64(f)), "%#04x", h)
			require.Equal(t, uint16(0x7c00), back&0x7c00, "%#04x", h)
			require.NotZero(t, back&0x3ff, "%#04x", h)
			continue
		}
		require.Equal(t, uint16(h), back, "%#04x -> %v", h, f)
	}
}

func TestF16KnownValues(t *testing.T) {
	tests := []struct {
		f float32
		h uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{65504, 0x7bff},                       // largest finite
		{65520, 0x7c00},                       // halfway to the next binade rounds to Inf
		{65519.996, 0x7bff},                   // just below it stays finite
		{float32(math.Inf(1)), 0x7c00},        //
		{float32(math.Ldexp(1, -14)), 0x0400}, // smallest normal
		{float32(math.Ldexp(1, -24)), 0x0001}, // smallest subnormal
		{float32(math.Ldexp(1, -25)), 0x0000}, // tie between 0 and the smallest subnormal: even
		{float32(math.Ldexp(1.5, -25)), 0x0001},
		{float32(math.Ldexp(3, -25)), 0x0002},     // tie between 1 and 2 subnormal units: even
		{1 + float32(math.Ldexp(1, -11)), 0x3c00}, // tie: round to even mantissa
		{1 + float32(math.Ldexp(3, -11)), 0x3c02}, // tie: round up to even
		{0.1, 0x2e66},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.h, F32ToF16(tt.f), "%g", tt.f)
	}
}

// F32ToF16 picks the nearest half, ties to even, over random float32s.
func TestF16NearestProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200000 {
		f := math.Float32frombits(rng.Uint32())
		if math.IsNaN(float64(f)) || math.Abs(float64(f)) >= 65520 {
			continue
		}
		h := F32ToF16(f)
		got := math.Abs(float64(F16ToF32(h)) - float64(f))
		for _, n := range []uint16{h - 1, h + 1} {
			if n&0x7fff >= 0x7c00 || (h&0x7fff == 0 && n&0x7fff != 1) {
				continue // past Inf, or across the sign at zero
			}
			other := math.Abs(float64(F16ToF32(n)) - float64(f))
			require.LessOrEqual(t, got, other, "%g -> %#04x, neighbour %#04x", f, h, n)
			if got == other {
				require.Zero(t, h&1, "tie %g must go to even", f)
			}
		}
	}
}

func TestBF16(t *testing.T) {
	tests := []struct {
		f float32
		h uint16
	}{
		{1, 0x3f80},
		{-0.2099609375, 0xbe57},
		{float32(math.Inf(-1)), 0xff80},
		{math.Float32frombits(0x3f808000), 0x3f80}, // tie, even stays
		{math.Float32frombits(0x3f818000), 0x3f82}, // tie, odd rounds up
		{math.Float32frombits(0x3f808001), 0x3f81},
		{math.Float32frombits(0x7f7fffff), 0x7f80}, // max float32 rounds to Inf
		{math.Float32frombits(0x00000001), 0x0000}, // float32 subnormal rounds to zero
		{math.Float32frombits(0x00018000), 0x0002}, // bf16 subnormal tie, odd rounds up
	}
	for _, tt := range tests {
		assert.Equal(t, tt.h, F32ToBF16(tt.f), "%#08x", math.Float32bits(tt.f))
	}
	nan := F32ToBF16(math.Float32frombits(0x7f800001)) // payload only in the low bits
	assert.True(t, math.IsNaN(float64(BF16ToF32(nan))))
	for h := range 1 << 16 {
		if h&0x7f80 == 0x7f80 && h&0x7f != 0 {
			continue
		}
		require.Equal(t, uint16(h), F32ToBF16(BF16ToF32(uint16(h))), "%#04x", h)
	}
}

func TestDTypeLoadStore(t *testing.T) {
	for _, d := range []DType{F32, F16, BF16} {
		buf := make([]byte, 3*d.Size())
		d.Store(buf, 2, 0.1)
		assert.Equal(t, d.Round(0.1), d.Load(buf, 2), "%v", d)
	}
	assert.Equal(t, float32(200), U8.Load([]byte{0, 200}, 1))
	assert.Panics(t, func() { U32.Load(make([]byte, 4), 0) })
	assert.Panics(t, func() { U8.Store(make([]byte, 4), 0, 1) })
}

func TestParseDType(t *testing.T) {
	for _, d := range []DType{Bool, U8, I8, U16, I16, F16, BF16, U32, I32, F32, U64, I64, F64} {
		got, err := ParseDType(d.String())
		require.NoError(t, err)
		assert.Equal(t, d, got)
		assert.NotZero(t, d.Size())
	}
	_, err := ParseDType("F8_E4M3")
	assert.ErrorContains(t, err, `"F8_E4M3"`)
	_, err = ParseDType("invalid")
	assert.Error(t, err)
}
