package loader

import (
	"fmt"

	"github.com/mlxq/mlxq/quant"
)

// A Tensor is a view of one tensor of a safetensors file.
type Tensor struct {
	// Name is the tensor's name, e.g. "model.layers.0.mlp.up_proj.weight".
	Name string
	// File is the safetensors file that holds it, relative to the model path.
	File string
	// DType is the element type.
	DType quant.DType
	// Shape is the tensor's shape; it is empty for a scalar.
	Shape []int
	// Data holds the elements, little-endian and row-major. It views the
	// file's memory mapping: it is often not aligned to its element size,
	// must not be modified, and must not be used after Model.Close.
	Data []byte
}

// A Layer describes one quantized layer: a QuantizedLinear,
// QuantizedEmbedding or, with stacked experts, a QuantizedSwitchLinear.
type Layer struct {
	// Name is the module path, e.g. "model.layers.0.mlp.up_proj".
	Name string
	// Format is the layer's mode, bit width and group size.
	quant.Format
	// Experts is 0 for a 2-D weight, or E for a weight of E stacked
	// [Out, In] matrices (MoE experts, MultiLinear heads).
	Experts int
	// Out and In are the output and input features of one matrix.
	Out, In int
	// Weight holds the packed codes: U32 [Out, In*Bits/32], or
	// [Experts, Out, In*Bits/32].
	Weight *Tensor
	// Scales holds one scale per group: [(Experts,) Out, In/GroupSize] of
	// F32, F16 or BF16 for affine, U8 for the floating-point modes.
	Scales *Tensor
	// Biases holds the affine offsets, shaped and typed like Scales; it is
	// nil for the floating-point modes.
	Biases *Tensor
	// Bias is the optional bias added to the layer's output
	// ([(Experts,) Out] floats), or nil.
	Bias *Tensor
}

// Matrix returns the quantized matrix of one expert, viewing the layer's
// tensors without copying. Use expert 0 for a 2-D layer. It panics if
// expert is out of range.
func (l *Layer) Matrix(expert int) *quant.Matrix {
	if n := max(l.Experts, 1); expert < 0 || expert >= n {
		panic(fmt.Sprintf("loader: expert %d of layer %s, which has %d", expert, l.Name, n))
	}
	wn := l.Out * quant.RowBytes(l.In, l.Bits)
	sn := l.Out * (l.In / l.GroupSize) * l.Scales.DType.Size()
	m := &quant.Matrix{
		Format:    l.Format,
		Rows:      l.Out,
		Cols:      l.In,
		Weight:    part(l.Weight.Data, expert, wn),
		Scales:    part(l.Scales.Data, expert, sn),
		ScaleType: l.Scales.DType,
	}
	if l.Biases != nil {
		m.Biases = part(l.Biases.Data, expert, sn)
	}
	return m
}

// BiasValues returns the Linear bias of one expert as float32 (exact for
// every float dtype), or nil when the layer has no bias. Use expert 0 for a
// 2-D layer. It panics if expert is out of range.
func (l *Layer) BiasValues(expert int) []float32 {
	if n := max(l.Experts, 1); expert < 0 || expert >= n {
		panic(fmt.Sprintf("loader: expert %d of layer %s, which has %d", expert, l.Name, n))
	}
	if l.Bias == nil {
		return nil
	}
	size := l.Out * l.Bias.DType.Size()
	return l.Bias.DType.Floats(part(l.Bias.Data, expert, size), l.Out)
}

// part returns part i of data cut into parts of n bytes.
func part(data []byte, i, n int) []byte {
	return data[i*n : (i+1)*n : (i+1)*n]
}

// String describes l as "name: format, [out in]" (or "[experts out in]").
func (l *Layer) String() string {
	if l.Experts > 0 {
		return fmt.Sprintf("%s: %v, [%d %d %d]", l.Name, l.Format, l.Experts, l.Out, l.In)
	}
	return fmt.Sprintf("%s: %v, [%d %d]", l.Name, l.Format, l.Out, l.In)
}
