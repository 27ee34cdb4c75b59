package cpu_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/mlxq/mlxq/cpu"
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/layers"
	"github.com/mlxq/mlxq/quant"
)

// randomMatrix returns an n×k 4-bit matrix with random codes and BF16
// scales and biases, without the cost of quantizing.
func randomMatrix(n, k, gs int) *quant.Matrix {
	rng := rand.New(rand.NewPCG(uint64(n), uint64(k)))
	m := &quant.Matrix{Format: quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: gs}, Rows: n, Cols: k, ScaleType: quant.BF16}
	m.Weight = make([]byte, n*k/2)
	for i := range m.Weight {
		m.Weight[i] = byte(rng.Uint32())
	}
	groups := n * k / gs
	m.Scales, m.Biases = make([]byte, 2*groups), make([]byte, 2*groups)
	for i := range groups {
		quant.BF16.Store(m.Scales, i, float32(0.01+0.01*rng.Float64()))
		quant.BF16.Store(m.Biases, i, float32(-0.08*rng.Float64()))
	}
	return m
}

// BenchmarkLayer times a layer's forward pass on the device (x already
// uploaded, one commit per run) with the kernel the plan picks, for the
// shapes of the CPU performance table (docs/perf.md). GB/s counts the
// weights as stored (codes, BF16 scales and biases); run with -cpu 1 for
// one core.
func BenchmarkLayer(b *testing.B) {
	for _, shape := range [][2]int{{4096, 4096}, {14336, 4096}} {
		for _, gs := range []int{32, 64} {
			for _, m := range []int{1, 128} {
				n, k := shape[0], shape[1]
				b.Run(fmt.Sprintf("%dx%d/g%d/M%d", n, k, gs, m), func(b *testing.B) {
					benchLayer(b, randomMatrix(n, k, gs), m)
				})
			}
		}
	}
}

func benchLayer(b *testing.B, mat *quant.Matrix, m int) {
	dev, err := engine.Open(cpu.Name) // after -cpu has set GOMAXPROCS
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Close()
	l, err := layers.New(dev, "bench", mat, nil, m)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	x := make([]float32, m*mat.Cols)
	for i := range x {
		x[i] = float32(i%17) - 8
	}
	if err := dev.UploadFloat32(l.Input(), x); err != nil {
		b.Fatal(err)
	}
	p, err := l.Plan(m)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		e := dev.NewEncoder()
		if _, err := l.Encode(e, l.Input(), m); err != nil {
			b.Fatal(err)
		}
		if err := e.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(l.Bytes())/sec/1e9, "GB/s")
	b.ReportMetric(2*float64(m)*float64(mat.Rows)*float64(mat.Cols)/sec/1e9, "GFLOP/s")
	b.Logf("kernel %s", p.Kernel)
}
