package cpu_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mlxq/mlxq/cpu"
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/layers"
	"github.com/mlxq/mlxq/quant"
)

// randomMatrix returns an n×k matrix of the given width with random codes
// and BF16 scales and biases, without the cost of quantizing.
func randomMatrix(n, k, bits, gs int) *quant.Matrix {
	rng := rand.New(rand.NewPCG(uint64(n), uint64(k)))
	m := &quant.Matrix{Format: quant.Format{Mode: quant.Affine, Bits: bits, GroupSize: gs}, Rows: n, Cols: k, ScaleType: quant.BF16}
	m.Weight = make([]byte, n*quant.RowBytes(k, bits))
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

// seedKernels is the catalog without the packed kernels: the plan on it is
// the reference design's (packed_simd4_b4, simd4 or simd4_gs64 on unpacked
// codes, per_element).
func seedKernels() []engine.Kernel {
	return slices.DeleteFunc(engine.Kernels(), func(k engine.Kernel) bool { return k == engine.QMV || k == engine.QMM })
}

// BenchmarkLayer times a layer's forward pass on the device (x already
// uploaded, one commit per run) for the shapes and formats of the CPU
// performance table (docs/perf.md), with the kernel the plan picks ("plan":
// qmv or qmm on the packed words) and with the one the reference design's
// rules pick ("seed"). GB/s counts the weights as stored (codes, BF16
// scales and biases); run with -cpu 1 for one core.
func BenchmarkLayer(b *testing.B) {
	formats := []struct{ bits, gs int }{{4, 32}, {4, 64}, {4, 128}, {2, 64}, {3, 64}, {8, 64}}
	for _, shape := range [][2]int{{4096, 4096}, {14336, 4096}} {
		for _, f := range formats {
			for _, m := range []int{1, 128} {
				for _, which := range []string{"plan", "seed"} {
					n, k := shape[0], shape[1]
					b.Run(fmt.Sprintf("%dx%d/b%dg%d/M%d/%s", n, k, f.bits, f.gs, m, which), func(b *testing.B) {
						mat := randomMatrix(n, k, f.bits, f.gs)
						var opts []layers.Option
						if which == "seed" {
							p, err := engine.PlanFor(engine.Params{M: m, N: n, K: k, Format: mat.Format, Act: quant.F32}, seedKernels(), 0)
							if err != nil {
								b.Fatal(err)
							}
							opts = append(opts, layers.WithKernel(p.Kernel))
						}
						benchLayer(b, mat, m, opts...)
					})
				}
			}
		}
	}
}

// BenchmarkCrossover times qmv and qmm on one layer at the M around the
// backend's crossover (the largest M at which qmv is faster, see
// crossover), for 4-bit group 64 and 2- and 8-bit, one shape.
func BenchmarkCrossover(b *testing.B) {
	for _, bits := range []int{4, 2, 8} {
		for _, m := range []int{1, 2, 3, 4, 5, 6, 7, 8, 12, 16} {
			for _, k := range []engine.Kernel{engine.QMV, engine.QMM} {
				b.Run(fmt.Sprintf("4096x4096/b%dg64/M%d/%s", bits, m, k), func(b *testing.B) {
					benchLayer(b, randomMatrix(4096, 4096, bits, 64), m, layers.WithKernel(k))
				})
			}
		}
	}
}

func benchLayer(b *testing.B, mat *quant.Matrix, m int, opts ...layers.Option) {
	dev, err := engine.Open(cpu.Name) // after -cpu has set GOMAXPROCS
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Close()
	l, err := layers.New(dev, "bench", mat, nil, m, opts...)
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
