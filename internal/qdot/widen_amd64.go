//go:build amd64 && !purego

package qdot

// widenBF16Asm and widenF16Asm convert len(dst) values, a multiple of 8,
// eight per AVX2 (F16C) instruction.
func widenBF16Asm(dst []float32, src []byte) {
	if len(dst) > 0 {
		widenBF16AVX2(&dst[0], &src[0], len(dst))
	}
}

func widenF16Asm(dst []float32, src []byte) {
	if len(dst) > 0 {
		widenF16AVX2(&dst[0], &src[0], len(dst))
	}
}

//go:noescape
func widenBF16AVX2(dst *float32, src *byte, n int)

//go:noescape
func widenF16AVX2(dst *float32, src *byte, n int)
