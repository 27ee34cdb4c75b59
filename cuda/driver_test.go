package cuda

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/mlxq/mlxq/cpu"
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/quant"
)

func TestErrorFormatting(t *testing.T) {
	a := newFakeGPU().api()
	require.NoError(t, a.check("cuInit", 0))
	err := a.check("cuLaunchKernel", 1)
	assert.EqualError(t, err, "cuLaunchKernel: CUDA_ERROR_INVALID_VALUE: invalid argument")
	assert.ErrorIs(t, err, ErrCUDA)
	var ce *Error
	require.ErrorAs(t, fmtWrap(err), &ce)
	assert.Equal(t, int32(1), ce.Code)
	assert.EqualError(t, a.check("cuMemAlloc_v2", 9999), "cuMemAlloc_v2: CUresult(9999): unknown error")
	assert.EqualError(t, (&cuAPI{}).check("cuInit", 3), "cuInit: CUresult(3): unknown error")
}

func fmtWrap(err error) error { return errors.Join(errors.New("context"), err) }

func TestNVRTCErrors(t *testing.T) {
	rtc := fakeNVRTC()
	_, err := rtc.compile("qmv.cu", "#define MLXQ_BITS 4\n#error no\n", nil, []string{"-arch=sm_90"})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrNVRTC)
	assert.Contains(t, err.Error(), "nvrtcCompileProgram: NVRTC_ERROR_COMPILATION")
	assert.Contains(t, err.Error(), "unit.cu(3): error: boom")
	assert.Contains(t, err.Error(), "qmv.cu (options -arch=sm_90)")
	cubin, err := rtc.compile("qmv.cu", "#define MLXQ_BITS 4\n", []header{{"common.cuh", "x"}}, nil)
	require.NoError(t, err)
	assert.Equal(t, "FAKE:qmv.cu bits=4\x00", string(cubin))
}

// TestSymbols checks that every function of the bindings has a symbol, and
// that the calls cuda.h versions are bound to their _v2 ABI.
func TestSymbols(t *testing.T) {
	a := &cuAPI{}
	syms := a.symbols()
	funcs := 0
	rt := reflect.TypeOf(*a)
	for i := range rt.NumField() {
		if rt.Field(i).Type.Kind() == reflect.Func {
			funcs++
		}
	}
	assert.Equal(t, funcs, len(syms), "a cuAPI function lacks a symbol")
	seen := map[string]bool{}
	for _, s := range syms {
		assert.False(t, seen[s.name], "symbol %s bound twice", s.name)
		seen[s.name] = true
		assert.Equal(t, reflect.Pointer, reflect.TypeOf(s.fn).Kind())
	}
	for _, v2 := range []string{"cuMemAlloc_v2", "cuMemFree_v2", "cuMemcpyHtoDAsync_v2", "cuMemcpyDtoHAsync_v2",
		"cuMemAllocHost_v2", "cuMemGetInfo_v2", "cuDeviceTotalMem_v2", "cuStreamDestroy_v2", "cuEventDestroy_v2",
		"cuDevicePrimaryCtxRelease_v2", "cuLinkCreate_v2", "cuLinkAddData_v2"} {
		assert.True(t, seen[v2], "%s is not bound", v2)
		assert.False(t, seen[strings.TrimSuffix(v2, "_v2")], "%s bound to its old ABI", v2)
	}
	r := &nvrtcAPI{}
	assert.Len(t, r.symbols(), reflect.TypeOf(*r).NumField()-1)
}

func TestOpenHere(t *testing.T) {
	// On a machine without the driver, Open fails with ErrUnavailable
	// and auto falls back to the CPU.
	d, err := Open()
	if err == nil {
		d.Close()
		t.Skip("cuda: a CUDA device is present")
	}
	assert.ErrorIs(t, err, engine.ErrUnavailable)
	dev, err := engine.Open(engine.Auto)
	require.NoError(t, err)
	defer dev.Close()
	assert.Equal(t, "cpu", dev.Backend())
	assert.Contains(t, engine.Backends(), Name)
}

func TestOpenUnavailable(t *testing.T) {
	for _, c := range []struct {
		name string
		set  func(*fakeGPU)
		cfg  config
		want string
	}{
		{"no device", func(f *fakeGPU) { f.initCode = cudaErrorNoDevice }, config{}, "no CUDA device: cuInit: CUDA_ERROR_NO_DEVICE"},
		{"zero devices", func(f *fakeGPU) { f.deviceCount = 0 }, config{}, "no CUDA device"},
		{"bad ordinal", func(f *fakeGPU) {}, config{device: 3}, "CUDA device 3 (cuda:3, or MLXQ_CUDA_DEVICE), but there are 1 CUDA devices"},
	} {
		f := newFakeGPU()
		c.set(f)
		_, err := open(f.api(), fakeNVRTCLoader, c.cfg)
		require.Error(t, err, c.name)
		assert.ErrorIs(t, err, engine.ErrUnavailable, c.name)
		assert.Contains(t, err.Error(), c.want, c.name)
		assert.Zero(t, f.retained, c.name)
	}
}

func fakeNVRTCLoader() (*nvrtcAPI, error) { return fakeNVRTC(), nil }

func TestConfigFromEnv(t *testing.T) {
	t.Setenv(EnvDevice, "2")
	t.Setenv(EnvPTX, "1")
	t.Setenv(EnvCache, "off")
	c, err := configFromEnv()
	require.NoError(t, err)
	assert.Equal(t, config{device: 2, forcePTX: true, cublas: cublasConfig{on: true}, graphs: true}, c)
	t.Setenv(EnvGraphs, "off")
	c, err = configFromEnv()
	require.NoError(t, err)
	assert.False(t, c.graphs)
	t.Setenv(EnvGraphs, "sometimes")
	_, err = configFromEnv()
	assert.ErrorContains(t, err, EnvGraphs)
	t.Setenv(EnvGraphs, "")
	t.Setenv(EnvCache, "")
	t.Setenv(EnvPTX, "0")
	c, err = configFromEnv()
	require.NoError(t, err)
	assert.False(t, c.forcePTX)
	if dir, err := os.UserCacheDir(); err == nil {
		assert.Equal(t, filepath.Join(dir, "mlxq", "cuda"), c.cacheDir)
	}
	t.Setenv(EnvDevice, "gpu0")
	_, err = configFromEnv()
	assert.ErrorContains(t, err, `MLXQ_CUDA_DEVICE="gpu0"`)
}

func TestName(t *testing.T) {
	d := openFake(t, newFakeGPU(), true, "")
	assert.Equal(t, "Fake GPU, sm_90, 132 SMs, 139.7 GiB", d.Name())
	assert.Equal(t, "nvrtc 13.0", d.Compiler())
	d2 := openFake(t, newFakeGPU(), false, "")
	assert.Equal(t, "embedded PTX (libnvrtc.so not found)", d2.Compiler())
}

func TestKernels(t *testing.T) {
	d := openFake(t, newFakeGPU(), true, "")
	var want []engine.Kernel
	for _, k := range engine.Kernels() {
		ok := true
		for _, v := range variantsOf(k) {
			if _, has := geometry(v); !has {
				ok = false
			}
		}
		if ok {
			want = append(want, k)
		}
	}
	assert.Equal(t, want, d.Kernels())
	assert.NotEmpty(t, want)
	for _, v := range BundleVariants() {
		p := d.Precision(v)
		spec, _ := geometry(v)
		switch {
		case spec.tf32 && v.Act == quant.F32:
			assert.Equal(t, engine.TF32, p, "%v", v)
		default:
			assert.Equal(t, engine.ActPrecision(v.Act), p, "%v", v)
		}
	}
}

func TestPreamble(t *testing.T) {
	v := engine.Variant{Kernel: engine.QMV, Format: quant.Format{Mode: quant.Affine, Bits: 3, GroupSize: 128}, Act: quant.BF16, Scale: quant.F16}
	defs, err := VariantDefines(v)
	require.NoError(t, err)
	assert.Equal(t, Defines{Mode: 0, Bits: 3, Group: 128, Act: 2, Scale: 1}, defs)
	assert.Equal(t, "#define MLXQ_MODE 0\n#define MLXQ_BITS 3\n#define MLXQ_GROUP 128\n#define MLXQ_ACT 2\n#define MLXQ_SCALE 1\n#line 1 \"qmv.cu\"\n", defs.Preamble("qmv.cu"))

	fp := engine.Variant{Kernel: engine.QMM, Format: quant.DefaultFormat(quant.NVFP4), Act: quant.F16, Scale: quant.U8}
	defs, err = VariantDefines(fp)
	require.NoError(t, err)
	assert.Equal(t, Defines{Mode: 3, Bits: 4, Group: 16, Act: 1, Scale: 3}, defs)

	un := engine.Variant{Kernel: engine.Unpack, Format: quant.Format{Bits: 6}}
	defs, err = VariantDefines(un)
	require.NoError(t, err)
	assert.Equal(t, Defines{Bits: 6}, defs)

	_, err = VariantDefines(engine.Variant{Kernel: engine.QMV, Format: v.Format, Act: quant.F64, Scale: quant.F32})
	assert.ErrorIs(t, err, engine.ErrArgs)
	_, err = VariantDefines(engine.Variant{Kernel: engine.QMV, Format: v.Format, Act: quant.F32, Scale: quant.U32})
	assert.ErrorIs(t, err, engine.ErrArgs)

	u, err := CompileUnit(v)
	require.NoError(t, err)
	assert.Equal(t, "qmv.cu", u.File)
	assert.Equal(t, "qmv/mode=0,bits=3,group=128,act=2,scale=1", u.Name)
	assert.True(t, strings.HasPrefix(u.Source, defs0(t, v).Preamble("qmv.cu")))
	assert.Contains(t, u.Source, "mlxq_kernel")
}

func defs0(t *testing.T, v engine.Variant) Defines {
	d, err := VariantDefines(v)
	require.NoError(t, err)
	return d
}

func TestVariants(t *testing.T) {
	// Every variant the engine can ask of an advertised kernel is in the
	// list, and the list has no duplicates.
	seen := map[engine.Variant]bool{}
	names := map[string]bool{}
	for _, v := range BundleVariants() {
		assert.False(t, seen[v], "%v twice", v)
		seen[v] = true
		u, err := CompileUnit(v)
		require.NoError(t, err)
		assert.False(t, names[u.Name], "%s twice", u.Name)
		names[u.Name] = true
	}
	for _, k := range advertised() {
		if k == engine.Unpack {
			a := engine.UnpackArgs{Bits: 5}
			assert.True(t, seen[a.Variant()])
			continue
		}
		for _, f := range quant.Formats() {
			if k.Accepts(f) != nil {
				continue
			}
			st := quant.U8
			if f.Mode == quant.Affine {
				st = quant.BF16
			}
			assert.True(t, seen[engine.Variant{Kernel: k, Format: f, Act: quant.F16, Scale: st}], "%s %v", k, f)
		}
	}
}

func TestCacheKey(t *testing.T) {
	assert.NotEqual(t, cacheKey("ab", "c"), cacheKey("a", "bc"))
	assert.Equal(t, cacheKey("a", "b"), cacheKey("a", "b"))
	assert.Len(t, cacheKey(), 64)
}

func TestDiskCache(t *testing.T) {
	c := &diskCache{dir: filepath.Join(t.TempDir(), "sub")}
	_, ok := c.get("k")
	assert.False(t, ok)
	require.NoError(t, c.put("k", []byte("image")))
	got, ok := c.get("k")
	require.True(t, ok)
	assert.Equal(t, []byte("image"), got)
	raw, err := os.ReadFile(c.path("k"))
	require.NoError(t, err)
	for name, bad := range map[string][]byte{
		"flipped":   append(bytes.Clone(raw[:len(raw)-1]), raw[len(raw)-1]^1),
		"truncated": raw[:len(raw)-2],
		"short":     raw[:5],
		"magic":     append([]byte("XXXX"), raw[4:]...),
		"empty":     nil,
	} {
		require.NoError(t, os.WriteFile(c.path("k"), bad, 0o644))
		_, ok := c.get("k")
		assert.False(t, ok, name)
	}
	require.NoError(t, c.put("k", []byte("again")))
	got, ok = c.get("k")
	require.True(t, ok)
	assert.Equal(t, []byte("again"), got)
	entries, _ := os.ReadDir(c.dir)
	assert.Len(t, entries, 1, "temporary files left behind")
	var nilCache *diskCache
	_, ok = nilCache.get("k")
	assert.False(t, ok)
	assert.NoError(t, nilCache.put("k", nil))
}

func unpackVariant(bits int) engine.Variant {
	return engine.Variant{Kernel: engine.Unpack, Format: quant.Format{Bits: bits}}
}

func TestCompileCachePTX(t *testing.T) {
	dir := t.TempDir()
	f := newFakeGPU()
	d := openFake(t, f, false, dir)
	v := unpackVariant(4)
	c, err := d.Compile(v)
	require.NoError(t, err)
	assert.Equal(t, 1, f.links)
	assert.Equal(t, "FAKE:unpack/mode=0,bits=4,group=0,act=0,scale=0", f.modules[c.(*kernel).mod.handle])
	files, _ := filepath.Glob(filepath.Join(dir, "*.cubin"))
	require.Len(t, files, 1)

	// A second driver finds the entry.
	f2 := newFakeGPU()
	d2 := openFake(t, f2, false, dir)
	_, err = d2.Compile(v)
	require.NoError(t, err)
	assert.Equal(t, 0, f2.links)

	// A corrupt entry is ignored and rewritten.
	require.NoError(t, os.WriteFile(files[0], []byte("MLXQCUDA1\ngarbage"), 0o644))
	f3 := newFakeGPU()
	d3 := openFake(t, f3, false, dir)
	_, err = d3.Compile(v)
	require.NoError(t, err)
	assert.Equal(t, 1, f3.links)
	_, ok := d3.cache.get(filepath.Base(strings.TrimSuffix(files[0], ".cubin")))
	assert.True(t, ok)

	// A valid entry the driver rejects is rebuilt.
	require.NoError(t, (&diskCache{dir: dir}).put(filepath.Base(strings.TrimSuffix(files[0], ".cubin")), []byte("not an image\x00")))
	f4 := newFakeGPU()
	d4 := openFake(t, f4, false, dir)
	_, err = d4.Compile(v)
	require.NoError(t, err)
	assert.Equal(t, 1, f4.links)
}

func TestCompileNVRTC(t *testing.T) {
	dir := t.TempDir()
	f := newFakeGPU()
	d := openFake(t, f, true, dir)
	v := engine.Variant{Kernel: engine.QMV, Format: quant.DefaultFormat(quant.MXFP4), Act: quant.BF16, Scale: quant.U8}
	c, err := d.Compile(v)
	require.NoError(t, err)
	assert.Equal(t, "FAKE:qmv.cu bits=4", f.modules[c.(*kernel).mod.handle])
	assert.Contains(t, d.nvrtcOptions(), "--gpu-architecture=sm_90")
	assert.Contains(t, d.nvrtcOptions(), "-default-device")

	_, err = d.Compile(engine.Variant{Kernel: engine.Kernel(200)})
	assert.ErrorIs(t, err, engine.ErrUnsupported)

	f.loadCode = cudaErrorInvalidImage
	_, err = d.Compile(unpackVariant(3))
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrCUDA)
	assert.Contains(t, err.Error(), "cuModuleLoadData: CUDA_ERROR_INVALID_IMAGE: device kernel image is invalid")
}

// fakeDevice wraps a driver on a fake GPU in an engine device.
func fakeDevice(t *testing.T, f *fakeGPU, bank int) (*engine.Device, *Driver) {
	d := openFake(t, f, true, "")
	if bank > 0 {
		d.staging.maxBank = bank
	}
	return engine.NewDevice(Name, d), d
}

func TestRoundTrip(t *testing.T) {
	f := newFakeGPU()
	dev, _ := fakeDevice(t, f, 1000) // banks smaller than the transfers
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 3, 255, 256, 257, 999, 1000, 1001, 4097, 100_003} {
		b, err := dev.Alloc(quant.U8, n)
		require.NoError(t, err)
		zero := make([]byte, n)
		got := make([]byte, n)
		require.NoError(t, dev.Download(got, b))
		assert.Equal(t, zero, got, "fresh memory is zeroed")
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		require.NoError(t, dev.Upload(b, src))
		require.NoError(t, dev.Download(got, b))
		assert.Equal(t, src, got, "n=%d", n)
		part := got[:n/2+1]
		clear(part)
		require.NoError(t, dev.Download(part, b))
		assert.Equal(t, src[:len(part)], part)
		assert.ErrorIs(t, dev.Upload(b, make([]byte, n+1)), engine.ErrArgs)
		b.Free()
	}
	assert.Empty(t, f.dev, "device memory leaked")
}

func TestQueueOrder(t *testing.T) {
	f := newFakeGPU()
	dev, d := fakeDevice(t, f, 1000)
	const rows, cols, bits = 3, 64, 4
	packed := func(seed byte) []byte {
		w := make([]byte, rows*quant.RowBytes(cols, bits))
		for i := range w {
			w[i] = seed + byte(i)
		}
		return w
	}
	w, err := dev.Alloc(quant.U32, rows, cols*bits/32)
	require.NoError(t, err)
	c1, err := dev.Alloc(quant.U8, rows, cols)
	require.NoError(t, err)
	c2, err := dev.Alloc(quant.U8, rows, cols)
	require.NoError(t, err)

	// write w1, unpack into c1, write w2, unpack into c2: one commit.
	q := d.NewQueue()
	k, err := d.Compile(unpackVariant(bits))
	require.NoError(t, err)
	w1, w2 := packed(1), packed(100)
	src := bytes.Clone(w1)
	require.NoError(t, q.Write(w.Memory(), src))
	clear(src) // Write copied it
	require.NoError(t, q.Unpack(k, &engine.UnpackArgs{Rows: rows, Cols: cols, Bits: bits, W: w, Codes: c1}))
	require.NoError(t, q.Write(w.Memory(), w2))
	require.NoError(t, q.Unpack(k, &engine.UnpackArgs{Rows: rows, Cols: cols, Bits: bits, W: w, Codes: c2}))
	syncs := f.syncs
	require.NoError(t, q.Commit())
	// The staging banks grew on the way (a synchronisation); now at
	// their largest, another commit synchronises once.
	q2 := d.NewQueue()
	require.NoError(t, q2.Write(w.Memory(), w2))
	syncs = f.syncs
	require.NoError(t, q2.Commit())
	assert.Equal(t, syncs+1, f.syncs, "one synchronisation per commit")

	for i, want := range [][]byte{w1, w2} {
		exp := make([]byte, rows*cols)
		rb := quant.RowBytes(cols, bits)
		for r := range rows {
			quant.Unpack(exp[r*cols:(r+1)*cols], want[r*rb:(r+1)*rb], bits)
		}
		got := make([]byte, rows*cols)
		require.NoError(t, dev.Download(got, []*engine.Buffer{c1, c2}[i]))
		assert.Equal(t, exp, got, "unpack %d", i)
	}
	l := f.launches[len(f.launches)-1]
	assert.Equal(t, [3]uint32{256, 1, 1}, l.block)
	assert.Equal(t, uint64(rows), l.params[2])
	assert.Equal(t, uint64(cols), l.params[3])
}

func TestMatmulParams(t *testing.T) {
	f := newFakeGPU()
	dev, _ := fakeDevice(t, f, 0)
	fm := quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}
	const m, n, k = 5, 40, 64
	alloc := func(dt quant.DType, shape ...int) *engine.Buffer {
		b, err := dev.Alloc(dt, shape...)
		require.NoError(t, err)
		return b
	}
	a := &engine.MatmulArgs{
		Params: engine.Params{M: m, N: n, K: k, Format: fm, Act: quant.F16},
		X:      alloc(quant.F16, m, k), W: alloc(quant.U32, n, k*4/32),
		Scales: alloc(quant.BF16, n, k/32), Biases: alloc(quant.BF16, n, k/32),
		Y: alloc(quant.F16, m, n),
	}
	e := dev.NewEncoder()
	require.NoError(t, e.Matmul(engine.QMV, a))
	require.NoError(t, e.Commit())
	l := f.launches[len(f.launches)-1]
	ptr := func(b *engine.Buffer) uint64 { return b.Memory().(*memory).ptr }
	assert.Equal(t, [maxParams]uint64{ptr(a.X), ptr(a.W), ptr(a.Scales), ptr(a.Biases), 0, ptr(a.Y), m, n, k}, l.params)
	spec, _ := geometry(a.Variant(engine.QMV))
	assert.Equal(t, spec.grid(a.Params), l.grid)
	assert.Equal(t, spec.blockOf(a.Params), l.block)

	// A host check rejects a bad dtype before the driver sees it.
	bad := *a
	bad.X = alloc(quant.F32, m, k)
	launches := len(f.launches)
	e = dev.NewEncoder()
	assert.ErrorIs(t, e.Matmul(engine.QMV, &bad), engine.ErrArgs)
	require.NoError(t, e.Commit())
	assert.Len(t, f.launches, launches)

	// A failing launch is an error, not a crash.
	f.launchCode = 1
	e = dev.NewEncoder()
	require.NoError(t, e.Matmul(engine.QMV, a))
	err := e.Commit()
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrCUDA)
	assert.Contains(t, err.Error(), "cuLaunchKernel: CUDA_ERROR_INVALID_VALUE: invalid argument")
}

func TestLaunchChecks(t *testing.T) {
	f := newFakeGPU()
	d := openFake(t, f, true, "")
	q := d.NewQueue().(*queue)
	k := &kernel{variant: unpackVariant(4), mod: &module{}}
	k.spec = launchSpec{grid: func(engine.Params) [3]uint32 { return [3]uint32{1, 1, 1} }, block: [3]uint32{2048, 1, 1}}
	_, err := q.launch(k, engine.Params{})
	assert.ErrorContains(t, err, "2048 threads")
	k.spec = launchSpec{grid: func(engine.Params) [3]uint32 { return [3]uint32{0, 1, 1} }, block: [3]uint32{32, 1, 1}}
	_, err = q.launch(k, engine.Params{})
	assert.ErrorContains(t, err, "empty launch")
	k.spec = launchSpec{grid: func(engine.Params) [3]uint32 { return [3]uint32{1, 1, 1} }, block: [3]uint32{32, 1, 1},
		shared: func(engine.Params) uint32 { return 300 << 10 }}
	_, err = q.launch(k, engine.Params{})
	assert.ErrorContains(t, err, "shared memory")

	// Dynamic shared memory above 48 KiB is allowed once per function.
	k.spec.shared = func(engine.Params) uint32 { return 100 << 10 }
	k.mod.fn = 42
	o, err := q.launch(k, engine.Params{})
	require.NoError(t, err)
	require.NoError(t, d.exec.Do(func() error { return d.run([]op{o, o}) }))
	assert.Equal(t, int32(100<<10), f.funcAttr[42])
	assert.Equal(t, uint32(100<<10), k.mod.shared)
}

func TestClose(t *testing.T) {
	f := newFakeGPU()
	dev, d := fakeDevice(t, f, 0)
	b, err := dev.Alloc(quant.F32, 1000)
	require.NoError(t, err)
	require.NoError(t, dev.UploadFloat32(b, make([]float32, 1000)))
	_, err = d.Compile(unpackVariant(2))
	require.NoError(t, err)
	require.NotEmpty(t, f.host)
	require.NoError(t, dev.Close())
	assert.Empty(t, f.dev, "device memory")
	assert.Empty(t, f.host, "pinned memory")
	assert.Empty(t, f.modules, "modules")
	assert.Empty(t, f.events, "events")
	assert.Zero(t, f.retained, "context")
	assert.Zero(t, f.streams, "streams")
	b.Free() // after Close: harmless
	_, err = d.Alloc(10)
	assert.ErrorIs(t, err, engine.ErrClosed)
	assert.NoError(t, d.Close())
}

func TestTimer(t *testing.T) {
	f := newFakeGPU()
	dev, d := fakeDevice(t, f, 0)
	b, err := dev.Alloc(quant.U8, 64)
	require.NoError(t, err)
	runs := 0
	began := time.Now()
	times, err := d.Time(func() error {
		runs++
		q := d.NewQueue()
		if err := q.Write(b.Memory(), []byte{1, 2, 3}); err != nil {
			return err
		}
		return q.Commit()
	}, 2, 3)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(began), warmupTime, "warm-up runs last warmupTime")
	assert.Greater(t, runs, 5, "warm-up runs go on past the 2 asked for until warmupTime")
	assert.Equal(t, []time.Duration{1500 * time.Microsecond, 1500 * time.Microsecond, 1500 * time.Microsecond}, times)
	// Each timed run starts with the hold kernel, sized to its commit.
	holds := 0
	for _, l := range f.launches {
		if strings.Contains(l.image, "hold.cu") {
			holds++
			assert.Equal(t, uint64(holdFor(1).Nanoseconds()), l.params[0])
			assert.Equal(t, [3]uint32{1, 1, 1}, l.grid)
		}
	}
	assert.Equal(t, 3, holds, "one hold per timed run, none in the warm-up")
	assert.Equal(t, holdMax, holdFor(1000))
	_, err = d.Time(func() error { return nil }, 0, 1)
	assert.ErrorContains(t, err, "committed no work")
	boom := errors.New("boom")
	_, err = d.Time(func() error { return boom }, 0, 1)
	assert.ErrorIs(t, err, boom)
	assert.Len(t, f.events, 2, "only the staging events remain")
}

func TestConcurrentUse(t *testing.T) {
	f := newFakeGPU()
	dev, _ := fakeDevice(t, f, 4096)
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			errs <- func() error {
				for i := range 20 {
					n := 100 + 997*g + i
					b, err := dev.Alloc(quant.U8, n)
					if err != nil {
						return err
					}
					src := bytes.Repeat([]byte{byte(g), byte(i)}, n/2+1)[:n]
					if err := dev.Upload(b, src); err != nil {
						return err
					}
					got := make([]byte, n)
					if err := dev.Download(got, b); err != nil {
						return err
					}
					if !bytes.Equal(src, got) {
						return errors.New("round trip mismatch")
					}
					b.Free()
				}
				return nil
			}()
		}()
	}
	for range 8 {
		require.NoError(t, <-errs)
	}
}
