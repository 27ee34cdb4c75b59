package quant

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func repeat(pattern []uint8, times int) []uint8 {
	var out []uint8
	for range times {
		out = append(out, pattern...)
	}
	return out
}

func seq(n, mod int) []uint8 {
	out := make([]uint8, n)
	for i := range out {
		out[i] = uint8(i % mod)
	}
	return out
}

func wordsLE(words ...uint32) []byte {
	out := make([]byte, 0, 4*len(words))
	for _, w := range words {
		out = binary.LittleEndian.AppendUint32(out, w)
	}
	return out
}

// The packing vectors of the format document, §2.4.
func TestPackVectors(t *testing.T) {
	tests := []struct {
		name  string
		bits  int
		codes []uint8
		want  []byte // the stream's first bytes, as words or bytes
	}{
		{"2-bit 0..3 x4", 2, repeat([]uint8{0, 1, 2, 3}, 4), wordsLE(0xE4E4E4E4)},
		{"3-bit 0..7 x4", 3, repeat(seq(8, 8), 4), wordsLE(0x88FAC688, 0xC688FAC6, 0xFAC688FA)},
		{"4-bit 1..8", 4, []uint8{1, 2, 3, 4, 5, 6, 7, 8}, wordsLE(0x87654321)},
		{"4-bit i mod 16", 4, seq(32, 16), wordsLE(0x76543210, 0xFEDCBA98, 0x76543210, 0xFEDCBA98)},
		{"5-bit 0..7 x4", 5, repeat(seq(8, 8), 4), wordsLE(0x8A418820, 0x41882039, 0x8820398A, 0x20398A41, 0x398A4188)},
		{"5-bit i mod 32", 5, seq(32, 32), wordsLE(0x8A418820, 0xC5A92839, 0xCA307B9A, 0x38BDAB49, 0xFFBBCDEB)},
		{"6-bit 1..4 x4", 6, repeat([]uint8{1, 2, 3, 4}, 4), wordsLE(0x81103081, 0x30811030, 0x10308110)},
		{"6-bit 63,0,0,63", 6, []uint8{63, 0, 0, 63}, []byte{0x3F, 0x00, 0xFC}},
		{"6-bit i mod 64", 6, seq(32, 64), wordsLE(0x440C2040, 0xA2481C61, 0x3CE34C2C, 0x544D2450, 0xA6585D65, 0x7DE75C6D)},
		{"8-bit 1..4", 8, []uint8{1, 2, 3, 4}, wordsLE(0x04030201)},
		{"8-bit i", 8, seq(32, 256), wordsLE(0x03020100, 0x07060504, 0x0B0A0908, 0x0F0E0D0C,
			0x13121110, 0x17161514, 0x1B1A1918, 0x1F1E1D1C)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make([]byte, RowBytes(len(tt.codes), tt.bits))
			Pack(got, tt.codes, tt.bits)
			assert.Equal(t, tt.want, got[:len(tt.want)])

			back := make([]uint8, len(tt.codes))
			Unpack(back, got, tt.bits)
			assert.Equal(t, tt.codes, back)
			for j, c := range tt.codes {
				assert.Equal(t, c, CodeAt(got, tt.bits, j), "code %d", j)
			}
		})
	}
}

// The 3-bit hand check of §2.4: element 2 straddles bytes 0 and 1.
func TestCodeAtStraddlesBytes(t *testing.T) {
	row := []byte{0x88, 0xC6, 0xFA}
	b0, b1 := row[0], row[1]
	want := (b0&0xC0)>>6 | (b1&0x01)<<2
	assert.Equal(t, want, CodeAt(row, 3, 2))
	assert.Equal(t, uint8(2), CodeAt(row, 3, 2))
}

func TestPackRoundTripRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, bits := range []int{2, 3, 4, 5, 6, 8} {
		for _, n := range []int{32, 64, 96, 128, 4096} {
			codes := make([]uint8, n)
			for i := range codes {
				codes[i] = uint8(rng.IntN(1 << bits))
			}
			packed := make([]byte, RowBytes(n, bits))
			Pack(packed, codes, bits)
			require.Len(t, packed, n*bits/8, "bits %d n %d", bits, n)
			back := make([]uint8, n)
			Unpack(back, packed, bits)
			require.Equal(t, codes, back, "bits %d n %d", bits, n)
		}
	}
}

func TestPackIgnoresHighBitsAndClearsDst(t *testing.T) {
	dst := []byte{0xff, 0xff, 0xff, 0xff}
	Pack(dst, []uint8{0xf3, 0x1f}, 2) // only the low 2 bits count
	assert.Equal(t, []byte{0x0f, 0, 0, 0}, dst)
}

func TestRowBytes(t *testing.T) {
	assert.Equal(t, 320*4, RowBytes(2560, 4)) // §2.2: q_proj [4096, 2560] -> [4096, 320] words
	assert.Equal(t, 12, RowBytes(32, 3))
	assert.Equal(t, 4, RowBytes(3, 8)) // rounds up to a whole word
}
