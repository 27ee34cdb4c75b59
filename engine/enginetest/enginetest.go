// Package enginetest checks a backend's device against the engine's
// contract, so that every backend runs the same tests: each matrix product
// kernel against the float64 reference and against per_element on fresh
// random inputs, unaligned shapes, every bit width and group size, the
// packed 4-bit kernel bit for bit against simd4 on unpacked codes, outputs
// poisoned before each run so an unwritten element fails, and several
// dispatches in one commit.
package enginetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/quant"
)

// Tolerance is the normwise relative error float32 kernels must stay under.
const Tolerance = 1e-5

// Shape is a test problem: x is [M, K], the weight [N, K].
type Shape struct{ M, N, K int }

// Shapes are the problems each kernel runs: unaligned M and N, K that is
// not a power of two, and a decode-sized row.
var Shapes = []Shape{{7, 13, 96}, {7, 13, 128}, {23, 47, 128}, {17, 50, 96}, {17, 50, 384}, {1, 64, 1024}, {5, 33, 256}}

// Formats returns every supported format: affine bits 2-8 with group sizes
// 32, 64 and 128, and the floating-point modes.
func Formats() []quant.Format {
	var out []quant.Format
	for _, bits := range []int{2, 3, 4, 5, 6, 8} {
		for _, gs := range []int{32, 64, 128} {
			out = append(out, quant.Format{Mode: quant.Affine, Bits: bits, GroupSize: gs})
		}
	}
	for _, m := range []quant.Mode{quant.MXFP4, quant.MXFP8, quant.NVFP4} {
		out = append(out, quant.DefaultFormat(m))
	}
	return out
}

// Layer is a quantized layer with its device buffers.
type Layer struct {
	Matrix *quant.Matrix
	Bias   []float32 // nil, or the Linear bias
	dev    *engine.Device
	bufs   map[engine.Layout]*engine.Buffer
	scales *engine.Buffer
	biases *engine.Buffer
	bias   *engine.Buffer
}

// NewLayer quantizes a random [n, k] weight into format f with scales of
// type scaleType (U8 for the floating-point modes), and uploads it.
func NewLayer(t testing.TB, dev *engine.Device, rng *rand.Rand, f quant.Format, scaleType quant.DType, n, k int, withBias bool) *Layer {
	t.Helper()
	w := make([]float32, n*k)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * 0.05)
	}
	m, err := quant.Quantize(w, n, k, f, scaleType)
	require.NoError(t, err)
	l := &Layer{Matrix: m, dev: dev, bufs: map[engine.Layout]*engine.Buffer{}}
	ng := k / f.GroupSize
	l.scales = upload(t, dev, scaleType, m.Scales, n, ng)
	if m.Biases != nil {
		l.biases = upload(t, dev, scaleType, m.Biases, n, ng)
	}
	if withBias {
		l.Bias = make([]float32, n)
		for i := range l.Bias {
			l.Bias[i] = float32(rng.NormFloat64())
		}
		l.bias = upload(t, dev, quant.F32, engine.Float32Bytes(l.Bias), n)
	}
	t.Cleanup(l.free)
	return l
}

func upload(t testing.TB, dev *engine.Device, dt quant.DType, data []byte, shape ...int) *engine.Buffer {
	t.Helper()
	b, err := dev.Alloc(dt, shape...)
	require.NoError(t, err)
	require.NoError(t, dev.Upload(b, data))
	return b
}

func (l *Layer) free() {
	for _, b := range l.bufs {
		b.Free()
	}
	l.scales.Free()
	l.biases.Free()
	l.bias.Free()
}

// Weights returns the weight codes in the given layout: packed as stored,
// or unpacked on the device by the Unpack kernel.
func (l *Layer) Weights(t testing.TB, layout engine.Layout) *engine.Buffer {
	t.Helper()
	if b, ok := l.bufs[layout]; ok {
		return b
	}
	m := l.Matrix
	packed, ok := l.bufs[engine.Packed]
	if !ok {
		packed = upload(t, l.dev, quant.U32, m.Weight, m.Rows, m.RowBytes()/4)
		l.bufs[engine.Packed] = packed
	}
	if layout == engine.Packed {
		return packed
	}
	codes, err := l.dev.Alloc(quant.U8, m.Rows, m.Cols)
	require.NoError(t, err)
	meta, err := l.dev.Alloc(quant.U8, engine.MetaBytes)
	require.NoError(t, err)
	defer meta.Free()
	e := l.dev.NewEncoder()
	require.NoError(t, e.Unpack(&engine.UnpackArgs{Rows: m.Rows, Cols: m.Cols, Bits: m.Bits, W: packed, Codes: codes, Meta: meta}))
	require.NoError(t, e.Commit())
	l.bufs[engine.Codes] = codes
	return codes
}

// Args returns the operands of a product of x (buffer of at least m rows)
// into y.
func (l *Layer) Args(t testing.TB, k engine.Kernel, m int, x, y, meta *engine.Buffer) *engine.MatmulArgs {
	return &engine.MatmulArgs{
		Params: engine.Params{M: m, N: l.Matrix.Rows, K: l.Matrix.Cols, Format: l.Matrix.Format},
		X:      x, W: l.Weights(t, k.Spec().Layout), Scales: l.scales, Biases: l.biases, Bias: l.bias, Y: y, Meta: meta,
	}
}

// Run computes y = x·W^T (+ bias) for the m rows of x with kernel k, in
// buffers with room for maxRows rows whose output is poisoned with NaN
// first. It returns all maxRows rows of y.
func (l *Layer) Run(t testing.TB, k engine.Kernel, x []float32, m, maxRows int) []float32 {
	t.Helper()
	n, kk := l.Matrix.Rows, l.Matrix.Cols
	xb := upload(t, l.dev, quant.F32, engine.Float32Bytes(x), maxRows, kk)
	defer xb.Free()
	poison := make([]float32, maxRows*n)
	for i := range poison {
		poison[i] = float32(math.NaN())
	}
	yb := upload(t, l.dev, quant.F32, engine.Float32Bytes(poison), maxRows, n)
	defer yb.Free()
	meta, err := l.dev.Alloc(quant.U8, engine.MetaBytes)
	require.NoError(t, err)
	defer meta.Free()
	e := l.dev.NewEncoder()
	require.NoError(t, e.Matmul(k, l.Args(t, k, m, xb, yb, meta)))
	require.NoError(t, e.Commit())
	y := make([]float32, maxRows*n)
	require.NoError(t, l.dev.DownloadFloat32(y, yb))
	return y
}

// RandomX returns rows×k standard normal values.
func RandomX(rng *rand.Rand, rows, k int) []float32 {
	x := make([]float32, rows*k)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func widen(y []float32) []float64 {
	out := make([]float64, len(y))
	for i, v := range y {
		out[i] = float64(v)
	}
	return out
}

// scaleTypeFor rotates the scale dtypes across affine formats.
func scaleTypeFor(f quant.Format, i int) quant.DType {
	if f.Mode != quant.Affine {
		return quant.U8
	}
	return []quant.DType{quant.F32, quant.F16, quant.BF16}[i%3]
}

// TestDevice runs the contract checks on dev.
func TestDevice(t *testing.T, dev *engine.Device) {
	t.Run("Parity", func(t *testing.T) { testParity(t, dev) })
	t.Run("PackedMatchesSIMD4", func(t *testing.T) { testPackedMatchesSIMD4(t, dev) })
	t.Run("Unpack", func(t *testing.T) { testUnpack(t, dev) })
	t.Run("Batch", func(t *testing.T) { testBatch(t, dev) })
}

func testParity(t *testing.T, dev *engine.Device) {
	rng := rand.New(rand.NewPCG(11, 12))
	for fi, f := range Formats() {
		for si, s := range Shapes {
			if s.K%f.GroupSize != 0 {
				continue
			}
			st := scaleTypeFor(f, fi+si)
			l := NewLayer(t, dev, rng, f, st, s.N, s.K, si%2 == 0)
			maxRows := s.M + 3
			x := RandomX(rng, maxRows, s.K)
			ref := quant.Reference(x, s.M, l.Matrix, l.Bias)
			var base []float32
			if dev.Supports(engine.PerElement) {
				base = l.Run(t, engine.PerElement, x, s.M, maxRows)
			}
			for _, k := range engine.MatmulKernels() {
				if !dev.Supports(k) || k.Accepts(f) != nil {
					continue
				}
				name := fmt.Sprintf("%s/%v/%v/%dx%dx%d", k, f, st, s.M, s.N, s.K)
				y := l.Run(t, k, x, s.M, maxRows)
				got := y[:s.M*s.N]
				assert.LessOrEqual(t, quant.RelErr(got, ref), Tolerance, "%s: against the float64 reference", name)
				if base != nil {
					assert.LessOrEqual(t, quant.RelErr(got, widen(base[:s.M*s.N])), Tolerance, "%s: against per_element", name)
				}
				for i, v := range y[s.M*s.N:] {
					if !math.IsNaN(float64(v)) {
						t.Errorf("%s: y element %d past row M was written", name, s.M*s.N+i)
						break
					}
				}
			}
		}
	}
}

func testPackedMatchesSIMD4(t *testing.T, dev *engine.Device) {
	if !dev.Supports(engine.PackedSIMD4B4) || !dev.Supports(engine.SIMD4) {
		t.Skipf("%s lacks packed_simd4_b4 or simd4", dev.Name())
	}
	rng := rand.New(rand.NewPCG(13, 14))
	f := quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}
	for i, s := range append(Shapes, Shape{1, 256, 4096}, Shape{9, 8, 64}) {
		l := NewLayer(t, dev, rng, f, scaleTypeFor(f, i), s.N, s.K, i%2 == 1)
		x := RandomX(rng, s.M, s.K)
		packed := l.Run(t, engine.PackedSIMD4B4, x, s.M, s.M)
		codes := l.Run(t, engine.SIMD4, x, s.M, s.M)
		for j := range packed {
			if math.Float32bits(packed[j]) != math.Float32bits(codes[j]) {
				t.Fatalf("%dx%dx%d: element %d: packed_simd4_b4 %v != simd4 %v", s.M, s.N, s.K, j, packed[j], codes[j])
			}
		}
	}
}

func testUnpack(t *testing.T, dev *engine.Device) {
	rng := rand.New(rand.NewPCG(15, 16))
	for _, bits := range []int{2, 3, 4, 5, 6, 8} {
		f := quant.Format{Mode: quant.Affine, Bits: bits, GroupSize: 32}
		l := NewLayer(t, dev, rng, f, quant.F32, 13, 96, false)
		got := make([]byte, 13*96)
		require.NoError(t, dev.Download(got, l.Weights(t, engine.Codes)))
		want := make([]byte, 13*96)
		for r := range 13 {
			quant.Unpack(want[r*96:(r+1)*96], l.Matrix.Row(r), bits)
		}
		assert.Equal(t, want, got, "bits %d", bits)
	}
}

// testBatch records two dependent products and a change of M on one meta
// buffer in a single commit: y1 = x·W1^T, then y2 = y1·W2^T.
func testBatch(t *testing.T, dev *engine.Device) {
	rng := rand.New(rand.NewPCG(17, 18))
	f := quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}
	plan, err := dev.Plan(f, 1)
	require.NoError(t, err)
	l1 := NewLayer(t, dev, rng, f, quant.BF16, 64, 96, true)
	l2 := NewLayer(t, dev, rng, f, quant.BF16, 32, 64, false)
	m := 5
	x := RandomX(rng, m, 96)
	xb := upload(t, dev, quant.F32, engine.Float32Bytes(x), m, 96)
	defer xb.Free()
	y1, err := dev.Alloc(quant.F32, m, 64)
	require.NoError(t, err)
	defer y1.Free()
	y2, err := dev.Alloc(quant.F32, m, 32)
	require.NoError(t, err)
	defer y2.Free()
	meta, err := dev.Alloc(quant.U8, engine.MetaBytes)
	require.NoError(t, err)
	defer meta.Free()

	e := dev.NewEncoder()
	require.NoError(t, e.Matmul(plan.Kernel, l1.Args(t, plan.Kernel, m, xb, y1, meta)))
	require.NoError(t, e.Matmul(plan.Kernel, l2.Args(t, plan.Kernel, m, y1, y2, meta)))
	require.NoError(t, e.Commit())

	mid := make([]float32, m*64)
	require.NoError(t, dev.DownloadFloat32(mid, y1))
	out := make([]float32, m*32)
	require.NoError(t, dev.DownloadFloat32(out, y2))
	assert.LessOrEqual(t, quant.RelErr(mid, quant.Reference(x, m, l1.Matrix, l1.Bias)), Tolerance)
	assert.LessOrEqual(t, quant.RelErr(out, quant.Reference(mid, m, l2.Matrix, nil)), Tolerance)
}
