package cuda

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/engine/enginetest"
	"github.com/mlxq/mlxq/quant"
)

// openGPU opens the real device, or skips the test with the reason.
func openGPU(t *testing.T) (*engine.Device, *Driver) {
	t.Helper()
	d, err := Open()
	if err != nil {
		t.Skip("cuda: " + strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	dev := engine.NewDevice(Name, d)
	t.Cleanup(func() { assert.NoError(t, dev.Close()) })
	t.Logf("%s; %s; driver %d", d.Name(), d.Compiler(), d.DriverVersion())
	return dev, d
}

// TestGPUConformance runs the engine's conformance suite on the backend's
// own kernels; TestGPUCUBLASConformance covers QMM through cuBLAS, which
// the default plan takes from M = 64.
func TestGPUConformance(t *testing.T) {
	dev, d := openGPU(t)
	require.NoError(t, d.SetCUBLAS(false))
	enginetest.TestDevice(t, dev)
}

// TestGPUConformancePTX runs a subset of the conformance checks on kernels
// loaded from the embedded PTX, JIT-compiled by the driver.
func TestGPUConformancePTX(t *testing.T) {
	t.Setenv(EnvPTX, "1")
	t.Setenv(EnvCache, "off")
	dev, d := openGPU(t)
	require.Contains(t, d.Compiler(), "embedded PTX")
	rng := rand.New(rand.NewPCG(3, 4))
	cases := []struct {
		f  quant.Format
		st quant.DType
	}{
		{quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}, quant.BF16},
		{quant.Format{Mode: quant.Affine, Bits: 3, GroupSize: 64}, quant.F16},
		{quant.Format{Mode: quant.Affine, Bits: 8, GroupSize: 128}, quant.F32},
		{quant.DefaultFormat(quant.MXFP4), quant.U8},
		{quant.DefaultFormat(quant.NVFP4), quant.U8},
	}
	ran := 0
	for i, c := range cases {
		const m, n, k = 9, 40, 256
		l := enginetest.NewLayer(t, dev, rng, c.f, c.st, n, k, i%2 == 0)
		for _, act := range []quant.DType{quant.F32, quant.BF16} {
			x := enginetest.RandomX(rng, act, m+2, k)
			ref := quant.Reference(x, m, l.Matrix, l.Bias)
			for _, kern := range []engine.Kernel{engine.QMV, engine.QMM, engine.PerElement, engine.SIMD4, engine.SIMD4GS64, engine.PackedSIMD4B4} {
				if !dev.Supports(kern) || kern.Accepts(c.f) != nil {
					continue
				}
				y := l.Run(t, kern, act, x, m, m+2)
				tol := dev.Precision(l.Variant(kern, act)).Tolerance()
				assert.LessOrEqual(t, quant.RelErr(y[:m*n], ref), tol, "%s %v %v x", kern, c.f, act)
				ran++
			}
		}
	}
	require.NotZero(t, ran)
	t.Run("Unpack", func(t *testing.T) {
		for _, bits := range []int{2, 3, 5, 6} {
			f := quant.Format{Mode: quant.Affine, Bits: bits, GroupSize: 32}
			l := enginetest.NewLayer(t, dev, rng, f, quant.F32, 13, 96, false)
			got := make([]byte, 13*96)
			require.NoError(t, dev.Download(got, l.Weights(t, engine.Codes)))
			want := make([]byte, 13*96)
			for r := range 13 {
				quant.Unpack(want[r*96:(r+1)*96], l.Matrix.Row(r), bits)
			}
			assert.Equal(t, want, got, "bits %d", bits)
		}
	})
}

// TestGPUErrors checks that CUDA failures come back as Go errors and
// leave the device usable.
func TestGPUErrors(t *testing.T) {
	dev, d := openGPU(t)
	_, err := d.load([]byte("not a module\x00"))
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrCUDA)
	assert.Contains(t, err.Error(), "cuModuleLoadData: CUDA_ERROR_")
	t.Log(err)

	c, err := d.Compile(unpackVariant(4))
	require.NoError(t, err)
	k := c.(*kernel)
	w, err := dev.Alloc(quant.U32, 4, 8)
	require.NoError(t, err)
	defer w.Free()
	codes, err := dev.Alloc(quant.U8, 4, 64)
	require.NoError(t, err)
	defer codes.Free()
	o := op{k: k, grid: [3]uint32{1, 1, 1}, block: [3]uint32{4096, 1, 1}}
	o.add(ptrOf(w), ptrOf(codes), 4, 64)
	err = d.do(func() error { return errors.Join(d.run([]op{o}), d.staging.finish()) })
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrCUDA)
	assert.Contains(t, err.Error(), "cuLaunchKernel: CUDA_ERROR_INVALID_VALUE")
	t.Log(err)

	_, err = d.do2(func() ([]byte, error) { return d.linkPTX("bad.ptx", []byte(".version 8.0\nthis is not ptx\n")) })
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrCUDA)
	t.Log(err)

	if d.rtc != nil {
		_, err = d.rtc.compile("bad.cu", "extern \"C\" __global__ void mlxq_kernel() { undefined_thing(); }\n", nil, d.nvrtcOptions())
		require.Error(t, err)
		assert.ErrorIs(t, err, ErrNVRTC)
		assert.Contains(t, err.Error(), "undefined_thing")
		t.Log(err)
	}

	// The device still works.
	src := bytes.Repeat([]byte{0x5a}, 4*8*4)
	require.NoError(t, dev.Upload(w, src))
	e := dev.NewEncoder()
	require.NoError(t, e.Unpack(&engine.UnpackArgs{Rows: 4, Cols: 64, Bits: 4, W: w, Codes: codes}))
	require.NoError(t, e.Commit())
	got := make([]byte, 4*64)
	require.NoError(t, dev.Download(got, codes))
	want := make([]byte, 4*64)
	quant.Unpack(want, src, 4)
	assert.Equal(t, want, got)
}

// do2 runs f on the device's thread and returns its result.
func (d *Driver) do2(f func() ([]byte, error)) ([]byte, error) {
	var out []byte
	err := d.do(func() (err error) { out, err = f(); return err })
	return out, err
}

func TestGPUHostChecks(t *testing.T) {
	dev, _ := openGPU(t)
	f := quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}
	rng := rand.New(rand.NewPCG(5, 6))
	l := enginetest.NewLayer(t, dev, rng, f, quant.BF16, 16, 64, false)
	x, err := dev.Alloc(quant.F32, 2, 64)
	require.NoError(t, err)
	defer x.Free()
	y, err := dev.Alloc(quant.F16, 2, 16)
	require.NoError(t, err)
	defer y.Free()
	e := dev.NewEncoder()
	a := l.Args(t, engine.QMV, 2, x, y) // y's dtype differs from x's
	assert.ErrorIs(t, e.Matmul(engine.QMV, a), engine.ErrArgs)
	a = l.Args(t, engine.QMV, 3, x, x) // too many rows, and y aliases x
	assert.ErrorIs(t, e.Matmul(engine.QMV, a), engine.ErrArgs)
	assert.ErrorIs(t, e.Unpack(&engine.UnpackArgs{Rows: 16, Cols: 64, Bits: 7, W: l.Weights(t, engine.Packed), Codes: x}), engine.ErrArgs)
	require.NoError(t, e.Commit())
	assert.Zero(t, e.Len())
}

func TestGPURoundTrip(t *testing.T) {
	dev, d := openGPU(t)
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 3, 255, 257, 4097, 1<<20 + 13, 2*d.staging.maxBank + 12345} {
		b, err := dev.Alloc(quant.U8, n)
		require.NoError(t, err)
		got := make([]byte, n)
		require.NoError(t, dev.Download(got, b))
		assert.True(t, bytes.Equal(make([]byte, n), got), "n=%d: fresh memory is zeroed", n)
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		require.NoError(t, dev.Upload(b, src))
		require.NoError(t, dev.Download(got, b))
		assert.True(t, bytes.Equal(src, got), "n=%d", n)
		part := make([]byte, n/3+1)
		require.NoError(t, dev.Download(part, b))
		assert.True(t, bytes.Equal(src[:len(part)], part), "n=%d: partial download", n)
		b.Free()
	}
	free, total, err := d.MemInfo()
	require.NoError(t, err)
	assert.Greater(t, total, free)
}

func TestGPUQueueWrite(t *testing.T) {
	dev, d := openGPU(t)
	const rows, cols, bits = 5, 96, 3
	rb := quant.RowBytes(cols, bits)
	w, err := dev.Alloc(quant.U32, rows, rb/4)
	require.NoError(t, err)
	defer w.Free()
	var outs []*engine.Buffer
	var srcs [][]byte
	q := d.NewQueue()
	c, err := d.Compile(unpackVariant(bits))
	require.NoError(t, err)
	for i := range 3 {
		src := make([]byte, rows*rb)
		for j := range src {
			src[j] = byte(i*31 + j)
		}
		out, err := dev.Alloc(quant.U8, rows, cols)
		require.NoError(t, err)
		defer out.Free()
		tmp := bytes.Clone(src)
		require.NoError(t, q.Write(w.Memory(), tmp))
		clear(tmp)
		require.NoError(t, q.Unpack(c, &engine.UnpackArgs{Rows: rows, Cols: cols, Bits: bits, W: w, Codes: out}))
		outs, srcs = append(outs, out), append(srcs, src)
	}
	require.NoError(t, q.Commit())
	for i, out := range outs {
		got := make([]byte, rows*cols)
		require.NoError(t, dev.Download(got, out))
		want := make([]byte, rows*cols)
		for r := range rows {
			quant.Unpack(want[r*cols:(r+1)*cols], srcs[i][r*rb:(r+1)*rb], bits)
		}
		assert.Equal(t, want, got, "write %d", i)
	}
}

func TestGPUTimer(t *testing.T) {
	dev, d := openGPU(t)
	rng := rand.New(rand.NewPCG(9, 10))
	f := quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}
	l := enginetest.NewLayer(t, dev, rng, f, quant.BF16, 1024, 1024, false)
	x, err := dev.Alloc(quant.BF16, 64, 1024)
	require.NoError(t, err)
	defer x.Free()
	y, err := dev.Alloc(quant.BF16, 64, 1024)
	require.NoError(t, err)
	defer y.Free()
	times, err := d.Time(func() error {
		e := dev.NewEncoder()
		if err := e.Matmul(engine.QMM, l.Args(t, engine.QMM, 64, x, y)); err != nil {
			return err
		}
		return e.Commit()
	}, 2, 5)
	require.NoError(t, err)
	require.Len(t, times, 5)
	for _, tm := range times {
		assert.Positive(t, tm)
	}
	t.Log(times)
}

func TestGPUCache(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", dir)
	t.Setenv(EnvCache, "")
	_, d := openGPU(t)
	_, err := d.Compile(unpackVariant(5))
	require.NoError(t, err)
	files, err := filepath.Glob(filepath.Join(dir, "mlxq", "cuda", "*.cubin"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	// A corrupt entry is ignored and rewritten.
	require.NoError(t, os.WriteFile(files[0], []byte("garbage"), 0o644))
	d2, err := Open()
	require.NoError(t, err)
	defer d2.Close()
	_, err = d2.Compile(unpackVariant(5))
	require.NoError(t, err)
	_, ok := d2.cache.get(strings.TrimSuffix(filepath.Base(files[0]), ".cubin"))
	assert.True(t, ok)
}
