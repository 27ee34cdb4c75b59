package cuda

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/engine/enginetest"
	"github.com/mlxq/mlxq/quant"
)

// fakePTX is a module the fake GPU links; text makes modules differ.
func fakePTX(text string) []byte {
	return []byte(".version 8.0\n.target sm_90\n// " + text + "\n.visible .entry mlxq_kernel()\n{\n\tret;\n}\n")
}

func fixedLaunch(grid, block [3]uint32, shared uint32) func(engine.Params) ([3]uint32, [3]uint32, uint32) {
	return func(engine.Params) ([3]uint32, [3]uint32, uint32) { return grid, block, shared }
}

func TestLoadPTXArgs(t *testing.T) {
	f := newFakeGPU()
	d := openFake(t, f, false, "")
	launch := fixedLaunch([3]uint32{1, 1, 1}, [3]uint32{32, 1, 1}, 0)
	for _, c := range []struct {
		what, name string
		ptx        []byte
		launch     func(engine.Params) ([3]uint32, [3]uint32, uint32)
		msg        string
	}{
		{"no name", "", fakePTX("a"), launch, "no name"},
		{"nil launch", "k", fakePTX("a"), nil, "k: no launch"},
		{"empty PTX", "k", nil, launch, "k: empty PTX"},
		{"no entry", "k", []byte(".version 8.0\n.target sm_90\n.visible .entry other()\n{\n}\n"), launch, "no .entry mlxq_kernel"},
	} {
		_, err := d.LoadPTX(c.name, c.ptx, c.launch)
		assert.ErrorIs(t, err, engine.ErrArgs, c.what)
		assert.ErrorContains(t, err, c.msg, c.what)
	}
	assert.Zero(t, f.links, "nothing linked")

	c, err := d.LoadPTX("k", fakePTX("a"), launch)
	require.NoError(t, err)
	k, ok := c.(*kernel)
	require.True(t, ok, "%T", c)
	assert.Equal(t, "k", k.String())
	assert.Equal(t, "FAKE:k", f.modules[k.mod.handle])
	// The same PTX is linked once.
	_, err = d.LoadPTX("k2", fakePTX("a"), launch)
	require.NoError(t, err)
	assert.Equal(t, 1, f.links)

	require.NoError(t, d.Close())
	_, err = d.LoadPTX("k3", fakePTX("b"), launch)
	assert.ErrorIs(t, err, engine.ErrClosed)
}

func TestLoadPTXLaunch(t *testing.T) {
	f := newFakeGPU()
	dev, d := fakeDevice(t, f, 0)
	alloc := func(dt quant.DType, shape ...int) *engine.Buffer {
		b, err := dev.Alloc(dt, shape...)
		require.NoError(t, err)
		t.Cleanup(b.Free)
		return b
	}
	ptr := func(b *engine.Buffer) uint64 { return b.Memory().(*memory).ptr }

	// Unpack: the fake runs a module named for unpack with the bits in
	// its name, so the codes show that the arguments arrived.
	const rows, cols, bits = 3, 96, 5
	var seen engine.Params
	c, err := d.LoadPTX("unpack bits=5", fakePTX("unpack"), func(p engine.Params) (grid, block [3]uint32, shared uint32) {
		seen = p
		return [3]uint32{7, 1, 1}, [3]uint32{64, 1, 1}, 0
	})
	require.NoError(t, err)
	rb := quant.RowBytes(cols, bits)
	w := alloc(quant.U32, rows, rb/4)
	src := make([]byte, rows*rb)
	for i := range src {
		src[i] = byte(i*7 + 1)
	}
	require.NoError(t, dev.Upload(w, src))
	codes := alloc(quant.U8, rows, cols)
	q := d.NewQueue()
	require.NoError(t, q.Unpack(c, &engine.UnpackArgs{Rows: rows, Cols: cols, Bits: bits, W: w, Codes: codes}))
	require.NoError(t, q.Commit())
	assert.Equal(t, rows, seen.N)
	assert.Equal(t, cols, seen.K)
	l := f.launches[len(f.launches)-1]
	assert.Equal(t, [3]uint32{7, 1, 1}, l.grid)
	assert.Equal(t, [3]uint32{64, 1, 1}, l.block)
	assert.Equal(t, [maxParams]uint64{ptr(w), ptr(codes), rows, cols}, l.params)
	got := make([]byte, rows*cols)
	require.NoError(t, dev.Download(got, codes))
	want := make([]byte, rows*cols)
	for r := range rows {
		quant.Unpack(want[r*cols:(r+1)*cols], src[r*rb:(r+1)*rb], bits)
	}
	assert.Equal(t, want, got)

	// Matmul: the launch's shared memory above 48 KiB is allowed on the
	// function first.
	const m, n, k = 5, 40, 64
	fm := quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}
	c, err = d.LoadPTX("qmm", fakePTX("qmm"), func(p engine.Params) (grid, block [3]uint32, shared uint32) {
		seen = p
		return [3]uint32{uint32(p.N), uint32(p.M), 2}, [3]uint32{128, 1, 1}, 64 << 10
	})
	require.NoError(t, err)
	a := &engine.MatmulArgs{
		Params: engine.Params{M: m, N: n, K: k, Format: fm, Act: quant.F16},
		X:      alloc(quant.F16, m, k), W: alloc(quant.U32, n, k*4/32),
		Scales: alloc(quant.BF16, n, k/32), Biases: alloc(quant.BF16, n, k/32),
		Bias: alloc(quant.F32, n), Y: alloc(quant.F16, m, n),
	}
	q = d.NewQueue()
	require.NoError(t, q.Matmul(c, a))
	require.NoError(t, q.Commit())
	assert.Equal(t, a.Params, seen)
	l = f.launches[len(f.launches)-1]
	assert.Equal(t, "FAKE:qmm", l.image)
	assert.Equal(t, [3]uint32{n, m, 2}, l.grid)
	assert.Equal(t, [3]uint32{128, 1, 1}, l.block)
	assert.Equal(t, uint32(64<<10), l.shared)
	assert.Equal(t, [maxParams]uint64{ptr(a.X), ptr(a.W), ptr(a.Scales), ptr(a.Biases), ptr(a.Bias), ptr(a.Y), m, n, k}, l.params)
	assert.Equal(t, int32(64<<10), f.funcAttr[c.(*kernel).mod.fn])

	// The device's limits apply, and messages name the kernel.
	c, err = d.LoadPTX("wide", fakePTX("wide"), fixedLaunch([3]uint32{1, 1, 1}, [3]uint32{2048, 1, 1}, 0))
	require.NoError(t, err)
	err = d.NewQueue().Matmul(c, a)
	assert.ErrorContains(t, err, "wide: block [2048 1 1] has 2048 threads")
	c, err = d.LoadPTX("huge", fakePTX("huge"), fixedLaunch([3]uint32{1, 1, 1}, [3]uint32{32, 1, 1}, 300<<10))
	require.NoError(t, err)
	err = d.NewQueue().Matmul(c, a)
	assert.ErrorContains(t, err, "huge: 307200 bytes of shared memory")
}

// TestGPULoadPTX loads kernels of the embedded PTX bundle through LoadPTX
// with the backend's own geometry, and checks that they compute what the
// same variants compute through Compile.
func TestGPULoadPTX(t *testing.T) {
	t.Setenv(EnvPTX, "1")
	t.Setenv(EnvCache, "off")
	t.Setenv(EnvCUBLAS, "off")
	dev, d := openGPU(t)
	b, err := embeddedBundle()
	require.NoError(t, err)
	load := func(v engine.Variant) engine.Compiled {
		t.Helper()
		u, err := CompileUnit(v)
		require.NoError(t, err)
		ptx, ok := b.PTX(u.Name)
		require.True(t, ok, u.Name)
		spec, ok := geometry(v)
		require.True(t, ok, u.Name)
		c, err := d.LoadPTX(u.Name, ptx, func(p engine.Params) (grid, block [3]uint32, shared uint32) {
			if spec.shared != nil {
				shared = spec.shared(p)
			}
			return spec.grid(p), spec.blockOf(p), shared
		})
		require.NoError(t, err)
		return c
	}
	compile := func(v engine.Variant) engine.Compiled {
		t.Helper()
		c, err := d.Compile(v)
		require.NoError(t, err)
		return c
	}

	rng := rand.New(rand.NewPCG(21, 22))
	const m, n, k = 9, 72, 256
	f := quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}
	l := enginetest.NewLayer(t, dev, rng, f, quant.BF16, n, k, true)
	for _, c := range []struct {
		kern engine.Kernel
		act  quant.DType
	}{{engine.QMV, quant.F32}, {engine.QMV, quant.BF16}, {engine.QMM, quant.F16}, {engine.SIMD4GS64, quant.BF16}} {
		v := l.Variant(c.kern, c.act)
		x := enginetest.RandomX(rng, c.act, m, k)
		run := func(ck engine.Compiled) []float32 {
			t.Helper()
			xb, err := dev.Alloc(c.act, m, k)
			require.NoError(t, err)
			defer xb.Free()
			require.NoError(t, dev.Upload(xb, c.act.Bytes(x)))
			yb, err := dev.Alloc(c.act, m, n)
			require.NoError(t, err)
			defer yb.Free()
			poison := make([]float32, m*n)
			for i := range poison {
				poison[i] = float32(math.NaN())
			}
			require.NoError(t, dev.Upload(yb, c.act.Bytes(poison)))
			q := d.NewQueue()
			require.NoError(t, q.Matmul(ck, l.Args(t, c.kern, m, xb, yb)))
			require.NoError(t, q.Commit())
			y := make([]float32, m*n)
			require.NoError(t, dev.DownloadFloat32(y, yb))
			return y
		}
		got := run(load(v))
		assert.Equal(t, run(compile(v)), got, "%v", v)
		ref := quant.Reference(x, m, l.Matrix, l.Bias)
		assert.LessOrEqual(t, quant.RelErr(got, ref), d.Precision(v).Tolerance(), "%v", v)
	}

	const rows, cols, bits = 13, 96, 3
	w := enginetest.NewLayer(t, dev, rng, quant.Format{Mode: quant.Affine, Bits: bits, GroupSize: 32}, quant.F32, rows, cols, false)
	unpack := func(ck engine.Compiled) []byte {
		t.Helper()
		codes, err := dev.Alloc(quant.U8, rows, cols)
		require.NoError(t, err)
		defer codes.Free()
		q := d.NewQueue()
		require.NoError(t, q.Unpack(ck, &engine.UnpackArgs{Rows: rows, Cols: cols, Bits: bits, W: w.Weights(t, engine.Packed), Codes: codes}))
		require.NoError(t, q.Commit())
		out := make([]byte, rows*cols)
		require.NoError(t, dev.Download(out, codes))
		return out
	}
	want := make([]byte, rows*cols)
	for r := range rows {
		quant.Unpack(want[r*cols:(r+1)*cols], w.Matrix.Row(r), bits)
	}
	uv := unpackVariant(bits)
	assert.Equal(t, want, unpack(load(uv)))
	assert.Equal(t, want, unpack(compile(uv)))
}
