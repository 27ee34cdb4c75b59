// Package enginetest checks a backend's device against the engine's
// contract, so that every backend runs the same tests: each matrix product
// kernel, for every format and every activation dtype, against the float64
// reference (on the same rounded inputs) and against per_element on fresh
// random inputs, unaligned shapes, every bit width and group size; the
// packed kernels against the seed's kernels on unpacked codes; the packed
// 4-bit seed kernel bit for bit against simd4; outputs poisoned before each
// run so an unwritten element fails; and several dispatches in one commit.
// The embedding lookup and the gathered products (MLX's gather_qmm) run
// likewise against the float64 dequantized rows and products, with their
// refusals of ids and expert indices out of range.
package enginetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/quant"
)

// Tolerance is the normwise relative error float32 kernels must stay under.
var Tolerance = engine.Float32.Tolerance()

// Shape is a test problem: x is [M, K], the weight [N, K].
type Shape struct{ M, N, K int }

// Shapes are the problems each kernel runs: unaligned M and N, K that is
// not a power of two, and a decode-sized row.
var Shapes = []Shape{{7, 13, 96}, {7, 13, 128}, {23, 47, 128}, {17, 50, 96}, {17, 50, 384}, {1, 64, 1024}, {5, 33, 256}}

// Formats returns every supported format (quant.Formats).
func Formats() []quant.Format { return quant.Formats() }

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
	e := l.dev.NewEncoder()
	require.NoError(t, e.Unpack(&engine.UnpackArgs{Rows: m.Rows, Cols: m.Cols, Bits: m.Bits, W: packed, Codes: codes}))
	require.NoError(t, e.Commit())
	l.bufs[engine.Codes] = codes
	return codes
}

// Args returns the operands of a product of x (buffer of at least m rows,
// of the activation dtype) into y.
func (l *Layer) Args(t testing.TB, k engine.Kernel, m int, x, y *engine.Buffer) *engine.MatmulArgs {
	return &engine.MatmulArgs{
		Params: engine.Params{M: m, N: l.Matrix.Rows, K: l.Matrix.Cols, Format: l.Matrix.Format, Act: x.DType()},
		X:      x, W: l.Weights(t, k.Spec().Layout), Scales: l.scales, Biases: l.biases, Bias: l.bias, Y: y,
	}
}

// Variant returns the kernel variant that runs the layer with activations
// of dtype act.
func (l *Layer) Variant(k engine.Kernel, act quant.DType) engine.Variant {
	return engine.Variant{Kernel: k, Format: l.Matrix.Format, Act: act, Scale: l.Matrix.ScaleType}
}

// Run computes y = x·W^T (+ bias) for the m rows of x with kernel k and
// activations of dtype act (x is rounded to it), in buffers with room for
// maxRows rows whose output is poisoned with NaN first. It returns all
// maxRows rows of y, widened to float32.
func (l *Layer) Run(t testing.TB, k engine.Kernel, act quant.DType, x []float32, m, maxRows int) []float32 {
	t.Helper()
	n, kk := l.Matrix.Rows, l.Matrix.Cols
	xb := upload(t, l.dev, act, act.Bytes(x), maxRows, kk)
	defer xb.Free()
	poison := make([]float32, maxRows*n)
	for i := range poison {
		poison[i] = float32(math.NaN())
	}
	yb := upload(t, l.dev, act, act.Bytes(poison), maxRows, n)
	defer yb.Free()
	e := l.dev.NewEncoder()
	require.NoError(t, e.Matmul(k, l.Args(t, k, m, xb, yb)))
	require.NoError(t, e.Commit())
	y := make([]float32, maxRows*n)
	require.NoError(t, l.dev.DownloadFloat32(y, yb))
	return y
}

// RandomX returns rows×k standard normal values, rounded to dtype act so
// that the reference sees what the kernel sees.
func RandomX(rng *rand.Rand, act quant.DType, rows, k int) []float32 {
	x := make([]float32, rows*k)
	for i := range x {
		x[i] = act.Round(float32(rng.NormFloat64()))
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

// TestDevice runs the contract checks on dev, after compiling every
// variant of its kernels in parallel (engine.Device.Prepare).
func TestDevice(t *testing.T, dev *engine.Device) {
	start := time.Now()
	var vs []engine.Variant
	for _, k := range dev.Kernels() {
		vs = append(vs, k.Variants()...)
	}
	require.NoError(t, dev.Prepare(vs))
	t.Logf("%s: %d kernel variants ready in %v", dev.Name(), len(vs), time.Since(start).Round(time.Millisecond))
	t.Run("Parity", func(t *testing.T) { testParity(t, dev) })
	t.Run("PackedMatchesSeed", func(t *testing.T) { testPackedMatchesSeed(t, dev) })
	t.Run("PackedMatchesSIMD4", func(t *testing.T) { testPackedMatchesSIMD4(t, dev) })
	t.Run("Unpack", func(t *testing.T) { testUnpack(t, dev) })
	t.Run("Batch", func(t *testing.T) { testBatch(t, dev) })
	t.Run("Plan", func(t *testing.T) { testPlan(t, dev) })
	t.Run("Embed", func(t *testing.T) { testEmbed(t, dev) })
	t.Run("EmbedThenLinear", func(t *testing.T) { testEmbedThenLinear(t, dev) })
	t.Run("Gather", func(t *testing.T) { testGather(t, dev) })
	t.Run("GatherBatch", func(t *testing.T) { testGatherBatch(t, dev) })
}

// tolerance is the bound kernel k's variant is held to on dev.
func tolerance(dev *engine.Device, l *Layer, k engine.Kernel, act quant.DType) float64 {
	return dev.Precision(l.Variant(k, act)).Tolerance()
}

// testParity runs every kernel on every format, shape and activation
// dtype, against the float64 reference and against per_element.
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
			for _, act := range engine.ActDTypes() {
				x := RandomX(rng, act, maxRows, s.K)
				ref := quant.Reference(x, s.M, l.Matrix, l.Bias)
				var base []float32
				if dev.Supports(engine.PerElement) {
					base = l.Run(t, engine.PerElement, act, x, s.M, maxRows)
				}
				for _, k := range engine.MatmulKernels() {
					if !dev.Supports(k) || k.Accepts(f) != nil {
						continue
					}
					name := fmt.Sprintf("%s/%v/%v scales/%v x/%dx%dx%d", k, f, st, act, s.M, s.N, s.K)
					tol := tolerance(dev, l, k, act)
					y := l.Run(t, k, act, x, s.M, maxRows)
					got := y[:s.M*s.N]
					assert.LessOrEqual(t, quant.RelErr(got, ref), tol, "%s: against the float64 reference", name)
					if base != nil {
						assert.LessOrEqual(t, quant.RelErr(got, widen(base[:s.M*s.N])), tol, "%s: against per_element", name)
					}
					checkPoison(t, name, y, s.M*s.N)
				}
			}
		}
	}
}

// checkPoison fails if y was written past its first n elements.
func checkPoison(t *testing.T, name string, y []float32, n int) {
	t.Helper()
	for i, v := range y[n:] {
		if !math.IsNaN(float64(v)) {
			t.Errorf("%s: y element %d past row M was written", name, n+i)
			return
		}
	}
}

// testPackedMatchesSeed checks that the packed kernels agree with the
// seed's kernels on unpacked codes, on the same inputs, at M below and
// above the device's crossover.
func testPackedMatchesSeed(t *testing.T, dev *engine.Device) {
	packed := []engine.Kernel{engine.QMV, engine.QMM}
	seed := []engine.Kernel{engine.SIMD4, engine.SIMD4GS64, engine.PerElement}
	rng := rand.New(rand.NewPCG(19, 20))
	ran := 0
	for fi, f := range Formats() {
		n, k := 40, 256
		l := NewLayer(t, dev, rng, f, scaleTypeFor(f, fi), n, k, fi%2 == 0)
		for _, act := range engine.ActDTypes() {
			for _, m := range []int{1, 3, 12, 33} {
				x := RandomX(rng, act, m, k)
				for _, sk := range seed {
					if !dev.Supports(sk) || sk.Accepts(f) != nil {
						continue
					}
					want := widen(l.Run(t, sk, act, x, m, m))
					for _, pk := range packed {
						if !dev.Supports(pk) {
							continue
						}
						got := l.Run(t, pk, act, x, m, m)
						tol := max(tolerance(dev, l, pk, act), tolerance(dev, l, sk, act))
						assert.LessOrEqual(t, quant.RelErr(got, want), tol, "%s vs %s: %v, %v x, M=%d", pk, sk, f, act, m)
						ran++
					}
					break // the first seed kernel that takes the format
				}
			}
		}
	}
	if ran == 0 {
		t.Skipf("%s lacks the packed kernels or the seed kernels", dev.Name())
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
		x := RandomX(rng, quant.F32, s.M, s.K)
		packed := l.Run(t, engine.PackedSIMD4B4, quant.F32, x, s.M, s.M)
		codes := l.Run(t, engine.SIMD4, quant.F32, x, s.M, s.M)
		for j := range packed {
			if math.Float32bits(packed[j]) != math.Float32bits(codes[j]) {
				t.Fatalf("%dx%dx%d: element %d: packed_simd4_b4 %v != simd4 %v", s.M, s.N, s.K, j, packed[j], codes[j])
			}
		}
	}
}

func testUnpack(t *testing.T, dev *engine.Device) {
	if !dev.Supports(engine.Unpack) {
		t.Skipf("%s lacks unpack", dev.Name())
	}
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

// testBatch records, for each activation dtype, two dependent products and
// in a single commit: y1 = x·W1^T, then
// y2 = y1·W2^T, with the kernels the plan picks.
func testBatch(t *testing.T, dev *engine.Device) {
	rng := rand.New(rand.NewPCG(17, 18))
	f := quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}
	l1 := NewLayer(t, dev, rng, f, quant.BF16, 64, 96, true)
	l2 := NewLayer(t, dev, rng, f, quant.BF16, 32, 64, false)
	for _, act := range engine.ActDTypes() {
		for _, m := range []int{1, 5, 40} {
			x := RandomX(rng, act, m, 96)
			xb := upload(t, dev, act, act.Bytes(x), m, 96)
			y1, err := dev.Alloc(act, m, 64)
			require.NoError(t, err)
			y2, err := dev.Alloc(act, m, 32)
			require.NoError(t, err)

			e := dev.NewEncoder()
			for _, step := range []struct {
				l    *Layer
				x, y *engine.Buffer
			}{{l1, xb, y1}, {l2, y1, y2}} {
				a := step.l.Args(t, engine.PerElement, m, step.x, step.y)
				plan, err := dev.Plan(a.Params)
				require.NoError(t, err)
				a.W = step.l.Weights(t, plan.Layout)
				require.NoError(t, e.Matmul(plan.Kernel, a))
			}
			require.NoError(t, e.Commit())

			mid := make([]float32, m*64)
			require.NoError(t, dev.DownloadFloat32(mid, y1))
			out := make([]float32, m*32)
			require.NoError(t, dev.DownloadFloat32(out, y2))
			tol := engine.ActPrecision(act).Tolerance()
			if dev.Precision(l1.Variant(engine.QMM, act)) == engine.TF32 {
				tol = engine.TF32.Tolerance()
			}
			assert.LessOrEqual(t, quant.RelErr(mid, quant.Reference(x, m, l1.Matrix, l1.Bias)), tol, "%v x, M=%d: first layer", act, m)
			assert.LessOrEqual(t, quant.RelErr(out, quant.Reference(mid, m, l2.Matrix, nil)), tol, "%v x, M=%d: second layer", act, m)
			for _, b := range []*engine.Buffer{xb, y1, y2} {
				b.Free()
			}
		}
	}
}

// testPlan checks the plan on a device with the packed kernels: every
// format runs on the packed words, QMV up to the device's crossover and
// QMM above it.
func testPlan(t *testing.T, dev *engine.Device) {
	if !dev.Supports(engine.QMV) || !dev.Supports(engine.QMM) {
		t.Skipf("%s lacks the packed kernels", dev.Name())
	}
	for _, f := range Formats() {
		for _, act := range engine.ActDTypes() {
			p := engine.Params{M: 1, N: 4096, K: 4096, Format: f, Act: act}
			c := dev.Crossover(p)
			require.GreaterOrEqual(t, c, 0, "%v, %v x", f, act)
			for _, m := range []int{1, c, c + 1, 4096} {
				if m < 1 {
					continue
				}
				p.M = m
				plan, err := dev.Plan(p)
				require.NoError(t, err)
				want := engine.QMM
				if m <= c {
					want = engine.QMV
				}
				assert.Equal(t, engine.Plan{Kernel: want, Layout: engine.Packed}, plan, "%v, %v x, M=%d, crossover %d", f, act, m, c)
			}
		}
	}
}
