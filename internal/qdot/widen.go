package qdot

import (
	"encoding/binary"
	"fmt"

	"github.com/mlxq/mlxq/quant"
)

// WidenBF16 writes the len(dst) bfloat16 values of src (little-endian,
// 2·len(dst) bytes) into dst as float32, exactly.
func WidenBF16(dst []float32, src []byte) {
	n := checkWiden(dst, src)
	if n > 0 {
		widenBF16Asm(dst[:n], src)
	}
	for i := n; i < len(dst); i++ {
		dst[i] = quant.BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

// WidenF16 writes the len(dst) float16 values of src (little-endian,
// 2·len(dst) bytes) into dst as float32, exactly.
func WidenF16(dst []float32, src []byte) {
	n := checkWiden(dst, src)
	if n > 0 {
		widenF16Asm(dst[:n], src)
	}
	for i := n; i < len(dst); i++ {
		dst[i] = quant.F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

// checkWiden checks the lengths of a widening and returns how many leading
// values the assembly converts (a multiple of 8; 0 without amd64 assembly).
func checkWiden(dst []float32, src []byte) int {
	if len(src) < 2*len(dst) {
		panic(fmt.Sprintf("qdot: widening %d values from %d bytes", len(dst), len(src)))
	}
	if impl != implAVX2 && impl != implAVX512 {
		return 0
	}
	return len(dst) &^ 7
}
