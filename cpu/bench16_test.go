package cpu_test

import (
	"fmt"
	"testing"

	"github.com/mlxq/mlxq/layers"
	"github.com/mlxq/mlxq/quant"
)

// BenchmarkLayerBF16 is BenchmarkLayer's plan with bfloat16 activations:
// qmv and qmm on the integer kernels, the activations quantized inside the
// kernel. It runs the shapes and formats of bench/ggml.sh: 4-bit groups 32
// and 64 at M = 1 and 128, 2-, 3- and 8-bit group 64 at M = 1.
func BenchmarkLayerBF16(b *testing.B) {
	type format struct{ bits, gs int }
	for _, shape := range [][2]int{{4096, 4096}, {14336, 4096}} {
		for _, f := range []format{{4, 32}, {4, 64}, {2, 64}, {3, 64}, {8, 64}} {
			for _, m := range []int{1, 128} {
				if m > 1 && f.bits != 4 {
					continue
				}
				n, k := shape[0], shape[1]
				b.Run(fmt.Sprintf("%dx%d/b%dg%d/M%d", n, k, f.bits, f.gs, m), func(b *testing.B) {
					benchLayer(b, randomMatrix(n, k, f.bits, f.gs), m, layers.WithDType(quant.BF16))
				})
			}
		}
	}
}
