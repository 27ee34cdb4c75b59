// Package loader opens MLX-format quantized models (mlx-community
// safetensors, DWQ included) and hands out zero-copy views of their tensors.
//
// A model is a directory holding config.json and one or more
// model*.safetensors files (sharded or not, with or without
// model.safetensors.index.json), or a single .safetensors file whose
// quantization format is given with [WithFormat]. Files are memory-mapped
// read-only and parsed with github.com/nlpodyssey/safetensors; no tensor data
// is copied at open. [OpenFS] reads a model from an [io/fs.FS] (for example
// one embedded with go:embed) into memory instead.
//
// Every quantized layer is validated when the model is opened: dtypes,
// shapes, bit width and group size. A [Layer] then describes one layer and
// [Layer.Matrix] gives the [quant.Matrix] of one of its experts. Tensor data
// is raw little-endian bytes that are often misaligned, since MLX does not
// pad safetensors headers; it must be read byte-wise (encoding/binary or the
// quant package), never reinterpreted through pointers, and never modified.
//
// Errors wrap the sentinels [ErrNotFound], [ErrConfig], [ErrFile], [ErrDType],
// [ErrShape] and [quant.ErrFormat], so errors.Is works, and their messages
// name the file, the tensor, what was expected and what was found:
//
//	model.safetensors: scales of model.layers.0.mlp.up_proj: shape [96 3], want [96 4] for group size 64
package loader
