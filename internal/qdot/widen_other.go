//go:build !amd64 || purego

package qdot

// widenBF16Asm and widenF16Asm are never called without assembly: there
// checkWiden leaves every value to the portable loop.
func widenBF16Asm(dst []float32, src []byte) { panic("qdot: no assembly widening") }
func widenF16Asm(dst []float32, src []byte)  { panic("qdot: no assembly widening") }
