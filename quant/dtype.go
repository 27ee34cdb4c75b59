package quant

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DType is the element type of a tensor, named as in safetensors headers.
type DType uint8

// The tensor element types. F32, F16 and BF16 hold scales and biases of
// affine layers; U8 holds the scales of the floating-point modes; U32 holds
// packed codes.
const (
	InvalidDType DType = iota
	Bool
	U8
	I8
	U16
	I16
	F16
	BF16
	U32
	I32
	F32
	U64
	I64
	F64
)

var dtypeNames = [...]string{
	InvalidDType: "invalid",
	Bool:         "BOOL",
	U8:           "U8",
	I8:           "I8",
	U16:          "U16",
	I16:          "I16",
	F16:          "F16",
	BF16:         "BF16",
	U32:          "U32",
	I32:          "I32",
	F32:          "F32",
	U64:          "U64",
	I64:          "I64",
	F64:          "F64",
}

// ParseDType returns the DType named s ("F32", "BF16", ...).
func ParseDType(s string) (DType, error) {
	for d, name := range dtypeNames {
		if d != int(InvalidDType) && name == s {
			return DType(d), nil
		}
	}
	return InvalidDType, fmt.Errorf("unknown dtype %q", s)
}

// String returns the safetensors name of d.
func (d DType) String() string {
	if int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Size returns the size of one element in bytes.
func (d DType) Size() int {
	switch d {
	case Bool, U8, I8:
		return 1
	case U16, I16, F16, BF16:
		return 2
	case U32, I32, F32:
		return 4
	case U64, I64, F64:
		return 8
	}
	return 0
}

// IsFloat reports whether d is one of the float types that may hold affine
// scales and biases (F32, F16, BF16).
func (d DType) IsFloat() bool {
	return d == F32 || d == F16 || d == BF16
}

// Load returns element i of little-endian data of type d as a float32. U8
// elements are returned as their integer value. It panics for other types.
func (d DType) Load(data []byte, i int) float32 {
	switch d {
	case F32:
		return math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	case F16:
		return F16ToF32(binary.LittleEndian.Uint16(data[2*i:]))
	case BF16:
		return BF16ToF32(binary.LittleEndian.Uint16(data[2*i:]))
	case U8:
		return float32(data[i])
	}
	panic("quant: Load of " + d.String())
}

// Store writes v as element i of little-endian data of type d, rounding to
// nearest even. It panics for types other than F32, F16 and BF16.
func (d DType) Store(data []byte, i int, v float32) {
	switch d {
	case F32:
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
	case F16:
		binary.LittleEndian.PutUint16(data[2*i:], F32ToF16(v))
	case BF16:
		binary.LittleEndian.PutUint16(data[2*i:], F32ToBF16(v))
	default:
		panic("quant: Store of " + d.String())
	}
}

// Round returns v as it reads back after a Store in d.
func (d DType) Round(v float32) float32 {
	switch d {
	case F16:
		return F16ToF32(F32ToF16(v))
	case BF16:
		return BF16ToF32(F32ToBF16(v))
	}
	return v
}

// Floats decodes n elements of little-endian data of float type d (or U8)
// into a new float32 slice.
func (d DType) Floats(data []byte, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = d.Load(data, i)
	}
	return out
}

// Decode writes the len(dst) first elements of little-endian data of float
// type d (or U8) into dst as float32.
func (d DType) Decode(dst []float32, data []byte) {
	switch d {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = BF16ToF32(binary.LittleEndian.Uint16(data[2*i:]))
		}
	default:
		for i := range dst {
			dst[i] = d.Load(data, i)
		}
	}
}

// Encode writes v as little-endian elements of type d (F32, F16 or BF16)
// into the start of dst, rounding to nearest even.
func (d DType) Encode(dst []byte, v []float32) {
	switch d {
	case F32:
		for i, f := range v {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(f))
		}
	default:
		for i, f := range v {
			d.Store(dst, i, f)
		}
	}
}

// Bytes returns v as little-endian elements of type d (F32, F16 or BF16),
// rounded to nearest even.
func (d DType) Bytes(v []float32) []byte {
	out := make([]byte, len(v)*d.Size())
	d.Encode(out, v)
	return out
}
