package cuda

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/engine/enginetest"
	"github.com/mlxq/mlxq/quant"
)

// openGPUCUBLAS opens the real device with the cuBLAS path of QMM enabled
// at the default threshold, or skips the test with the reason.
func openGPUCUBLAS(t *testing.T) (*engine.Device, *Driver) {
	t.Helper()
	dev, d := openGPU(t)
	if err := d.SetCUBLAS(true); err != nil {
		t.Skip("cuda: cuBLAS: " + strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	d.SetCUBLASMinM(512)
	t.Log(d.CUBLAS())
	return dev, d
}

// TestGPUCUBLASConformance runs QMM through dequant + cuBLAS for every
// format, bf16 and f16 activations, M = 600 and 1030 and unaligned N,
// against the float64 reference; a small scratch makes every layer take
// several chunks.
func TestGPUCUBLASConformance(t *testing.T) {
	dev, d := openGPUCUBLAS(t)
	rng := rand.New(rand.NewPCG(21, 22))
	for fi, f := range enginetest.Formats() {
		n, k := 300, 256
		if f.GroupSize == 16 {
			k = 272 // rows end in a half chunk
		}
		st := quant.U8
		if f.Mode == quant.Affine {
			st = []quant.DType{quant.F32, quant.F16, quant.BF16}[fi%3]
		}
		l := enginetest.NewLayer(t, dev, rng, f, st, n, k, fi%2 == 0)
		for _, act := range cublasActs {
			for mi, m := range []int{600, 1030} {
				per := n
				if mi == 1 {
					per = cublasRowAlign
				}
				d.setCUBLASChunk(per * k * 2)
				x := enginetest.RandomX(rng, act, m+3, k)
				ref := quant.Reference(x, m, l.Matrix, l.Bias)
				before := d.gemm.gemms
				y := l.Run(t, engine.QMM, act, x, m, m+3)
				name := f.String() + "/" + st.String() + " scales/" + act.String() + " x"
				assert.Equal(t, len(chunks(n, chunkRows(n, k, 2, per*k*2))), d.gemm.gemms-before, "%s M=%d: GEMMs", name, m)
				tol := dev.Precision(l.Variant(engine.QMM, act)).Tolerance()
				assert.LessOrEqual(t, quant.RelErr(y[:m*n], ref), tol, "%s M=%d", name, m)
				for i, v := range y[m*n:] {
					if !math.IsNaN(float64(v)) {
						t.Errorf("%s M=%d: y element %d past row M was written", name, m, m*n+i)
						break
					}
				}
			}
		}
	}
}

// TestGPUCUBLASMatchesQMM compares the cuBLAS path with the own QMM kernel
// on a layer of the benchmark's size, and checks the rule: below the
// threshold the own kernel runs.
func TestGPUCUBLASMatchesQMM(t *testing.T) {
	dev, d := openGPUCUBLAS(t)
	rng := rand.New(rand.NewPCG(23, 24))
	const n, k, m = 4096, 4096, 512
	l := enginetest.NewLayer(t, dev, rng, quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}, quant.BF16, n, k, true)
	x := enginetest.RandomX(rng, quant.BF16, m, k)
	before := d.gemm.gemms
	viaBLAS := l.Run(t, engine.QMM, quant.BF16, x, m, m)
	want := before + len(chunks(n, chunkRows(n, k, 2, d.gemm.chunk)))
	require.Equal(t, want, d.gemm.gemms, "one GEMM per chunk")
	require.NoError(t, d.SetCUBLAS(false))
	own := l.Run(t, engine.QMM, quant.BF16, x, m, m)
	require.Equal(t, want, d.gemm.gemms)
	ref := make([]float64, len(own))
	for i, v := range own {
		ref[i] = float64(v)
	}
	assert.LessOrEqual(t, quant.RelErr(viaBLAS, ref), 1e-2)
	require.NoError(t, d.SetCUBLAS(true))
	l.Run(t, engine.QMM, quant.BF16, x[:(m-1)*k], m-1, m-1)
	assert.Equal(t, want, d.gemm.gemms, "M = 511 runs the own kernel")
}

// TestGPUCUBLASErrors checks that a cuBLAS failure comes back as an error
// naming the call and the status, and leaves the device usable.
func TestGPUCUBLASErrors(t *testing.T) {
	dev, d := openGPUCUBLAS(t)
	err := d.do(func() error {
		return d.gemm.gemmEx(gemmArgs{transa: cublasOpT, transb: cublasOpN, m: -1, n: 1, k: 1, atype: cudaR16BF, lda: 1,
			btype: cudaR16BF, ldb: 1, ctype: cudaR16BF, ldc: 1, compute: cublasCompute32F, algo: cublasGemmDflt})
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrCUBLAS)
	assert.Contains(t, err.Error(), "cublasGemmEx: CUBLAS_STATUS_INVALID_VALUE")
	t.Log(err)
	rng := rand.New(rand.NewPCG(25, 26))
	l := enginetest.NewLayer(t, dev, rng, quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}, quant.BF16, 64, 64, false)
	x := enginetest.RandomX(rng, quant.BF16, 512, 64)
	y := l.Run(t, engine.QMM, quant.BF16, x, 512, 512)
	assert.LessOrEqual(t, quant.RelErr(y, quant.Reference(x, 512, l.Matrix, nil)), 1e-2)
}
