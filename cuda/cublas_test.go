package cuda

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/engine/enginetest"
	"github.com/mlxq/mlxq/quant"
)

func TestCUBLASErrorFormatting(t *testing.T) {
	require.NoError(t, checkCUBLAS("cublasCreate_v2", 0))
	err := checkCUBLAS("cublasGemmEx", 7)
	assert.EqualError(t, err, "cublasGemmEx: CUBLAS_STATUS_INVALID_VALUE")
	assert.ErrorIs(t, err, ErrCUBLAS)
	assert.NotErrorIs(t, err, ErrCUDA)
	var ce *CUBLASError
	require.ErrorAs(t, errors.Join(errors.New("context"), err), &ce)
	assert.Equal(t, int32(7), ce.Status)
	assert.Equal(t, "cublasGemmEx", ce.Call)
	for code, name := range map[int32]string{1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED",
		8: "CUBLAS_STATUS_ARCH_MISMATCH", 13: "CUBLAS_STATUS_EXECUTION_FAILED", 14: "CUBLAS_STATUS_INTERNAL_ERROR",
		15: "CUBLAS_STATUS_NOT_SUPPORTED"} {
		assert.EqualError(t, checkCUBLAS("cublasSetStream_v2", code), "cublasSetStream_v2: "+name)
	}
	assert.EqualError(t, checkCUBLAS("cublasDestroy_v2", 99), "cublasDestroy_v2: cublasStatus(99)")
}

func TestCUBLASSymbols(t *testing.T) {
	a := &cublasAPI{}
	funcs := 0
	rt := reflect.TypeOf(*a)
	for i := range rt.NumField() {
		if rt.Field(i).Type.Kind() == reflect.Func {
			funcs++
		}
	}
	syms := a.symbols()
	assert.Equal(t, funcs, len(syms), "a cublasAPI function lacks a symbol")
	seen := map[string]bool{}
	for _, s := range syms {
		assert.False(t, seen[s.name], s.name)
		seen[s.name] = true
	}
	for _, name := range []string{"cublasCreate_v2", "cublasDestroy_v2", "cublasSetStream_v2", "cublasSetWorkspace_v2", "cublasGemmEx"} {
		assert.True(t, seen[name], name)
	}
	assert.Equal(t, []string{"libcublas.so.13", "libcublas.so.12", "libcublas.so"}, cublasLibraries)
}

func TestCUBLASConfigFromEnv(t *testing.T) {
	t.Setenv(EnvCUBLAS, "")
	t.Setenv(EnvCUBLASMinM, "")
	t.Setenv(EnvCUBLASChunkMB, "")
	c, err := cublasConfigFromEnv()
	require.NoError(t, err)
	assert.Equal(t, cublasConfig{on: true}, c, "on by default")
	p := newCUBLASPath(c)
	assert.True(t, p.on)
	assert.Equal(t, 64, p.minM)
	assert.Equal(t, cublasMinM, p.minM)
	assert.Equal(t, 256<<20, p.chunk)
	t.Setenv(EnvCUBLAS, "off")
	c, err = cublasConfigFromEnv()
	require.NoError(t, err)
	assert.False(t, c.on)

	t.Setenv(EnvCUBLAS, "on")
	t.Setenv(EnvCUBLASMinM, "700")
	t.Setenv(EnvCUBLASChunkMB, "16")
	c, err = cublasConfigFromEnv()
	require.NoError(t, err)
	assert.Equal(t, cublasConfig{on: true, minM: 700, chunkBytes: 16 << 20}, c)
	cfg, err := configFromEnv()
	require.NoError(t, err)
	assert.Equal(t, c, cfg.cublas)

	for _, bad := range [][2]string{{EnvCUBLAS, "maybe"}, {EnvCUBLASMinM, "0"}, {EnvCUBLASMinM, "x"}, {EnvCUBLASChunkMB, "-1"}} {
		t.Setenv(EnvCUBLAS, "off")
		t.Setenv(EnvCUBLASMinM, "")
		t.Setenv(EnvCUBLASChunkMB, "")
		t.Setenv(bad[0], bad[1])
		_, err := cublasConfigFromEnv()
		assert.ErrorContains(t, err, bad[0], "%v", bad)
		_, err = configFromEnv()
		assert.ErrorContains(t, err, bad[0], "%v", bad)
	}
}

func TestCUBLASSelects(t *testing.T) {
	f4 := quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}
	v := func(k engine.Kernel, act quant.DType) engine.Variant {
		return engine.Variant{Kernel: k, Format: f4, Act: act, Scale: quant.BF16}
	}
	for _, c := range []struct {
		ready bool
		minM  int
		v     engine.Variant
		m     int
		want  bool
	}{
		{true, 512, v(engine.QMM, quant.BF16), 512, true},
		{true, 512, v(engine.QMM, quant.F16), 4096, true},
		{true, 512, v(engine.QMM, quant.BF16), 511, false},
		{true, 512, v(engine.QMM, quant.F32), 4096, false},
		{true, 512, v(engine.QMV, quant.BF16), 4096, false},
		{true, 512, v(engine.PerElement, quant.BF16), 4096, false},
		{false, 512, v(engine.QMM, quant.BF16), 4096, false},
		{true, 1, v(engine.QMM, quant.F16), 1, true},
		{true, 1, engine.Variant{Kernel: engine.QMM, Format: quant.DefaultFormat(quant.NVFP4), Act: quant.BF16, Scale: quant.U8}, 9, true},
	} {
		assert.Equal(t, c.want, cublasSelects(c.ready, c.minM, c.v, c.m), "%+v", c)
	}
}

func TestChunkRows(t *testing.T) {
	assert.Equal(t, 2048, chunkRows(16384, 16384, 2, 64<<20), "512 MiB weight in 64 MiB chunks")
	assert.Equal(t, 4096, chunkRows(4096, 4096, 2, 64<<20), "a 32 MiB weight in one chunk")
	assert.Equal(t, 128, chunkRows(1000, 1<<20, 2, 64<<20), "at least 128 rows")
	assert.Equal(t, 13, chunkRows(13, 1<<20, 2, 1<<10), "never more than n")
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		n := 1 + rng.IntN(40000)
		k := 16 * (1 + rng.IntN(2000))
		budget := 1 + rng.IntN(128<<20)
		per := chunkRows(n, k, 2, budget)
		require.Positive(t, per)
		require.LessOrEqual(t, per, n)
		if per < n {
			require.Zero(t, per%cublasRowAlign, "n=%d k=%d budget=%d: %d rows", n, k, budget, per)
			if per > cublasRowAlign {
				require.LessOrEqual(t, per*k*2, budget)
			}
		} else if n > cublasRowAlign {
			require.True(t, n*k*2 <= budget || per == n)
		}
		cs := chunks(n, per)
		next := 0
		for i, c := range cs {
			require.Equal(t, next, c.r0, "chunks are contiguous")
			require.Positive(t, c.rows)
			require.LessOrEqual(t, c.rows, per)
			if i < len(cs)-1 {
				require.Equal(t, per, c.rows)
				require.Zero(t, c.r0*2%256, "each chunk's slice of y starts 256-byte aligned")
			}
			next += c.rows
		}
		require.Equal(t, n, next, "chunks cover every row once")
		require.Equal(t, (n+per-1)/per, len(cs))
	}
}

// fakeMem is device memory of the fake GPU, read and written as 16-bit
// elements of a CUDA data type.
type fakeMem struct{ f *fakeGPU }

func dtypeOfCUDA(t testing.TB, dt int32) quant.DType {
	switch dt {
	case cudaR16BF:
		return quant.BF16
	case cudaR16F:
		return quant.F16
	}
	t.Errorf("cuda data type %d, want CUDA_R_16BF or CUDA_R_16F", dt)
	return quant.BF16
}

func (m fakeMem) read(t testing.TB, base uint64, dt int32, i int) float32 {
	d := dtypeOfCUDA(t, dt)
	return d.Load(m.f.find(base+uint64(2*i), 2), 0)
}

func (m fakeMem) write(t testing.TB, base uint64, dt int32, i int, v float32) {
	d := dtypeOfCUDA(t, dt)
	d.Store(m.f.find(base+uint64(2*i), 2), 0, v)
}

// colMajorGemm computes what cublasGemmEx computes for g with alpha 1 and
// beta 0, by its definition: matrices are column-major, element (i, j) of
// a matrix with leading dimension ld is at i + j*ld; op(A) is m x k, op(B)
// k x n, and C[i + j*ldc] = Σ_l op(A)[i, l]·op(B)[l, j] for i < m, j < n,
// where op(X)[i, l] = X[l + i*ld] for CUBLAS_OP_T and X[i + l*ld] for
// CUBLAS_OP_N; float32 accumulation, C rounded to its type.
// It may run on the device's thread, so it reports with t.Errorf.
func colMajorGemm(t testing.TB, mem fakeMem, g gemmArgs) {
	if g.compute != cublasCompute32F || g.algo != cublasGemmDflt {
		t.Errorf("compute type %d, algo %d", g.compute, g.algo)
	}
	for _, op := range []int32{g.transa, g.transb} {
		if op != cublasOpN && op != cublasOpT {
			t.Errorf("operation %d", op)
			return
		}
	}
	at := func(x uint64, dt, ld, op int32, i, l int) float32 {
		if op == cublasOpT {
			return mem.read(t, x, dt, l+i*int(ld))
		}
		return mem.read(t, x, dt, i+l*int(ld))
	}
	for j := range int(g.n) {
		for i := range int(g.m) {
			var acc float32
			for l := range int(g.k) {
				acc += at(g.a, g.atype, g.lda, g.transa, i, l) * at(g.b, g.btype, g.ldb, g.transb, l, j)
			}
			mem.write(t, g.c, g.ctype, i+j*int(g.ldc), acc)
		}
	}
}

func fakeAlloc(t testing.TB, f *fakeGPU, n int) uint64 {
	var p uint64
	require.Zero(t, f.api().cuMemAlloc(&p, uint64(n)))
	return p
}

// TestGEMMArgs checks the mapping of a chunk's product onto cuBLAS's
// arguments, and that cuBLAS's definition of the product with them is the
// chunk's columns of y = x·W^T, row-major, leaving the other columns alone.
func TestGEMMArgs(t *testing.T) {
	const x, w, y = 1 << 20, 2 << 20, 3 << 20
	g := gemmArgsFor(quant.BF16, x, w, y, 600, 1030, 256, chunk{r0: 512, rows: 128})
	assert.Equal(t, gemmArgs{
		transa: cublasOpT, transb: cublasOpN, m: 128, n: 600, k: 256,
		a: w, atype: cudaR16BF, lda: 256, b: x, btype: cudaR16BF, ldb: 256,
		c: y + 1024, ctype: cudaR16BF, ldc: 1030, compute: 68, algo: -1,
	}, g)
	g = gemmArgsFor(quant.F16, x, w, y, 7, 13, 32, chunk{r0: 0, rows: 13})
	assert.Equal(t, int32(2), g.atype)
	assert.Equal(t, int32(2), g.btype)
	assert.Equal(t, int32(2), g.ctype)
	assert.Equal(t, uint64(y), g.c)

	rng := rand.New(rand.NewPCG(3, 4))
	for _, act := range cublasActs {
		for _, c := range []struct{ m, n, k, r0, rows int }{{5, 13, 32, 0, 13}, {3, 300, 48, 128, 128}, {4, 300, 48, 256, 44}, {1, 7, 16, 3, 4}} {
			f := newFakeGPU()
			mem := fakeMem{f}
			xs := make([]float32, c.m*c.k)
			ws := make([]float32, c.n*c.k)
			for i := range xs {
				xs[i] = act.Round(float32(rng.NormFloat64()))
			}
			for i := range ws {
				ws[i] = act.Round(float32(rng.NormFloat64()))
			}
			xp := fakeAlloc(t, f, 2*len(xs))
			copy(f.find(xp, uint64(2*len(xs))), act.Bytes(xs))
			// The scratch holds the chunk's rows of W only.
			wp := fakeAlloc(t, f, 2*c.rows*c.k)
			copy(f.find(wp, uint64(2*c.rows*c.k)), act.Bytes(ws[c.r0*c.k:(c.r0+c.rows)*c.k]))
			yp := fakeAlloc(t, f, 2*c.m*c.n)
			poison := make([]float32, c.m*c.n)
			for i := range poison {
				poison[i] = 100
			}
			copy(f.find(yp, uint64(2*c.m*c.n)), act.Bytes(poison))
			colMajorGemm(t, mem, gemmArgsFor(act, xp, wp, yp, c.m, c.n, c.k, chunk{c.r0, c.rows}))
			got := act.Floats(f.find(yp, uint64(2*c.m*c.n)), c.m*c.n)
			for m := range c.m {
				for n := range c.n {
					if n < c.r0 || n >= c.r0+c.rows {
						require.Equal(t, float32(100), got[m*c.n+n], "%v %+v: y[%d][%d] outside the chunk was written", act, c, m, n)
						continue
					}
					var want float64
					for k := range c.k {
						want += float64(xs[m*c.k+k]) * float64(ws[n*c.k+k])
					}
					require.InDelta(t, want, got[m*c.n+n], 0.02*(1+math.Abs(want)), "%v %+v: y[%d][%d]", act, c, m, n)
				}
			}
		}
	}
}

func TestInternalKernels(t *testing.T) {
	dq := variantsOf(kernelDequant)
	require.NotEmpty(t, dq)
	qmm := 0
	for _, v := range variantsOf(engine.QMM) {
		if v.Act != quant.F32 {
			qmm++
		}
	}
	assert.Len(t, dq, qmm, "a dequant variant per 16-bit QMM variant")
	assert.Len(t, variantsOf(kernelBiasAdd), 2)
	bundle := BundleVariants()
	for _, v := range append(dq, variantsOf(kernelBiasAdd)...) {
		assert.Contains(t, bundle, v)
		spec, ok := geometry(v)
		require.True(t, ok, "%v", v)
		u, err := CompileUnit(v)
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(u.Name, familyName(v.Kernel)+"/"), u.Name)
		assert.Equal(t, familyName(v.Kernel)+".cu", u.File)
		for _, s := range []struct{ m, n, k int }{{1, 1, 16}, {7, 13, 96}, {4096, 2048, 16384}, {100000, 28672, 8192}, {1, 2048, 16400}} {
			g := spec.grid(engine.Params{M: s.m, N: s.n, K: s.k})
			require.NotZero(t, g[0]*g[1]*g[2])
			require.LessOrEqual(t, g[1], uint32(65535))
			if v.Kernel == kernelDequant {
				assert.GreaterOrEqual(t, int(g[0])*dequantBlock, s.n*((s.k+31)/32), "%v %+v", v, s)
			} else {
				assert.GreaterOrEqual(t, int(g[0])*biasBlock, s.n)
				assert.Equal(t, uint32(min(s.m, 65535)), g[1])
			}
		}
	}
	hold := engine.Variant{Kernel: kernelHold}
	assert.Equal(t, []engine.Variant{hold}, variantsOf(kernelHold))
	assert.Contains(t, bundle, hold)
	if u, err := CompileUnit(hold); assert.NoError(t, err) {
		assert.Equal(t, "hold.cu", u.File)
	}
	_, ok := geometry(engine.Variant{Kernel: kernelDequant, Format: quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}, Act: quant.F32, Scale: quant.F32})
	assert.False(t, ok, "no dequant of f32 activations")
	_, ok = geometry(engine.Variant{Kernel: kernelBiasAdd, Act: quant.F32})
	assert.False(t, ok)
	assert.NotContains(t, advertised(), kernelDequant)
	d, err := VariantDefines(engine.Variant{Kernel: kernelBiasAdd, Act: quant.BF16})
	require.NoError(t, err)
	assert.Equal(t, Defines{Act: 2}, d)
}

// fakeBLAS implements cublasAPI over a fake GPU; GemmEx computes
// colMajorGemm on the fake's memory.
type fakeBLAS struct {
	t testing.TB
	f *fakeGPU

	mu         sync.Mutex
	handles    map[uintptr]bool
	next       uintptr
	stream     uintptr
	work       uint64
	workBytes  uint64
	calls      []gemmArgs
	alphaBeta  [][2]float32
	createCode int32
	gemmCode   int32
	loads      int
}

func newFakeBLAS(t testing.TB, f *fakeGPU) *fakeBLAS {
	return &fakeBLAS{t: t, f: f, handles: map[uintptr]bool{}, next: 500}
}

func (b *fakeBLAS) loader() (*cublasAPI, error) {
	b.loads++
	return &cublasAPI{
		lib: "libcublas.so.13",
		cublasCreate: func(h *uintptr) int32 {
			b.mu.Lock()
			defer b.mu.Unlock()
			if b.createCode != 0 {
				return b.createCode
			}
			b.next++
			*h = b.next
			b.handles[*h] = true
			return 0
		},
		cublasDestroy: func(h uintptr) int32 {
			b.mu.Lock()
			defer b.mu.Unlock()
			if !b.handles[h] {
				return 1
			}
			delete(b.handles, h)
			return 0
		},
		cublasSetStream:    func(h, s uintptr) int32 { b.stream = s; return 0 },
		cublasSetWorkspace: func(h uintptr, w, n uint64) int32 { b.work, b.workBytes = w, n; return 0 },
		cublasGetProperty: func(p int32, v *int32) int32 {
			*v = []int32{13, 1, 0}[p]
			return 0
		},
		cublasGemmEx: func(h uintptr, ta, tb, m, n, k int32, alpha unsafe.Pointer, a uint64, at, lda int32, bb uint64, bt, ldb int32,
			beta unsafe.Pointer, c uint64, ct, ldc int32, compute, algo int32) int32 {
			b.mu.Lock()
			defer b.mu.Unlock()
			if !b.handles[h] {
				return 1
			}
			if b.gemmCode != 0 {
				return b.gemmCode
			}
			g := gemmArgs{ta, tb, m, n, k, a, at, lda, bb, bt, ldb, c, ct, ldc, compute, algo}
			b.calls = append(b.calls, g)
			b.alphaBeta = append(b.alphaBeta, [2]float32{*(*float32)(alpha), *(*float32)(beta)})
			b.f.mu.Lock()
			defer b.f.mu.Unlock()
			colMajorGemm(b.t, fakeMem{b.f}, g)
			return 0
		},
	}, nil
}

func missingCUBLAS() (*cublasAPI, error) {
	return nil, errors.New("libcublas.so.13 not found: no such file")
}

// cublasFake opens a driver on a fake GPU whose dequant and bias_add
// launches run in Go on matrix *mat with activations of dtype *act, and
// whose cuBLAS is b.
func cublasFake(t *testing.T, f *fakeGPU, b *fakeBLAS, cfg cublasConfig, mat **quant.Matrix, act *quant.DType) (*engine.Device, *Driver) {
	api := f.api()
	launch := api.cuLaunchKernel
	api.cuLaunchKernel = func(fn uintptr, gx, gy, gz, bx, by, bz, shared uint32, s uintptr, params *unsafe.Pointer, extra *unsafe.Pointer) int32 {
		if code := launch(fn, gx, gy, gz, bx, by, bz, shared, s, params, extra); code != 0 {
			return code
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		l := f.launches[len(f.launches)-1]
		switch {
		case strings.Contains(l.image, "dequant.cu"):
			m := *mat
			r0, rows, k := int(int32(l.params[4])), int(int32(l.params[5])), int(int32(l.params[6]))
			if k != m.Cols || int(gx)*int(bx) < 4*rows*((k+31)/32) {
				t.Errorf("dequant of K=%d (want %d) with grid %d x %d for %d rows", k, m.Cols, gx, bx, rows)
				return 1
			}
			// The kernel gets the layer's packed words, scales and biases.
			if !bytes.Equal(f.find(l.params[0], uint64(len(m.Weight))), m.Weight) ||
				!bytes.Equal(f.find(l.params[1], uint64(len(m.Scales))), m.Scales) ||
				(m.Biases == nil) != (l.params[2] == 0) ||
				(m.Biases != nil && !bytes.Equal(f.find(l.params[2], uint64(len(m.Biases))), m.Biases)) {
				t.Errorf("dequant parameters %v are not the layer's weight, scales and biases", l.params)
				return 1
			}
			out := f.find(l.params[3], uint64(2*rows*k))
			row := make([]float64, k)
			for r := range rows {
				m.DequantizeRow(row, r0+r)
				for c, v := range row {
					(*act).Store(out, r*k+c, float32(v))
				}
			}
		case strings.Contains(l.image, "bias_add.cu"):
			mm, n := int(int32(l.params[2])), int(int32(l.params[3]))
			y := f.find(l.params[0], uint64(2*mm*n))
			bias := quant.F32.Floats(f.find(l.params[1], uint64(4*n)), n)
			for i := range mm * n {
				(*act).Store(y, i, (*act).Load(y, i)+bias[i%n])
			}
		}
		return 0
	}
	cfg.load = b.loader
	d, err := open(api, fakeNVRTCLoader, config{cublas: cfg})
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })
	return engine.NewDevice(Name, d), d
}

func (f *fakeGPU) launchesOf(image string) int {
	n := 0
	for _, l := range f.launches {
		if strings.Contains(l.image, image) {
			n++
		}
	}
	return n
}

// TestCUBLASPathFake runs QMM through the cuBLAS path on the fake GPU,
// with the dequant and bias_add kernels and cuBLAS replaced by Go, against
// the float64 reference: the chunks, pointers, offsets and GEMM arguments
// the driver issues compute y = x·W^T + bias.
func TestCUBLASPathFake(t *testing.T) {
	f := newFakeGPU()
	b := newFakeBLAS(t, f)
	var mat *quant.Matrix
	var act quant.DType
	dev, d := cublasFake(t, f, b, cublasConfig{on: true, minM: 16}, &mat, &act)
	assert.Equal(t, "cuBLAS (loaded at first use): on for QMM with F16/BF16 activations at M >= 16", d.CUBLAS())
	assert.Zero(t, b.loads, "cuBLAS is loaded at the first QMM that takes its path")
	assert.Equal(t, 16, d.CUBLASMinM())
	require.NoError(t, d.SetCUBLAS(true))
	assert.Equal(t, "cuBLAS 13.1.0 (libcublas.so.13): on for QMM with F16/BF16 activations at M >= 16", d.CUBLAS())
	require.Len(t, b.handles, 1)
	assert.Equal(t, d.stream, b.stream, "cuBLAS runs on the driver's stream")
	assert.Equal(t, uint64(cublasWorkspaceBytes), b.workBytes)
	assert.NotZero(t, b.work)

	rng := rand.New(rand.NewPCG(5, 6))
	cases := []struct {
		f          quant.Format
		st         quant.DType
		n, k       int
		bias       bool
		chunkRows  int
		wantChunks int
	}{
		{quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}, quant.BF16, 300, 128, true, 128, 3},
		{quant.Format{Mode: quant.Affine, Bits: 3, GroupSize: 32}, quant.F16, 77, 96, false, 0, 1},
		{quant.DefaultFormat(quant.NVFP4), quant.U8, 260, 272, true, 128, 3},
		{quant.DefaultFormat(quant.MXFP8), quant.U8, 129, 64, false, 128, 2},
	}
	for _, c := range cases {
		l := enginetest.NewLayer(t, dev, rng, c.f, c.st, c.n, c.k, c.bias)
		mat = l.Matrix
		for _, a := range cublasActs {
			act = a
			if c.chunkRows > 0 {
				d.setCUBLASChunk(c.chunkRows * c.k * 2)
			} else {
				d.setCUBLASChunk(64 << 20)
			}
			const m = 20
			x := enginetest.RandomX(rng, a, m+2, c.k)
			ref := quant.Reference(x, m, l.Matrix, l.Bias)
			calls, dqs, biases, qmms := len(b.calls), f.launchesOf("dequant.cu"), f.launchesOf("bias_add.cu"), f.launchesOf("qmm.cu")
			y := l.Run(t, engine.QMM, a, x, m, m+2)
			assert.LessOrEqual(t, quant.RelErr(y[:m*c.n], ref), engine.ActPrecision(a).Tolerance(), "%v %v", c.f, a)
			for i, v := range y[m*c.n:] {
				require.True(t, math.IsNaN(float64(v)), "%v %v: y element %d past row M was written", c.f, a, m*c.n+i)
			}
			assert.Equal(t, c.wantChunks, len(b.calls)-calls, "%v: one GEMM per chunk", c.f)
			assert.Equal(t, c.wantChunks, f.launchesOf("dequant.cu")-dqs, "%v: one dequant per chunk", c.f)
			wantBias := 0
			if c.bias {
				wantBias = 1
			}
			assert.Equal(t, wantBias, f.launchesOf("bias_add.cu")-biases)
			assert.Equal(t, qmms, f.launchesOf("qmm.cu"), "the own kernel did not run")
			for _, ab := range b.alphaBeta {
				assert.Equal(t, [2]float32{1, 0}, ab)
			}
			for _, l := range f.launches[len(f.launches)-(c.wantChunks+wantBias):] {
				if strings.Contains(l.image, "dequant.cu") {
					assert.Equal(t, [3]uint32{dequantBlock, 1, 1}, l.block)
				}
			}
		}
	}

	// Below the threshold, with f32 activations or for other kernels, the
	// own kernels run.
	l := enginetest.NewLayer(t, dev, rng, quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}, quant.BF16, 40, 64, false)
	mat, act = l.Matrix, quant.BF16
	calls := len(b.calls)
	for _, r := range []struct {
		k   engine.Kernel
		act quant.DType
		m   int
	}{{engine.QMM, quant.BF16, 15}, {engine.QMM, quant.F32, 64}, {engine.QMV, quant.BF16, 64}, {engine.PerElement, quant.F16, 64}} {
		before := f.launchesOf(r.k.String() + ".cu")
		l.Run(t, r.k, r.act, make([]float32, r.m*64), r.m, r.m)
		assert.Equal(t, before+1, f.launchesOf(r.k.String()+".cu"), "%+v", r)
	}
	assert.Equal(t, calls, len(b.calls))

	// Disabled: the own kernel.
	require.NoError(t, d.SetCUBLAS(false))
	assert.Contains(t, d.CUBLAS(), ": off")
	before := f.launchesOf("qmm.cu")
	l.Run(t, engine.QMM, quant.BF16, make([]float32, 600*64), 600, 600)
	assert.Equal(t, before+1, f.launchesOf("qmm.cu"))
	assert.Equal(t, calls, len(b.calls))
	require.NoError(t, d.SetCUBLAS(true))
	d.SetCUBLASMinM(100)
	l.Run(t, engine.QMM, quant.BF16, make([]float32, 99*64), 99, 99)
	assert.Equal(t, calls, len(b.calls))
	l.Run(t, engine.QMM, quant.BF16, make([]float32, 100*64), 100, 100)
	assert.Equal(t, calls+1, len(b.calls))
	assert.Equal(t, 1, b.loads, "cuBLAS is loaded once")

	// A failing GEMM is an error naming the call and the status.
	b.gemmCode = 13
	xb, err := dev.Alloc(quant.BF16, 100, 64)
	require.NoError(t, err)
	yb, err := dev.Alloc(quant.BF16, 100, 40)
	require.NoError(t, err)
	e := dev.NewEncoder()
	require.NoError(t, e.Matmul(engine.QMM, l.Args(t, engine.QMM, 100, xb, yb)))
	err = e.Commit()
	assert.ErrorIs(t, err, ErrCUBLAS)
	assert.ErrorContains(t, err, "cublasGemmEx: CUBLAS_STATUS_EXECUTION_FAILED")
	b.gemmCode = 0
	xb.Free()
	yb.Free()

	// Close destroys the handle and frees the scratch, the workspace and
	// the buffers left.
	require.NoError(t, dev.Close())
	assert.Empty(t, b.handles, "cuBLAS handle")
	assert.Empty(t, f.dev, "device memory")
}

func TestCUBLASUnavailable(t *testing.T) {
	// Off: cuBLAS is not even loaded.
	f := newFakeGPU()
	b := newFakeBLAS(t, f)
	var mat *quant.Matrix
	var act quant.DType
	_, d := cublasFake(t, f, b, cublasConfig{}, &mat, &act)
	assert.Equal(t, "cuBLAS off (MLXQ_CUDA_CUBLAS=on enables it)", d.CUBLAS())
	assert.Zero(t, d.CUBLASMinM())
	assert.Zero(t, b.loads)
	assert.Empty(t, b.handles)

	// Missing cuBLAS: Open works; the first QMM that would take the path
	// runs the own kernel, and the path says why.
	d2, err := open(newFakeGPU().api(), fakeNVRTCLoader, config{cublas: cublasConfig{on: true, load: missingCUBLAS}})
	require.NoError(t, err)
	defer d2.Close()
	qmm := engine.Variant{Kernel: engine.QMM, Format: quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}, Act: quant.BF16, Scale: quant.BF16}
	g, err := d2.gemmFor(&kernel{variant: qmm}, &engine.MatmulArgs{Params: engine.Params{M: 4096, N: 64, K: 64, Format: qmm.Format, Act: qmm.Act}})
	require.NoError(t, err)
	assert.Nil(t, g, "the own kernel runs")
	assert.Equal(t, "cuBLAS unavailable (libcublas.so.13 not found: no such file)", d2.CUBLAS())
	assert.Zero(t, d2.CUBLASMinM(), "unavailable")
	assert.ErrorContains(t, d2.SetCUBLAS(true), "libcublas.so.13 not found")
	ok, _ := d2.gemm.selects(qmm, 4096)
	assert.False(t, ok)

	// A handle that cannot be created: likewise, and nothing leaks.
	f3 := newFakeGPU()
	b3 := newFakeBLAS(t, f3)
	b3.createCode = 3
	d3, err := open(f3.api(), fakeNVRTCLoader, config{cublas: cublasConfig{on: true, load: b3.loader}})
	require.NoError(t, err)
	assert.ErrorContains(t, d3.SetCUBLAS(true), "CUBLAS_STATUS_ALLOC_FAILED")
	assert.Equal(t, "cuBLAS unavailable (cublasCreate_v2: CUBLAS_STATUS_ALLOC_FAILED)", d3.CUBLAS())
	require.NoError(t, d3.Close())
	assert.Empty(t, f3.dev)
}
