package npy

import (
	"bytes"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRoundTrip(t *testing.T) {
	values := []float32{1, -2.5, 0.1, float32(math.Inf(1)), 65504, 3e-8}
	tests := []struct {
		descr string
		write func(*bytes.Buffer, []int) error
		want  func(float32) float64
	}{
		{"<f4", func(b *bytes.Buffer, s []int) error { return WriteFloat32(b, s, values) }, func(v float32) float64 { return float64(v) }},
		{"<f8", func(b *bytes.Buffer, s []int) error {
			wide := make([]float64, len(values))
			for i, v := range values {
				wide[i] = float64(v)
			}
			return WriteFloat64(b, s, wide)
		}, func(v float32) float64 { return float64(v) }},
		{"<f2", func(b *bytes.Buffer, s []int) error { return WriteFloat16(b, s, values) },
			func(v float32) float64 { return float64(halfRound(v)) }},
	}
	for _, tt := range tests {
		for _, shape := range [][]int{{6}, {2, 3}, {1, 2, 3}} {
			var buf bytes.Buffer
			require.NoError(t, tt.write(&buf, shape))
			assert.Zero(t, (buf.Len()-len(values)*map[string]int{"<f2": 2, "<f4": 4, "<f8": 8}[tt.descr])%64, "header padded to 64 bytes")
			a, err := Read(&buf)
			require.NoError(t, err)
			assert.Equal(t, shape, a.Shape)
			assert.Equal(t, tt.descr, a.Descr)
			for i, v := range values {
				assert.Equal(t, tt.want(v), a.Values[i], "%s element %d", tt.descr, i)
			}
		}
	}
}

// halfRound is v after a round trip through float16.
func halfRound(v float32) float32 {
	var buf bytes.Buffer
	if err := WriteFloat16(&buf, []int{1}, []float32{v}); err != nil {
		panic(err)
	}
	a, err := Read(&buf)
	if err != nil {
		panic(err)
	}
	return float32(a.Values[0])
}

func TestHalfValues(t *testing.T) {
	assert.Equal(t, float32(65504), halfRound(65504))
	assert.Equal(t, float32(math.Inf(1)), halfRound(1e6))
	assert.InDelta(t, 0.1, halfRound(0.1), 1e-4)
}

func TestReadErrors(t *testing.T) {
	header := func(h string) []byte {
		h += "\n"
		return append(append([]byte("\x93NUMPY\x01\x00"), byte(len(h)), 0), h...)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "reading preamble"},
		{"magic", []byte("PK\x03\x04zipfile"), "bad magic"},
		{"version", []byte("\x93NUMPY\x04\x00\x00\x00"), "format version 4.0"},
		{"dtype", header("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }"), `dtype "<i4"`},
		{"big-endian", header("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }"), `dtype ">f4"`},
		{"fortran", header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }"), "Fortran-order"},
		{"no shape", header("{'descr': '<f4', 'fortran_order': False}"), "lacks descr, fortran_order or shape"},
		{"bad shape", header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }"), "bad shape"},
		{"huge shape", header("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }"), "too large"},
		{"truncated data", header("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }"), "data shorter than shape [4]"},
		{"truncated header", []byte("\x93NUMPY\x01\x00\x40\x00{'descr'"), "reading header"},
	}
	for _, tt := range tests {
		_, err := Read(bytes.NewReader(tt.data))
		assert.ErrorIs(t, err, ErrFormat, tt.name)
		assert.ErrorContains(t, err, tt.want, tt.name)
	}
	_, err := ReadFile("no-such-file.npy")
	assert.Error(t, err)
	assert.ErrorContains(t, WriteFloat32(new(bytes.Buffer), []int{2, 2}, make([]float32, 3)), "3 values for shape [2 2]")
}
