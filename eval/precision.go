package eval

import "github.com/mlxq/mlxq/engine"

// Precision is the arithmetic a kernel computes in; it picks the
// tolerance a case is held to (Tolerance.For).
type Precision uint8

// The precisions, from the most exact.
const (
	Float32 Precision = iota
	TF32
	Float16
	BFloat16
)

var precisionNames = [...]string{Float32: "float32", TF32: "tf32", Float16: "float16", BFloat16: "bfloat16"}

// String returns the precision's name, which is also its key under
// tolerance in a config.
func (p Precision) String() string { return precisionNames[p] }

// kernelPrecision maps the kernels that do not compute in float32 to their
// precision; a tensor-core kernel would map to TF32, a kernel with half
// activations to Float16 or BFloat16. Every kernel of today's catalog
// computes in float32.
var kernelPrecision = map[engine.Kernel]Precision{}

// PrecisionOf returns the precision kernel k computes in.
func PrecisionOf(k engine.Kernel) Precision {
	if p, ok := kernelPrecision[k]; ok {
		return p
	}
	return Float32
}
