// Package quant holds the math of MLX's quantized weight format as pure
// functions: packing and unpacking of codes for every bit width, MLX's affine
// quantizer, dequantization, the 16-bit float conversions, the decoders of the
// floating-point modes (mxfp4, mxfp8, nvfp4) and the float64 reference matrix
// product that every kernel is tested against.
//
// Packed codes are handled as little-endian bytes, the order they have on disk:
// each row is one LSB-first bitstream in which code j occupies stream bits
// [j*bits, (j+1)*bits), stream bit k being bit k%8 of byte k/8.
package quant
