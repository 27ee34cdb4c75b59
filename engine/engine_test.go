package engine

import (
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/quant"
)

func TestKernelCatalog(t *testing.T) {
	names := []string{"per_element", "tiled", "simd", "simd4", "simd4_gs64", "packed_simd4_b4", "unpack", "qmv", "qmm", "embed", "gather_qmv", "gather_qmm"}
	require.Len(t, Kernels(), len(names))
	for i, k := range Kernels() {
		assert.Equal(t, names[i], k.String())
		got, err := ParseKernel(names[i])
		require.NoError(t, err)
		assert.Equal(t, k, got)
	}
	assert.Equal(t, []Kernel{PerElement, Tiled, SIMD, SIMD4, SIMD4GS64, PackedSIMD4B4, QMV, QMM}, MatmulKernels())
	assert.Equal(t, []Kernel{GatherQMV, GatherQMM}, GatherKernels())
	for _, k := range GatherKernels() {
		assert.Positive(t, k.Spec().TileRows, k)
	}
	_, err := ParseKernel("qmv_fast")
	assert.ErrorIs(t, err, ErrArgs)
	assert.ErrorContains(t, err, `unknown kernel "qmv_fast"`)
}

func TestKernelAccepts(t *testing.T) {
	tests := []struct {
		k   Kernel
		f   quant.Format
		err string
	}{
		{PerElement, quant.Format{Mode: quant.Affine, Bits: 3, GroupSize: 128}, ""},
		{PerElement, quant.Format{Mode: quant.NVFP4, Bits: 4, GroupSize: 16}, ""},
		{PerElement, quant.Format{Mode: quant.Affine, Bits: 7, GroupSize: 32}, "affine bits 7"},
		{Tiled, quant.Format{Mode: quant.Affine, Bits: 5, GroupSize: 32}, ""},
		{Tiled, quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}, "tiled: group size 64, want [32]"},
		{SIMD, quant.Format{Mode: quant.MXFP4, Bits: 4, GroupSize: 32}, "simd: mode mxfp4, want [affine]"},
		{SIMD4, quant.Format{Mode: quant.Affine, Bits: 8, GroupSize: 32}, ""},
		{SIMD4GS64, quant.Format{Mode: quant.Affine, Bits: 2, GroupSize: 64}, ""},
		{SIMD4GS64, quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}, "simd4_gs64: group size 32, want [64]"},
		{PackedSIMD4B4, quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}, ""},
		{PackedSIMD4B4, quant.Format{Mode: quant.Affine, Bits: 8, GroupSize: 32}, "packed_simd4_b4: bits 8, want [4]"},
		{PackedSIMD4B4, quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}, "packed_simd4_b4: group size 64"},
		{QMV, quant.Format{Mode: quant.Affine, Bits: 3, GroupSize: 128}, ""},
		{QMV, quant.Format{Mode: quant.NVFP4, Bits: 4, GroupSize: 16}, ""},
		{QMM, quant.Format{Mode: quant.Affine, Bits: 6, GroupSize: 64}, ""},
		{QMM, quant.Format{Mode: quant.MXFP8, Bits: 8, GroupSize: 32}, ""},
		{QMM, quant.Format{Mode: quant.MXFP8, Bits: 4, GroupSize: 32}, "mxfp8 takes bits 8"},
	}
	for _, tt := range tests {
		err := tt.k.Accepts(tt.f)
		if tt.err == "" {
			assert.NoError(t, err, "%v %v", tt.k, tt.f)
			continue
		}
		assert.ErrorIs(t, err, ErrArgs)
		assert.ErrorContains(t, err, tt.err)
	}
}

func TestPlanFor(t *testing.T) {
	seed := []Kernel{PerElement, Tiled, SIMD, SIMD4, SIMD4GS64, PackedSIMD4B4, Unpack}
	f := func(m quant.Mode, bits, gs int) quant.Format { return quant.Format{Mode: m, Bits: bits, GroupSize: gs} }
	at := func(f quant.Format, m int) Params { return Params{M: m, N: 64, K: 256, Format: f, Act: quant.F32} }
	tests := []struct {
		f       quant.Format
		kernels []Kernel
		want    Plan
	}{
		// The seed's rules, on a device without the packed kernels.
		{f(quant.Affine, 4, 32), seed, Plan{PackedSIMD4B4, Packed}},
		{f(quant.Affine, 4, 64), seed, Plan{SIMD4GS64, Codes}},
		{f(quant.Affine, 8, 32), seed, Plan{SIMD4, Codes}},
		{f(quant.Affine, 3, 32), seed, Plan{SIMD4, Codes}},
		{f(quant.Affine, 2, 64), seed, Plan{SIMD4GS64, Codes}},
		{f(quant.Affine, 4, 128), seed, Plan{PerElement, Codes}},
		{f(quant.Affine, 6, 128), seed, Plan{PerElement, Codes}},
		{f(quant.MXFP4, 4, 32), seed, Plan{PerElement, Codes}},
		{f(quant.MXFP8, 8, 32), seed, Plan{PerElement, Codes}},
		{f(quant.NVFP4, 4, 16), seed, Plan{PerElement, Codes}},
		// A device lacking a kernel falls through to the next rule.
		{f(quant.Affine, 4, 32), []Kernel{SIMD4, PerElement, Unpack}, Plan{SIMD4, Codes}},
		{f(quant.Affine, 4, 64), []Kernel{PerElement, Unpack}, Plan{PerElement, Codes}},
		// One packed kernel alone runs every M.
		{f(quant.Affine, 5, 128), append(seed, QMV), Plan{QMV, Packed}},
		{f(quant.NVFP4, 4, 16), append(seed, QMM), Plan{QMM, Packed}},
	}
	for _, tt := range tests {
		for _, m := range []int{1, 7, 128, 4096} {
			got, err := PlanFor(at(tt.f, m), tt.kernels, 8)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got, "%v at M=%d", tt.f, m)
		}
	}
	// With both packed kernels every format runs packed: QMV up to the
	// crossover, QMM above it.
	for _, fm := range []quant.Format{f(quant.Affine, 4, 32), f(quant.Affine, 4, 64), f(quant.Affine, 2, 128), f(quant.MXFP8, 8, 32), f(quant.NVFP4, 4, 16)} {
		for m, want := range map[int]Kernel{1: QMV, 7: QMV, 8: QMV, 9: QMM, 4096: QMM} {
			got, err := PlanFor(at(fm, m), Kernels(), 8)
			require.NoError(t, err)
			assert.Equal(t, Plan{want, Packed}, got, "%v at M=%d", fm, m)
		}
		got, err := PlanFor(at(fm, 1), Kernels(), 0)
		require.NoError(t, err)
		assert.Equal(t, Plan{QMM, Packed}, got, "crossover 0")
	}
	_, err := PlanFor(at(f(quant.Affine, 4, 128), 1), []Kernel{SIMD4}, 0)
	assert.ErrorIs(t, err, ErrUnsupported)
	_, err = PlanFor(at(f(quant.Affine, 7, 32), 1), Kernels(), 8)
	assert.ErrorIs(t, err, quant.ErrFormat)
	_, err = PlanFor(at(f(quant.Affine, 4, 32), 0), Kernels(), 8)
	assert.ErrorIs(t, err, ErrArgs)
	assert.Equal(t, "simd4 (codes)", Plan{SIMD4, Codes}.String())

	// Device.Plan asks the driver for its crossover; a device without
	// both packed kernels has none.
	drv := newFake()
	drv.crossover = 3
	d := NewDevice("fake", drv)
	assert.Equal(t, 3, d.Crossover(at(f(quant.Affine, 4, 64), 1)))
	p, err := d.Plan(at(f(quant.Affine, 4, 64), 4))
	require.NoError(t, err)
	assert.Equal(t, Plan{QMM, Packed}, p)
	assert.Zero(t, NewDevice("fake", newFake(append(seed, QMV)...)).Crossover(at(f(quant.Affine, 4, 64), 1)))
}

func TestMetaRoundTrip(t *testing.T) {
	p := Params{M: 3, N: 4096, K: 14336, Format: quant.Format{Mode: quant.NVFP4, Bits: 4, GroupSize: 16}, Act: quant.BF16}
	b := p.Meta()
	require.Len(t, b, MetaBytes)
	got, err := ParseMeta(b)
	require.NoError(t, err)
	assert.Equal(t, p, got)
	_, err = ParseMeta(b[:16])
	assert.ErrorIs(t, err, ErrArgs)
}

// matmulCase allocates valid operands for a dispatch of kernel k.
type matmulCase struct {
	dev  *Device
	args *MatmulArgs
}

func newMatmulCase(t *testing.T, k Kernel, f quant.Format, scaleType quant.DType) matmulCase {
	t.Helper()
	d := NewDevice("fake", newFake())
	m, n, kk, maxSeq := 3, 16, 128, 8
	alloc := func(dt quant.DType, shape ...int) *Buffer {
		b, err := d.Alloc(dt, shape...)
		require.NoError(t, err)
		return b
	}
	a := &MatmulArgs{Params: Params{M: m, N: n, K: kk, Format: f, Act: quant.F32}}
	a.X = alloc(quant.F32, maxSeq, kk)
	a.Y = alloc(quant.F32, maxSeq, n)
	if k.Spec().Layout == Packed {
		a.W = alloc(quant.U32, n, kk*f.Bits/32)
	} else {
		a.W = alloc(quant.U8, n, kk)
	}
	a.Scales = alloc(scaleType, n, kk/f.GroupSize)
	if f.Mode == quant.Affine {
		a.Biases = alloc(scaleType, n, kk/f.GroupSize)
	}
	return matmulCase{d, a}
}

func TestCheckMatmulValid(t *testing.T) {
	for _, k := range MatmulKernels() {
		f := quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 128}
		if gs := k.Spec().GroupSizes; gs != nil {
			f.GroupSize = gs[0]
		}
		for _, st := range []quant.DType{quant.F32, quant.F16, quant.BF16} {
			c := newMatmulCase(t, k, f, st)
			assert.NoError(t, CheckMatmul(c.dev, k, c.args), "%v %v", k, st)
			for _, act := range []quant.DType{quant.F16, quant.BF16} {
				c.args.Act, c.args.X, c.args.Y = act, c.realloc(act, 8, 128), c.realloc(act, 8, 16)
				assert.NoError(t, CheckMatmul(c.dev, k, c.args), "%v %v scales, %v x", k, st, act)
			}
		}
	}
	c := newMatmulCase(t, PerElement, quant.Format{Mode: quant.MXFP4, Bits: 4, GroupSize: 32}, quant.U8)
	assert.NoError(t, CheckMatmul(c.dev, PerElement, c.args))
}

// Every host-side check has a case that makes it fail.
func TestCheckMatmulRejects(t *testing.T) {
	b4g32 := quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}
	tests := []struct {
		name   string
		k      Kernel
		mutate func(c matmulCase)
		err    string
	}{
		{"M zero", SIMD4, func(c matmulCase) { c.args.M = 0 }, "M, N, K = 0, 16, 128, want all > 0"},
		{"N negative", SIMD4, func(c matmulCase) { c.args.N = -1 }, "want all > 0"},
		{"K zero", SIMD4, func(c matmulCase) { c.args.K = 0 }, "want all > 0"},
		{"K not multiple of group", SIMD4, func(c matmulCase) { c.args.K = 96 + 16 }, "K = 112 not a multiple of group size 32"},
		{"group for simd4_gs64", SIMD4GS64, func(c matmulCase) {}, "group size 32, want [64]"},
		{"group for tiled", Tiled, func(c matmulCase) { c.args.GroupSize = 64 }, "group size 64, want [32]"},
		{"bits for packed", PackedSIMD4B4, func(c matmulCase) { c.args.Bits = 8 }, "bits 8, want [4]"},
		{"bits 7", PerElement, func(c matmulCase) { c.args.Bits = 7 }, "affine bits 7"},
		{"unknown mode", PerElement, func(c matmulCase) { c.args.Mode = 9 }, "mode Mode(9)"},
		{"x dtype", SIMD4, func(c matmulCase) { c.args.X = c.realloc(quant.F16, 8, 128) }, "x dtype F16, want F32"},
		{"y dtype", QMV, func(c matmulCase) { c.args.Y = c.realloc(quant.BF16, 8, 16) }, "y dtype BF16, want F32"},
		{"x, y of another act", QMM, func(c matmulCase) { c.args.Act = quant.F16 }, "x dtype F32, want F16"},
		{"act dtype", QMV, func(c matmulCase) { c.args.Act = quant.F64 }, "activation dtype F64, want F32, F16 or BF16"},
		{"act unset", QMV, func(c matmulCase) { c.args.Act = quant.InvalidDType }, "activation dtype invalid"},
		{"x too short", SIMD4, func(c matmulCase) { c.args.X = c.realloc(quant.F32, 2, 128) }, "x holds 256 elements (1024 bytes), want at least 384"},
		{"y too short", SIMD4, func(c matmulCase) { c.args.Y = c.realloc(quant.F32, 47) }, "y holds 47 elements (188 bytes), want at least 48"},
		{"w layout", PackedSIMD4B4, func(c matmulCase) { c.args.W = c.realloc(quant.U8, 16, 128) }, "w dtype U8, want U32"},
		{"w count", SIMD4, func(c matmulCase) { c.args.W = c.realloc(quant.U8, 16, 127) }, "w holds 2032 elements, want 2048"},
		{"w packed count", PackedSIMD4B4, func(c matmulCase) { c.args.W = c.realloc(quant.U32, 17, 16) }, "w holds 272 elements, want 256"},
		{"scales dtype", SIMD4, func(c matmulCase) { c.args.Scales = c.realloc(quant.U8, 16, 4) }, "scales dtype U8, want F32, F16 or BF16"},
		{"scales count", SIMD4, func(c matmulCase) { c.args.Scales = c.realloc(quant.F16, 16, 2) }, "scales holds 32 elements, want 64"},
		{"scales nil", SIMD4, func(c matmulCase) { c.args.Scales = nil }, "scales buffer is nil"},
		{"biases dtype", SIMD4, func(c matmulCase) { c.args.Biases = c.realloc(quant.BF16, 16, 4) }, "biases dtype BF16, want F16"},
		{"biases missing", SIMD4, func(c matmulCase) { c.args.Biases = nil }, "biases buffer is nil"},
		{"biases count", SIMD4, func(c matmulCase) { c.args.Biases = c.realloc(quant.F16, 16, 3) }, "biases holds 48 elements, want 64"},
		{"bias count", SIMD4, func(c matmulCase) { c.args.Bias = c.realloc(quant.F32, 15) }, "bias holds 15 elements, want 16"},
		{"bias dtype", SIMD4, func(c matmulCase) { c.args.Bias = c.realloc(quant.BF16, 16) }, "bias dtype BF16, want F32"},
		{"y aliases x", SIMD4, func(c matmulCase) { c.args.Y = c.args.X; c.args.M, c.args.N = 1, 16 }, "y aliases an input"},
		{"freed", SIMD4, func(c matmulCase) { c.args.W.Free() }, "w buffer was freed"},
		{"other device", SIMD4, func(c matmulCase) {
			other := NewDevice("other", newFake())
			c.args.X, _ = other.Alloc(quant.F32, 8, 128)
		}, "x buffer belongs to device other, not fake"},
		{"unpack as matmul", Unpack, func(c matmulCase) {}, "unpack is not a matrix product kernel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newMatmulCase(t, tt.k, b4g32, quant.F16)
			tt.mutate(c)
			err := CheckMatmul(c.dev, tt.k, c.args)
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrArgs) || errors.Is(err, ErrClosed), "%v", err)
			assert.ErrorContains(t, err, tt.err)
		})
	}

	// The floating-point modes take U8 scales and no biases.
	c := newMatmulCase(t, PerElement, quant.Format{Mode: quant.MXFP8, Bits: 8, GroupSize: 32}, quant.U8)
	c.args.Biases = c.realloc(quant.U8, 16, 4)
	assert.ErrorContains(t, CheckMatmul(c.dev, PerElement, c.args), "mxfp8 takes no biases buffer")
	c.args.Biases = nil
	c.args.Scales = c.realloc(quant.F16, 16, 4)
	assert.ErrorContains(t, CheckMatmul(c.dev, PerElement, c.args), "scales dtype F16, want U8")
}

func (c matmulCase) realloc(dt quant.DType, shape ...int) *Buffer {
	b, err := c.dev.Alloc(dt, shape...)
	if err != nil {
		panic(err)
	}
	return b
}

func TestCheckUnpack(t *testing.T) {
	d := NewDevice("fake", newFake())
	alloc := func(dt quant.DType, shape ...int) *Buffer {
		b, err := d.Alloc(dt, shape...)
		require.NoError(t, err)
		return b
	}
	valid := func() *UnpackArgs {
		return &UnpackArgs{Rows: 4, Cols: 96, Bits: 3, W: alloc(quant.U32, 4, 9), Codes: alloc(quant.U8, 4, 96)}
	}
	require.NoError(t, CheckUnpack(d, valid()))
	tests := []struct {
		name   string
		mutate func(a *UnpackArgs)
		err    string
	}{
		{"rows", func(a *UnpackArgs) { a.Rows = 0 }, "rows, cols = 0, 96"},
		{"bits", func(a *UnpackArgs) { a.Bits = 7 }, "bits 7"},
		{"partial word", func(a *UnpackArgs) { a.Cols = 4 }, "4 codes of 3 bits do not fill whole words"},
		{"w count", func(a *UnpackArgs) { a.W = alloc(quant.U32, 4, 8) }, "w holds 32 elements, want 36"},
		{"codes dtype", func(a *UnpackArgs) { a.Codes = alloc(quant.U32, 4, 96) }, "codes dtype U32, want U8"},
	}
	for _, tt := range tests {
		a := valid()
		tt.mutate(a)
		err := CheckUnpack(d, a)
		assert.ErrorIs(t, err, ErrArgs, tt.name)
		assert.ErrorContains(t, err, tt.err, tt.name)
	}
}

func TestEncoderRecordsInOrderAndCachesKernels(t *testing.T) {
	c := newMatmulCase(t, SIMD4, quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}, quant.BF16)
	drv := c.dev.drv.(*fakeDriver)
	e := c.dev.NewEncoder()
	require.NoError(t, e.Matmul(SIMD4, c.args))
	second := *c.args
	c.args.M = 2 // after recording: not seen by the first dispatch
	second.M = 1
	require.NoError(t, e.Matmul(SIMD4, &second))
	c.args.M = 3
	assert.Equal(t, 2, e.Len())
	assert.Empty(t, drv.ran, "nothing runs before Commit")
	require.NoError(t, e.Commit())
	// Each kernel got the parameters recorded with it, in order, though
	// the caller changed its arguments in between.
	assert.Equal(t, []string{"simd4 M=3 N=16 K=128", "simd4 M=1 N=16 K=128"}, drv.ran)
	v := Variant{Kernel: SIMD4, Format: c.args.Format, Act: quant.F32, Scale: quant.BF16}
	assert.Equal(t, map[Variant]int{v: 1}, drv.compiles, "compiled once, then cached")
	assert.Equal(t, "simd4 affine 4-bit group 32, F32 x, BF16 scales", v.String())

	// Another activation dtype is another variant.
	e = c.dev.NewEncoder()
	half := *c.args
	half.Act, half.X, half.Y = quant.F16, c.realloc(quant.F16, 8, 128), c.realloc(quant.F16, 8, 16)
	require.NoError(t, e.Matmul(SIMD4, &half))
	require.NoError(t, e.Commit())
	v.Act = quant.F16
	assert.Equal(t, 1, drv.compiles[v])

	assert.ErrorIs(t, e.Commit(), ErrClosed)
	assert.ErrorIs(t, e.Matmul(SIMD4, c.args), ErrClosed)

	// A check failure records nothing.
	e = c.dev.NewEncoder()
	bad := *c.args
	bad.K = 100
	assert.ErrorIs(t, e.Matmul(SIMD4, &bad), ErrArgs)
	assert.Zero(t, e.Len())
}

func TestEncoderUnsupportedKernel(t *testing.T) {
	c := newMatmulCase(t, SIMD4, quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}, quant.F32)
	c.dev = NewDevice("fake", newFake(PerElement, Unpack))
	c.args.X, c.args.W, c.args.Scales, c.args.Biases, c.args.Y = c.realloc(quant.F32, 8, 128),
		c.realloc(quant.U8, 16, 128), c.realloc(quant.F32, 16, 4), c.realloc(quant.F32, 16, 4),
		c.realloc(quant.F32, 8, 16)
	err := c.dev.NewEncoder().Matmul(SIMD4, c.args)
	assert.ErrorIs(t, err, ErrUnsupported)
	assert.NoError(t, c.dev.NewEncoder().Matmul(PerElement, c.args))
	assert.False(t, c.dev.Supports(SIMD4))
	assert.Equal(t, []Kernel{PerElement, Unpack}, c.dev.Kernels())
}

func TestBuffers(t *testing.T) {
	d := NewDevice("fake", newFake())
	b, err := d.Alloc(quant.BF16, 3, 5)
	require.NoError(t, err)
	assert.Equal(t, 15, b.Len())
	assert.Equal(t, 30, b.Bytes())
	assert.Equal(t, []int{3, 5}, b.Shape())
	assert.Equal(t, "BF16[3 5]", b.String())

	_, err = d.Alloc(quant.F32, 4, 0)
	assert.ErrorIs(t, err, ErrArgs)
	_, err = d.Alloc(quant.InvalidDType, 4)
	assert.ErrorIs(t, err, ErrArgs)
	assert.ErrorContains(t, d.Upload(b, make([]byte, 31)), "upload of 31 bytes into BF16[3 5] (30 bytes)")
	require.NoError(t, d.UploadFloat32(b, []float32{1, 1.00390625, 3.1415926}))
	back := make([]float32, 3)
	require.NoError(t, d.DownloadFloat32(back, b))
	assert.Equal(t, []float32{1, 1, 3.140625}, back, "rounded to bfloat16, nearest even")
	u, err := d.Alloc(quant.U8, 4)
	require.NoError(t, err)
	assert.ErrorContains(t, d.UploadFloat32(u, []float32{1}), "float32 upload into U8[4]")
	assert.ErrorContains(t, d.DownloadFloat32(back, u), "float32 download from U8[4]")

	f, err := d.Alloc(quant.F32, 4)
	require.NoError(t, err)
	require.NoError(t, d.UploadFloat32(f, []float32{1, -2.5, 3}))
	got := make([]float32, 3)
	require.NoError(t, d.DownloadFloat32(got, f))
	assert.Equal(t, []float32{1, -2.5, 3}, got)

	f.Free()
	f.Free()
	assert.ErrorIs(t, d.DownloadFloat32(got, f), ErrClosed)
	require.NoError(t, d.Close())
	_, err = d.Alloc(quant.F32, 1)
	assert.ErrorIs(t, err, ErrClosed)
}

func TestRegistry(t *testing.T) {
	Register("test-gpu", 100, func() (Driver, error) { return nil, errors.New("no device found") })
	Register("test-cpu", -100, func() (Driver, error) { return newFake(), nil })
	assert.Panics(t, func() { Register("test-cpu", 0, nil) })
	assert.Panics(t, func() { Register(Auto, 0, nil) })

	names := Backends()
	assert.Less(t, slices.Index(names, "test-gpu"), slices.Index(names, "test-cpu"))

	_, err := Open("test-gpu")
	assert.ErrorIs(t, err, ErrUnavailable)
	assert.ErrorContains(t, err, "backend test-gpu: backend not available: no device found")

	d, err := Open("test-cpu")
	require.NoError(t, err)
	assert.Equal(t, "test-cpu", d.Backend())
	assert.Equal(t, "fake device", d.Name())

	_, err = Open("tpu")
	assert.ErrorIs(t, err, ErrUnknownBackend)
	assert.ErrorContains(t, err, `unknown backend "tpu", want auto or one of`)
}

func TestPrecision(t *testing.T) {
	assert.Equal(t, []float64{1e-5, 1e-3, 1e-2, 1e-2}, []float64{Float32.Tolerance(), TF32.Tolerance(), Float16.Tolerance(), BFloat16.Tolerance()})
	assert.Equal(t, "bfloat16", BFloat16.String())
	assert.Equal(t, Float16, ActPrecision(quant.F16))
	assert.Equal(t, BFloat16, ActPrecision(quant.BF16))
	assert.Equal(t, Float32, ActPrecision(quant.F32))
	for s, want := range map[string]quant.DType{"f32": quant.F32, "F16": quant.F16, "bfloat16": quant.BF16, "bf16": quant.BF16} {
		got, err := ParseActDType(s)
		require.NoError(t, err)
		assert.Equal(t, want, got, s)
	}
	_, err := ParseActDType("f64")
	assert.ErrorIs(t, err, ErrArgs)
	assert.ErrorContains(t, err, `activation dtype "f64", want f32, f16 or bf16`)
}

// Every kernel's variants are exactly the formats it accepts × activation
// dtypes × the scale dtypes of the format; unpack varies with the width.
func TestVariants(t *testing.T) {
	want := map[Kernel]int{
		PerElement: 18*3*3 + 3*3, QMV: 18*3*3 + 3*3, QMM: 18*3*3 + 3*3,
		Tiled: 6 * 3 * 3, SIMD: 6 * 3 * 3, SIMD4: 6 * 3 * 3, SIMD4GS64: 6 * 3 * 3, PackedSIMD4B4: 3 * 3, Unpack: 6,
		Embed: 18*3*3 + 3*3, GatherQMV: 18*3*3 + 3*3, GatherQMM: 18*3*3 + 3*3,
	}
	total := 0
	for _, k := range Kernels() {
		vs := k.Variants()
		assert.Len(t, vs, want[k], "%v", k)
		total += len(vs)
		for _, v := range vs {
			assert.Equal(t, k, v.Kernel)
			if k == Unpack {
				continue
			}
			assert.NoError(t, k.Accepts(v.Format), "%v", v)
			assert.True(t, v.Format.ScaleDTypeOK(v.Scale), "%v", v)
			assert.Contains(t, ActDTypes(), v.Act, "%v", v)
		}
	}
	assert.Equal(t, 1257, total, "the compile units of a backend with the whole catalog")
	assert.Len(t, quant.Formats(), 21)
}

// slowDriver compiles slowly, records how many compilations overlap, and
// fails the variants of one kernel.
type slowDriver struct {
	*fakeDriver
	mu           sync.Mutex
	running, max int
	counts       map[Variant]int
	fail         Kernel
}

func (s *slowDriver) Compile(v Variant) (Compiled, error) {
	s.mu.Lock()
	s.running++
	s.max = max(s.max, s.running)
	s.counts[v]++
	s.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	s.mu.Lock()
	s.running--
	s.mu.Unlock()
	if v.Kernel == s.fail {
		return nil, errors.New("no such instruction")
	}
	return v.Kernel, nil
}

// Prepare compiles variants in parallel, each once, skips the kernels the
// device lacks and reports the failures; a failed variant is tried again.
func TestPrepare(t *testing.T) {
	drv := &slowDriver{fakeDriver: newFake(PerElement, QMV, QMM, Unpack), counts: map[Variant]int{}, fail: Unpack}
	d := NewDevice("slow", drv)
	vs := append(append(QMV.Variants(), QMM.Variants()...), append(SIMD4.Variants(), Unpack.Variants()[:2]...)...)
	err := d.Prepare(vs)
	assert.ErrorContains(t, err, "slow: compiling unpack 2-bit: no such instruction")
	assert.ErrorContains(t, err, "slow: compiling unpack 3-bit: no such instruction")
	assert.Len(t, drv.counts, len(QMV.Variants())+len(QMM.Variants())+2, "simd4 is not on the device")
	for v, n := range drv.counts {
		assert.Equal(t, 1, n, "%v", v)
	}
	if runtime.GOMAXPROCS(0) > 1 {
		assert.Greater(t, drv.max, 1, "compilations overlap")
	}
	// Compiled variants are cached; failed ones are compiled again.
	require.NoError(t, d.Prepare(QMV.Variants()[:3]))
	assert.Equal(t, 1, drv.counts[QMV.Variants()[0]])
	_, err = d.compile(Unpack.Variants()[0])
	assert.Error(t, err)
	assert.Equal(t, 2, drv.counts[Unpack.Variants()[0]])
}
