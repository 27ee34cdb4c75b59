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

// poisoned uploads rows×cols NaNs of dtype dt.
func poisoned(t testing.TB, dev *engine.Device, dt quant.DType, rows, cols int) *engine.Buffer {
	t.Helper()
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = float32(math.NaN())
	}
	return upload(t, dev, dt, dt.Bytes(v), rows, cols)
}

func alloc(t testing.TB, dev *engine.Device, dt quant.DType, shape ...int) *engine.Buffer {
	t.Helper()
	b, err := dev.Alloc(dt, shape...)
	require.NoError(t, err)
	t.Cleanup(b.Free)
	return b
}

// Lookup runs the Embed kernel on the layer for ids, with activations of
// dtype act, into a y of maxRows rows poisoned with NaN first, and returns
// all of y widened to float32.
func (l *Layer) Lookup(t testing.TB, act quant.DType, ids []int32, maxRows int) []float32 {
	t.Helper()
	m := l.Matrix
	y := poisoned(t, l.dev, act, maxRows, m.Cols)
	defer y.Free()
	e := l.dev.NewEncoder()
	require.NoError(t, e.Embed(l.EmbedArgs(t, act, ids, y)))
	require.NoError(t, e.Commit())
	out := make([]float32, maxRows*m.Cols)
	require.NoError(t, l.dev.DownloadFloat32(out, y))
	return out
}

// EmbedArgs returns the operands of a lookup of ids in the layer's rows
// into y, with an index buffer of its own.
func (l *Layer) EmbedArgs(t testing.TB, act quant.DType, ids []int32, y *engine.Buffer) *engine.EmbedArgs {
	m := l.Matrix
	return &engine.EmbedArgs{
		Params: engine.Params{M: len(ids), N: m.Rows, K: m.Cols, Format: m.Format, Act: act},
		IDs:    ids, Index: alloc(t, l.dev, quant.I32, max(len(ids), 1)),
		W: l.Weights(t, engine.Packed), Scales: l.scales, Biases: l.biases, Y: y,
	}
}

// rowsReference returns the dequantized rows of m named by ids, in
// float64: what a lookup must give.
func rowsReference(m *quant.Matrix, ids []int32) []float64 {
	out := make([]float64, len(ids)*m.Cols)
	for i, id := range ids {
		m.DequantizeRow(out[i*m.Cols:(i+1)*m.Cols], int(id))
	}
	return out
}

// testEmbed looks up ids (the first and last rows among them) in every
// format, unaligned vocabulary sizes and every activation dtype, against
// the dequantized rows in float64, with y poisoned past the ids; and
// checks that ids out of range are refused before anything runs.
func testEmbed(t *testing.T, dev *engine.Device) {
	if !dev.Supports(engine.Embed) {
		t.Skipf("%s lacks embed", dev.Name())
	}
	rng := rand.New(rand.NewPCG(21, 22))
	for fi, f := range Formats() {
		for si, s := range []Shape{{5, 37, 96}, {9, 50, 384}, {1, 13, 128}} {
			if s.K%f.GroupSize != 0 {
				continue
			}
			st := scaleTypeFor(f, fi+si)
			l := NewLayer(t, dev, rng, f, st, s.N, s.K, false)
			ids := make([]int32, s.M)
			for i := range ids {
				ids[i] = int32(rng.IntN(s.N))
			}
			ids[0] = int32(s.N - 1)
			if s.M > 1 {
				ids[1] = 0
			}
			ref := rowsReference(l.Matrix, ids)
			for _, act := range engine.ActDTypes() {
				name := fmt.Sprintf("embed/%v/%v scales/%v y/%d ids of %dx%d", f, st, act, s.M, s.N, s.K)
				y := l.Lookup(t, act, ids, s.M+2)
				tol := dev.Precision(l.Variant(engine.Embed, act)).Tolerance()
				assert.LessOrEqual(t, quant.RelErr(y[:s.M*s.K], ref), tol, "%s: against the dequantized rows", name)
				checkPoison(t, name, y, s.M*s.K)
			}
		}
	}

	l := NewLayer(t, dev, rng, quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}, quant.BF16, 16, 64, false)
	y := poisoned(t, dev, quant.F32, 4, 64)
	defer y.Free()
	for _, bad := range []int32{16, -1, math.MaxInt32} {
		e := dev.NewEncoder()
		err := e.Embed(l.EmbedArgs(t, quant.F32, []int32{3, bad}, y))
		assert.ErrorIs(t, err, engine.ErrArgs)
		assert.ErrorContains(t, err, fmt.Sprintf("id %d (position 1) out of range: the vocabulary has 16 rows", bad))
		assert.Zero(t, e.Len())
		require.NoError(t, e.Commit())
	}
	out := make([]float32, 4*64)
	require.NoError(t, dev.DownloadFloat32(out, y))
	checkPoison(t, "refused lookups", out, 0)
}

// testEmbedThenLinear looks rows up and runs the same layer's product on
// them in one commit, as a tied output head does: the write of the ids,
// the lookup and the product run in order.
func testEmbedThenLinear(t *testing.T, dev *engine.Device) {
	if !dev.Supports(engine.Embed) {
		t.Skipf("%s lacks embed", dev.Name())
	}
	rng := rand.New(rand.NewPCG(23, 24))
	f := quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}
	l := NewLayer(t, dev, rng, f, quant.BF16, 96, 128, false)
	for _, act := range engine.ActDTypes() {
		ids := []int32{5, 95, 0, 5}
		m := len(ids)
		h := alloc(t, dev, act, m, 128)
		logits := poisoned(t, dev, act, m, 96)
		e := dev.NewEncoder()
		require.NoError(t, e.Embed(l.EmbedArgs(t, act, ids, h)))
		a := l.Args(t, engine.PerElement, m, h, logits)
		plan, err := dev.Plan(a.Params)
		require.NoError(t, err)
		a.W = l.Weights(t, plan.Layout)
		require.NoError(t, e.Matmul(plan.Kernel, a))
		require.NoError(t, e.Commit())
		rows := make([]float32, m*128)
		for i, v := range rowsReference(l.Matrix, ids) {
			rows[i] = act.Round(float32(v))
		}
		got := make([]float32, m*96)
		require.NoError(t, dev.DownloadFloat32(got, logits))
		tol := max(dev.Precision(l.Variant(engine.Embed, act)).Tolerance(), dev.Precision(l.Variant(plan.Kernel, act)).Tolerance())
		assert.LessOrEqual(t, quant.RelErr(got, quant.Reference(rows, m, l.Matrix, nil)), tol, "%v: lookup then %s", act, plan.Kernel)
	}
}

// Experts is a layer of stacked experts with its device buffers.
type Experts struct {
	Matrices []*quant.Matrix
	Bias     [][]float32 // nil, or each expert's Linear bias
	N, K     int
	quant.Format
	dev                     *engine.Device
	w, scales, biases, bias *engine.Buffer
	scaleType               quant.DType
}

// NewExperts quantizes e random [n, k] weights into format f with scales
// of type scaleType, and uploads them stacked, as MLX stores them.
func NewExperts(t testing.TB, dev *engine.Device, rng *rand.Rand, f quant.Format, scaleType quant.DType, e, n, k int, withBias bool) *Experts {
	t.Helper()
	x := &Experts{N: n, K: k, Format: f, dev: dev, scaleType: scaleType}
	var w, s, b []byte
	var bias []float32
	for range e {
		v := make([]float32, n*k)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.05)
		}
		m, err := quant.Quantize(v, n, k, f, scaleType)
		require.NoError(t, err)
		x.Matrices = append(x.Matrices, m)
		w, s, b = append(w, m.Weight...), append(s, m.Scales...), append(b, m.Biases...)
		if withBias {
			eb := make([]float32, n)
			for i := range eb {
				eb[i] = float32(rng.NormFloat64())
			}
			x.Bias = append(x.Bias, eb)
			bias = append(bias, eb...)
		}
	}
	ng := k / f.GroupSize
	x.w = upload(t, dev, quant.U32, w, e, n, quant.RowBytes(k, f.Bits)/4)
	x.scales = upload(t, dev, scaleType, s, e, n, ng)
	if f.HasBiases() {
		x.biases = upload(t, dev, scaleType, b, e, n, ng)
	}
	if withBias {
		x.bias = upload(t, dev, quant.F32, engine.Float32Bytes(bias), e, n)
	}
	t.Cleanup(func() {
		for _, b := range []*engine.Buffer{x.w, x.scales, x.biases, x.bias} {
			b.Free()
		}
	})
	return x
}

// Args returns the operands of a gathered product of the m rows of x
// (of at least m rows) through experts indices into y (of at least
// m·topK rows), with routing, of at least engine.RoutingWords(m·topK).
func (x *Experts) Args(m, topK int, indices []int32, xb, y, routing *engine.Buffer) *engine.GatherArgs {
	return &engine.GatherArgs{
		Params:  engine.Params{M: m, N: x.N, K: x.K, Format: x.Format, Act: xb.DType()},
		Experts: len(x.Matrices), TopK: topK, Indices: indices,
		X: xb, W: x.w, Scales: x.scales, Biases: x.biases, Bias: x.bias, Y: y, Routing: routing,
	}
}

// Variant returns the variant of kernel k with activations of dtype act.
func (x *Experts) Variant(k engine.Kernel, act quant.DType) engine.Variant {
	return engine.Variant{Kernel: k, Format: x.Format, Act: act, Scale: x.scaleType}
}

// Reference returns MLX's gather_qmm of the m rows of x in float64:
// y[m, j] = x[m]·W[indices[m·topK + j]]ᵀ (+ that expert's bias), [m, topK, N].
func (x *Experts) Reference(xs []float32, m, topK int, indices []int32) []float64 {
	out := make([]float64, 0, m*topK*x.N)
	for p, e := range indices {
		var bias []float32
		if x.Bias != nil {
			bias = x.Bias[e]
		}
		row := p / topK
		out = append(out, quant.Reference(xs[row*x.K:(row+1)*x.K], 1, x.Matrices[e], bias)...)
	}
	return out
}

// Run runs gathered product kernel k on the m rows of x (rounded to act)
// through experts indices, into a y of maxPairs rows poisoned with NaN
// first, and returns all of y widened to float32.
func (x *Experts) Run(t testing.TB, k engine.Kernel, act quant.DType, xs []float32, m, topK int, indices []int32, maxPairs int) []float32 {
	t.Helper()
	xb := upload(t, x.dev, act, act.Bytes(xs), len(xs)/x.K, x.K)
	defer xb.Free()
	y := poisoned(t, x.dev, act, maxPairs, x.N)
	defer y.Free()
	routing := alloc(t, x.dev, quant.I32, engine.RoutingWords(m*topK))
	e := x.dev.NewEncoder()
	require.NoError(t, e.GatherMatmul(k, x.Args(m, topK, indices, xb, y, routing)))
	require.NoError(t, e.Commit())
	out := make([]float32, maxPairs*x.N)
	require.NoError(t, x.dev.DownloadFloat32(out, y))
	return out
}

// randomIndices returns m rows of topK expert indices of experts: distinct
// within a row when distinct is set (as a router's top-k picks them), any
// otherwise.
func randomIndices(rng *rand.Rand, m, topK, experts int, distinct bool) []int32 {
	out := make([]int32, 0, m*topK)
	for range m {
		if distinct {
			for _, e := range rng.Perm(experts)[:topK] {
				out = append(out, int32(e))
			}
			continue
		}
		for range topK {
			out = append(out, int32(rng.IntN(experts)))
		}
	}
	return out
}

// gatherShape is a gathered product: m rows of x, each to topK of experts
// experts of [n, k] weights.
type gatherShape struct{ m, topK, experts, n, k int }

// testGather runs every gathered product kernel on every format and
// activation dtype, unaligned shapes, a single row (decoding), rows that
// fill several tiles of one expert and repeated experts within a row,
// against the float64 reference of each (row, expert) pair, with y
// poisoned past the M·TopK rows; and checks that bad indices are refused.
func testGather(t *testing.T, dev *engine.Device) {
	var kernels []engine.Kernel
	for _, k := range engine.GatherKernels() {
		if dev.Supports(k) {
			kernels = append(kernels, k)
		}
	}
	if kernels == nil {
		t.Skipf("%s lacks the gathered products", dev.Name())
	}
	rng := rand.New(rand.NewPCG(25, 26))
	shapes := []gatherShape{{1, 2, 6, 13, 96}, {7, 3, 6, 50, 128}, {40, 2, 3, 33, 384}, {3, 1, 1, 17, 256}}
	for fi, f := range Formats() {
		for si, s := range shapes {
			if s.k%f.GroupSize != 0 {
				continue
			}
			st := scaleTypeFor(f, fi+si)
			x := NewExperts(t, dev, rng, f, st, s.experts, s.n, s.k, si%2 == 1)
			indices := randomIndices(rng, s.m, s.topK, s.experts, si != 1)
			for _, act := range engine.ActDTypes() {
				xs := RandomX(rng, act, s.m+1, s.k)
				ref := x.Reference(xs, s.m, s.topK, indices)
				pairs := s.m * s.topK
				for _, k := range kernels {
					name := fmt.Sprintf("%s/%v/%v scales/%v x/M=%d top %d of %d/%dx%d", k, f, st, act, s.m, s.topK, s.experts, s.n, s.k)
					y := x.Run(t, k, act, xs, s.m, s.topK, indices, pairs+2)
					tol := dev.Precision(x.Variant(k, act)).Tolerance()
					assert.LessOrEqual(t, quant.RelErr(y[:pairs*s.n], ref), tol, "%s: against the float64 reference", name)
					checkPoison(t, name, y, pairs*s.n)
				}
			}
		}
	}

	x := NewExperts(t, dev, rng, quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}, quant.BF16, 4, 16, 64, false)
	xb := upload(t, dev, quant.F32, quant.F32.Bytes(RandomX(rng, quant.F32, 2, 64)), 2, 64)
	defer xb.Free()
	y := poisoned(t, dev, quant.F32, 4, 16)
	defer y.Free()
	routing := alloc(t, dev, quant.I32, engine.RoutingWords(4))
	for _, k := range kernels {
		for _, bad := range []int32{4, -1} {
			e := dev.NewEncoder()
			err := e.GatherMatmul(k, x.Args(2, 2, []int32{0, 1, 2, bad}, xb, y, routing))
			assert.ErrorIs(t, err, engine.ErrArgs)
			assert.ErrorContains(t, err, fmt.Sprintf("expert index %d (row 1, slot 1) out of range: the layer has 4 experts", bad))
			assert.Zero(t, e.Len())
			require.NoError(t, e.Commit())
		}
	}
	out := make([]float32, 4*16)
	require.NoError(t, dev.DownloadFloat32(out, y))
	checkPoison(t, "refused products", out, 0)
}

// testGatherBatch records, for each gathered product kernel, two products
// with different routings through one routing buffer, and the second on
// the first's output, in a single commit: each write of the routing runs
// between the dispatches around it.
func testGatherBatch(t *testing.T, dev *engine.Device) {
	rng := rand.New(rand.NewPCG(27, 28))
	f := quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}
	up := NewExperts(t, dev, rng, f, quant.BF16, 8, 64, 128, false)
	down := NewExperts(t, dev, rng, f, quant.BF16, 8, 128, 64, true)
	for _, k := range engine.GatherKernels() {
		if !dev.Supports(k) {
			continue
		}
		for _, act := range engine.ActDTypes() {
			const m, topK = 5, 2
			xs := RandomX(rng, act, m, 128)
			first := randomIndices(rng, m, topK, 8, true)
			second := randomIndices(rng, m*topK, 1, 8, true)
			xb := upload(t, dev, act, act.Bytes(xs), m, 128)
			mid := alloc(t, dev, act, m*topK, 64)
			out := alloc(t, dev, act, m*topK, 128)
			routing := alloc(t, dev, quant.I32, engine.RoutingWords(m*topK))
			e := dev.NewEncoder()
			require.NoError(t, e.GatherMatmul(k, up.Args(m, topK, first, xb, mid, routing)))
			require.NoError(t, e.GatherMatmul(k, down.Args(m*topK, 1, second, mid, out, routing)))
			require.NoError(t, e.Commit())
			xb.Free()

			got := make([]float32, m*topK*64)
			require.NoError(t, dev.DownloadFloat32(got, mid))
			tol := dev.Precision(up.Variant(k, act)).Tolerance()
			assert.LessOrEqual(t, quant.RelErr(got, up.Reference(xs, m, topK, first)), tol, "%s %v x: first product", k, act)
			final := make([]float32, m*topK*128)
			require.NoError(t, dev.DownloadFloat32(final, out))
			assert.LessOrEqual(t, quant.RelErr(final, down.Reference(got, m*topK, 1, second)), tol, "%s %v x: second product", k, act)
		}
	}
}
