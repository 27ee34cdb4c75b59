package engine

import (
	"fmt"
	"strings"

	"github.com/mlxq/mlxq/quant"
)

// Precision is the arithmetic a kernel variant computes in; it sets the
// accuracy the variant is held to.
type Precision uint8

// The precisions, from the most exact.
const (
	// Float32 is float32 arithmetic on float32 inputs.
	Float32 Precision = iota
	// TF32 is tensor-core arithmetic on float32 inputs rounded to 10
	// mantissa bits, accumulating in float32.
	TF32
	// Float16 is float32 arithmetic on float16 activations, with y
	// rounded to float16.
	Float16
	// BFloat16 is float32 arithmetic on bfloat16 activations, with y
	// rounded to bfloat16.
	BFloat16
)

var precisionNames = [...]string{Float32: "float32", TF32: "tf32", Float16: "float16", BFloat16: "bfloat16"}

// Precisions returns every precision, from the most exact.
func Precisions() []Precision { return []Precision{Float32, TF32, Float16, BFloat16} }

// String returns the precision's name: float32, tf32, float16 or bfloat16.
func (p Precision) String() string {
	if int(p) < len(precisionNames) {
		return precisionNames[p]
	}
	return fmt.Sprintf("Precision(%d)", uint8(p))
}

// Tolerance returns the largest normwise relative error ‖y − ref‖ / ‖ref‖
// against the float64 reference (on the same, rounded, inputs) that the
// contract allows: 1e-5 for float32, 1e-3 for tf32, 1e-2 for float16 and
// bfloat16 activations.
func (p Precision) Tolerance() float64 {
	switch p {
	case Float32:
		return 1e-5
	case TF32:
		return 1e-3
	}
	return 1e-2
}

// ActPrecision is the precision of a kernel that computes in float32 on
// activations of dtype dt: Float32 for F32, Float16 for F16, BFloat16 for
// BF16.
func ActPrecision(dt quant.DType) Precision {
	switch dt {
	case quant.F16:
		return Float16
	case quant.BF16:
		return BFloat16
	}
	return Float32
}

// ActDTypes returns the activation dtypes every matrix product kernel
// takes: F32, F16 and BF16.
func ActDTypes() []quant.DType { return []quant.DType{quant.F32, quant.F16, quant.BF16} }

// ParseActDType returns the activation dtype named s: f32, f16 or bf16
// (any case; float32, float16 and bfloat16 too).
func ParseActDType(s string) (quant.DType, error) {
	switch strings.ToLower(s) {
	case "f32", "float32":
		return quant.F32, nil
	case "f16", "float16":
		return quant.F16, nil
	case "bf16", "bfloat16":
		return quant.BF16, nil
	}
	return quant.InvalidDType, fmt.Errorf("%w: activation dtype %q, want f32, f16 or bf16", ErrArgs, s)
}
