package qdot

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/mlxq/mlxq/quant"
)

// Every 16-bit pattern widens to the value quant decodes, bit for bit, on
// every path and for every length (the assembly converts eights, the rest
// goes through the portable loop).
func TestWiden(t *testing.T) {
	src := make([]byte, 2*65536)
	for v := range 65536 {
		binary.LittleEndian.PutUint16(src[2*v:], uint16(v))
	}
	for _, k := range impls() {
		withImpl(t, k, func() {
			for _, c := range []struct {
				name   string
				widen  func([]float32, []byte)
				decode func(uint16) float32
			}{{"bf16", WidenBF16, quant.BF16ToF32}, {"f16", WidenF16, quant.F16ToF32}} {
				for _, n := range []int{65536, 13, 8, 1, 0} {
					dst := make([]float32, n)
					c.widen(dst, src[2*(65536-n):])
					for i, got := range dst {
						want := c.decode(uint16(65536 - n + i))
						if math.Float32bits(got) != math.Float32bits(want) && !(math.IsNaN(float64(got)) && math.IsNaN(float64(want))) {
							t.Fatalf("%v %s n=%d: %#04x widened to %#08x, want %#08x", k, c.name, n, 65536-n+i, math.Float32bits(got), math.Float32bits(want))
						}
					}
				}
			}
		})
	}
	defer func() {
		if recover() == nil {
			t.Error("no panic for a short source")
		}
	}()
	WidenBF16(make([]float32, 4), make([]byte, 7))
}
