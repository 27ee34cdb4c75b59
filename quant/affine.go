package quant

import (
	"fmt"
	"math"
)

// Quantize quantizes the row-major [rows, cols] matrix w into format f with
// scales (and biases) stored as scaleType. Affine follows MLX's CPU quantizer
// exactly (float32 arithmetic, ties to even; see AffineGroup); the
// floating-point modes encode each group as described at FPGroup.
func Quantize(w []float32, rows, cols int, f Format, scaleType DType) (*Matrix, error) {
	m := &Matrix{Format: f, Rows: rows, Cols: cols, ScaleType: scaleType}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if len(w) != rows*cols {
		return nil, fmt.Errorf("%w: %d values for a %dx%d matrix", ErrShape, len(w), rows, cols)
	}
	if rows <= 0 || cols <= 0 || cols%f.GroupSize != 0 {
		return nil, fmt.Errorf("%w: %dx%d matrix with group size %d", ErrShape, rows, cols, f.GroupSize)
	}
	if !f.ScaleDTypeOK(scaleType) {
		return nil, fmt.Errorf("%w: scales of type %v for %v", ErrFormat, scaleType, f.Mode)
	}
	groups := rows * m.Groups()
	m.Weight = make([]byte, rows*m.RowBytes())
	m.Scales = make([]byte, groups*scaleType.Size())
	if f.HasBiases() {
		m.Biases = make([]byte, groups*scaleType.Size())
	}
	codes := make([]uint8, cols)
	for r := range rows {
		wr := w[r*cols : (r+1)*cols]
		for g := range m.Groups() {
			i := r*m.Groups() + g
			span := g * f.GroupSize
			gw, gc := wr[span:span+f.GroupSize], codes[span:span+f.GroupSize]
			if f.Mode == Affine {
				s, b := AffineGroup(gc, gw, f.Bits)
				scaleType.Store(m.Scales, i, s)
				scaleType.Store(m.Biases, i, b)
			} else {
				m.Scales[i] = FPGroup(gc, gw, f.Mode)
			}
		}
		Pack(m.Row(r), codes, f.Bits)
	}
	return m, nil
}

// AffineGroup quantizes one group w into codes (len(w) of them) with MLX's
// affine algorithm and returns the float32 scale and bias, before rounding
// to the storage type:
//
//	scale = max((max-min)/(2^bits-1), 1e-7), negated unless |min| > |max|
//	edge  = min if |min| > |max| else max;  q0 = round(edge/scale)
//	if q0 != 0 { scale = edge/q0; bias = edge } else { bias = 0 }
//	q     = clamp(round((w-bias)/scale), 0, 2^bits-1)
//
// so that zero is exactly representable; the scale may be negative.
func AffineGroup(codes []uint8, w []float32, bits int) (scale, bias float32) {
	nBins := float32(int(1)<<bits - 1)
	wMin, wMax := float32(math.Inf(1)), float32(math.Inf(-1))
	for _, v := range w {
		wMin = min(wMin, v)
		wMax = max(wMax, v)
	}
	scale = max((wMax-wMin)/nBins, 1e-7)
	side := abs32(wMin) > abs32(wMax)
	edge := wMax
	if side {
		edge = wMin
	} else {
		scale = -scale
	}
	if q0 := roundEven32(edge / scale); q0 != 0 {
		scale = edge / q0
		bias = edge
	}
	for i, v := range w {
		q := roundEven32((v - bias) / scale)
		codes[i] = uint8(min(max(q, 0), nBins))
	}
	return scale, bias
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

func roundEven32(v float32) float32 { return float32(math.RoundToEven(float64(v))) }
