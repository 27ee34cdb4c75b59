package quant

import (
	"errors"
	"fmt"
	"math"
)

// Matrix is a quantized [Rows, Cols] weight matrix in MLX's on-disk layout,
// each slice holding little-endian bytes. Its fields may view a memory-mapped
// file; no method modifies them.
type Matrix struct {
	Format
	Rows, Cols int
	// Weight holds Rows packed rows of RowBytes(Cols, Bits) bytes each.
	Weight []byte
	// Scales holds [Rows, Cols/GroupSize] elements of ScaleType.
	Scales []byte
	// Biases has the shape and type of Scales; it is nil for the
	// floating-point modes, which have none.
	Biases    []byte
	ScaleType DType
}

// ErrShape reports tensors whose sizes do not fit the matrix they describe.
var ErrShape = errors.New("inconsistent quantized matrix")

// Groups returns the number of groups per row.
func (m *Matrix) Groups() int { return m.Cols / m.GroupSize }

// RowBytes returns the bytes of one packed row.
func (m *Matrix) RowBytes() int { return RowBytes(m.Cols, m.Bits) }

// Check verifies that the format is supported and that every slice has the
// length the dimensions call for.
func (m *Matrix) Check() error {
	if err := m.Format.Validate(); err != nil {
		return err
	}
	if m.Rows <= 0 || m.Cols <= 0 {
		return fmt.Errorf("%w: dimensions %dx%d", ErrShape, m.Rows, m.Cols)
	}
	if m.Cols%m.GroupSize != 0 {
		return fmt.Errorf("%w: %d columns not a multiple of group size %d", ErrShape, m.Cols, m.GroupSize)
	}
	if !m.ScaleDTypeOK(m.ScaleType) {
		return fmt.Errorf("%w: scales of type %v for %v", ErrShape, m.ScaleType, m.Mode)
	}
	if want := m.Rows * m.RowBytes(); len(m.Weight) != want {
		return fmt.Errorf("%w: weight has %d bytes, want %d", ErrShape, len(m.Weight), want)
	}
	meta := m.Rows * m.Groups() * m.ScaleType.Size()
	if len(m.Scales) != meta {
		return fmt.Errorf("%w: scales have %d bytes, want %d", ErrShape, len(m.Scales), meta)
	}
	switch {
	case m.HasBiases() && len(m.Biases) != meta:
		return fmt.Errorf("%w: biases have %d bytes, want %d", ErrShape, len(m.Biases), meta)
	case !m.HasBiases() && m.Biases != nil:
		return fmt.Errorf("%w: %v takes no biases", ErrShape, m.Mode)
	}
	return nil
}

// Row returns the packed bytes of row r.
func (m *Matrix) Row(r int) []byte {
	n := m.RowBytes()
	return m.Weight[r*n : (r+1)*n]
}

// Code returns the code of element (r, c).
func (m *Matrix) Code(r, c int) uint8 { return CodeAt(m.Row(r), m.Bits, c) }

// Scale returns the decoded scale of group g of row r.
func (m *Matrix) Scale(r, g int) float64 {
	i := r*m.Groups() + g
	switch m.Mode {
	case MXFP4, MXFP8:
		return E8M0ToFloat(m.Scales[i])
	case NVFP4:
		return E4M3ToFloat(m.Scales[i])
	}
	return float64(m.ScaleType.Load(m.Scales, i))
}

// Bias returns the bias of group g of row r (zero for modes without biases).
func (m *Matrix) Bias(r, g int) float64 {
	if !m.HasBiases() {
		return 0
	}
	return float64(m.ScaleType.Load(m.Biases, r*m.Groups()+g))
}

// codeValue returns the value a code stands for before scaling.
func (m *Matrix) codeValue(q uint8) float64 {
	switch m.Mode {
	case MXFP4, NVFP4:
		return E2M1ToFloat(q)
	case MXFP8:
		return E4M3ToFloat(q)
	}
	return float64(q)
}

// DequantizeRow writes the float64 values of row r into dst[:Cols]:
// scale*q + bias for affine, decode(q)*scale for the floating-point modes.
// Both are exact in float64 for every supported format.
func (m *Matrix) DequantizeRow(dst []float64, r int) {
	row := m.Row(r)
	codes := make([]uint8, m.GroupSize)
	for g := range m.Groups() {
		s, b := m.Scale(r, g), m.Bias(r, g)
		unpackGroup(codes, row, m.Bits, g)
		for i, q := range codes {
			dst[g*m.GroupSize+i] = m.codeValue(q)*s + b
		}
	}
}

// unpackGroup reads the codes of group g (len(dst) codes) of a packed row.
// A group starts on a byte boundary for every supported width.
func unpackGroup(dst []uint8, row []byte, bits, g int) {
	Unpack(dst, row[g*len(dst)*bits/8:], bits)
}

// Dequantize returns the matrix as row-major float32 values.
func (m *Matrix) Dequantize() []float32 {
	out := make([]float32, m.Rows*m.Cols)
	row := make([]float64, m.Cols)
	for r := range m.Rows {
		m.DequantizeRow(row, r)
		for c, v := range row {
			out[r*m.Cols+c] = float32(v)
		}
	}
	return out
}

// Reference computes y = x · dequant(W)^T + bias in float64, the result every
// kernel is measured against. x is [rows, m.Cols] row-major; bias, when not
// nil, has m.Rows elements. The result is [rows, m.Rows].
func Reference(x []float32, rows int, m *Matrix, bias []float32) []float64 {
	y := make([]float64, rows*m.Rows)
	w := make([]float64, m.Cols)
	for n := range m.Rows {
		m.DequantizeRow(w, n)
		for i := range rows {
			xi := x[i*m.Cols : (i+1)*m.Cols]
			var acc float64
			for k, v := range w {
				acc += float64(float64(xi[k]) * v) // no fused multiply-add: same bits on every GOARCH
			}
			if bias != nil {
				acc += float64(bias[n])
			}
			y[i*m.Rows+n] = acc
		}
	}
	return y
}

// RelErr returns the normwise relative error ‖y − ref‖ / ‖ref‖ over the
// len(ref) first elements of y (‖y − ref‖ when ref is all zero), the
// accuracy measure of every kernel. A NaN in y gives NaN and an infinity
// +Inf, which no tolerance passes.
func RelErr(y []float32, ref []float64) float64 {
	var num, den float64
	for i, r := range ref {
		d := float64(y[i]) - r
		num += d * d
		den += r * r
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}
