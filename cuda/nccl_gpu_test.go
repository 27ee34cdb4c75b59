package cuda

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/engine/enginetest"
	"github.com/mlxq/mlxq/layers"
	"github.com/mlxq/mlxq/quant"
)

// newCollective builds a collective over devs, or skips the test where
// NCCL cannot be loaded.
func newCollective(t *testing.T, devs ...*engine.Device) *engine.Collective {
	t.Helper()
	c, err := engine.NewCollective(devs...)
	if errors.Is(err, engine.ErrUnavailable) {
		t.Skip("nccl: " + err.Error())
	}
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, c.Close()) })
	t.Logf("%s over %d devices; %s=%s", NCCL(), len(devs), EnvNVLS, envOr(EnvNVLS))
	return c
}

func envOr(name string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return "(unset)"
}

// openGPUs opens every CUDA device, or skips the test unless there are
// at least two.
func openGPUs(t *testing.T) []*engine.Device {
	t.Helper()
	cu, err := loadCUDA()
	if err != nil {
		t.Skip("cuda: " + err.Error())
	}
	var n int32
	if cu.cuInit(0) != cudaSuccess || cu.cuDeviceGetCount(&n) != cudaSuccess || n < 2 {
		t.Skipf("cuda: %d devices, the test needs 2 or more", n)
	}
	devs := make([]*engine.Device, n)
	for i := range devs {
		d, err := OpenOrdinal(i)
		require.NoError(t, err)
		devs[i] = engine.NewDevice(Name, d)
		t.Cleanup(func() { assert.NoError(t, devs[i].Close()) })
		t.Logf("cuda:%d: %s", i, d.Name())
	}
	return devs
}

// TestGPUCollective runs the collective checks on a single-rank NCCL
// communicator, then the parallel layers of one shard against the float64
// reference.
func TestGPUCollective(t *testing.T) {
	dev, _ := openGPU(t)
	c := newCollective(t, dev)
	enginetest.TestCollective(t, c)
	checkParallel(t, []*engine.Collective{c}, []quant.Format{quant.DefaultFormat(quant.Affine), quant.DefaultFormat(quant.NVFP4)})
}

// TestGPUMultiCollective runs the collective checks over every GPU and
// over the first two.
func TestGPUMultiCollective(t *testing.T) {
	devs := openGPUs(t)
	enginetest.TestCollective(t, newCollective(t, devs...))
	if len(devs) > 2 {
		enginetest.TestCollective(t, newCollective(t, devs[:2]...))
	}
}

// TestGPUMultiParallel checks column- and row-parallel layers of every
// format over 2 to all GPUs against the float64 reference and against
// the layer on one GPU.
func TestGPUMultiParallel(t *testing.T) {
	devs := openGPUs(t)
	var colls []*engine.Collective
	for n := 2; n <= len(devs); n++ {
		colls = append(colls, newCollective(t, devs[:n]...))
	}
	checkParallel(t, colls, quant.Formats())
}

// checkParallel runs layers of each format split over each collective,
// column- and row-parallel, every activation dtype, against the float64
// reference and the unsharded layer on the first device, each within the
// layer's precision.
func checkParallel(t *testing.T, colls []*engine.Collective, formats []quant.Format) {
	t.Helper()
	rng := rand.New(rand.NewPCG(31, 32))
	one := colls[0].Devices()[0]
	for i, f := range formats {
		const rows = 9
		// 120 rows and 24 groups split into 1, 2, 3, 4, 6 and 8 shards
		// (5 and 7 are bad splits of one of them, logged).
		n, k := 120, 24*f.GroupSize
		st := []quant.DType{quant.BF16, quant.F16, quant.F32}[i%3]
		if f.Mode != quant.Affine {
			st = quant.U8
		}
		m, bias := randomWeights(t, rng, f, st, n, k, i%2 == 0)
		for _, dt := range engine.ActDTypes() {
			l, err := layers.New(one, "w", m, bias, rows, layers.WithDType(dt))
			require.NoError(t, err)
			for _, c := range colls {
				for _, split := range []layers.Split{layers.ColumnParallel, layers.RowParallel} {
					name := fmt.Sprintf("%v %v scales, %v, %s over %d", f, st, dt, split, c.Size())
					p, err := layers.NewParallel(c, "w", m, bias, split, rows, layers.WithDType(dt))
					if errors.Is(err, layers.ErrSplit) {
						t.Logf("%s: %v", name, err)
						continue
					}
					require.NoError(t, err, name)
					for _, mm := range []int{1, rows} {
						x := enginetest.RandomX(rng, dt, mm, k)
						want, err := l.Forward(x, mm)
						require.NoError(t, err)
						y, err := p.Forward(x, mm)
						require.NoError(t, err, name)
						prec, err := p.Precision(mm)
						require.NoError(t, err)
						tol := prec.Tolerance()
						assert.LessOrEqual(t, quant.RelErr(y, quant.Reference(x, mm, m, bias)), tol, "%s M=%d: against the reference", name, mm)
						assert.LessOrEqual(t, quant.RelErr(y, widen(want)), tol, "%s M=%d: against one GPU", name, mm)
					}
					p.Close()
				}
			}
			l.Close()
		}
	}
}

// randomWeights quantizes a random [n, k] weight.
func randomWeights(t testing.TB, rng *rand.Rand, f quant.Format, st quant.DType, n, k int, withBias bool) (*quant.Matrix, []float32) {
	t.Helper()
	w := make([]float32, n*k)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * 0.05)
	}
	m, err := quant.Quantize(w, n, k, f, st)
	require.NoError(t, err)
	var bias []float32
	if withBias {
		bias = make([]float32, n)
		for i := range bias {
			bias[i] = float32(rng.NormFloat64())
		}
	}
	return m, bias
}

func widen(y []float32) []float64 {
	out := make([]float64, len(y))
	for i, v := range y {
		out[i] = float64(v)
	}
	return out
}

// TestGPUMultiParallelTiming times 28672x8192 and 16384x16384, 4-bit g64
// with bf16 activations, at M = 1 and M = 4096: on one GPU, column- and
// row-parallel over two, and the row-parallel layer's all-reduce alone,
// each the median of 20 runs on the host's clock after 3 warm-up runs.
func TestGPUMultiParallelTiming(t *testing.T) {
	devs := openGPUs(t)[:2]
	c := newCollective(t, devs...)
	rng := rand.New(rand.NewPCG(41, 42))
	f := quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}
	for _, shape := range [][2]int{{28672, 8192}, {16384, 16384}} {
		m := randomPacked(rng, f, shape[0], shape[1])
		for _, rows := range []int{1, 4096} {
			name := fmt.Sprintf("%dx%d %v bf16 M=%d", shape[0], shape[1], f, rows)
			x := enginetest.RandomX(rng, quant.BF16, rows, shape[1])
			l, err := layers.New(devs[0], "w", m, nil, rows, layers.WithDType(quant.BF16))
			require.NoError(t, err)
			want, err := l.Forward(x, rows)
			require.NoError(t, err)
			single := median(t, func() error {
				e := devs[0].NewEncoder()
				if _, err := l.Encode(e, l.Input(), rows); err != nil {
					return err
				}
				return e.Commit()
			})
			l.Close()
			for _, split := range []layers.Split{layers.ColumnParallel, layers.RowParallel} {
				p, err := layers.NewParallel(c, "w", m, nil, split, rows, layers.WithDType(quant.BF16))
				require.NoError(t, err)
				y, err := p.Forward(x, rows)
				require.NoError(t, err)
				assert.LessOrEqual(t, quant.RelErr(y, widen(want)), engine.BFloat16.Tolerance(), "%s %s", name, split)
				xs := p.Inputs()
				total := median(t, func() error { _, err := p.Run(xs, rows); return err })
				var outs []*engine.Buffer
				for _, s := range p.Shards() {
					outs = append(outs, s.Output())
				}
				var coll time.Duration
				if split == layers.RowParallel {
					coll = median(t, func() error { return c.AllReduce(outs, rows*shape[0]) })
				} else {
					gathered, err := p.Run(xs, rows)
					require.NoError(t, err)
					coll = median(t, func() error { return c.AllGather(gathered, outs, rows*shape[0]/2) })
				}
				t.Logf("%s: one GPU %v; %s-parallel on two %v (%.2fx), its %s %v (%.0f%%)", name, single, split, total,
					float64(single)/float64(total), map[layers.Split]string{layers.RowParallel: "all-reduce", layers.ColumnParallel: "all-gather"}[split],
					coll, 100*float64(coll)/float64(total))
				p.Close()
			}
		}
	}
}

// randomPacked returns an [n, k] matrix of random codes, scales and
// biases, with no quantization pass.
func randomPacked(rng *rand.Rand, f quant.Format, n, k int) *quant.Matrix {
	m := &quant.Matrix{Format: f, Rows: n, Cols: k, ScaleType: quant.BF16}
	m.Weight = make([]byte, n*m.RowBytes())
	for i := 0; i < len(m.Weight); i += 8 {
		v := rng.Uint64()
		for j := range min(8, len(m.Weight)-i) {
			m.Weight[i+j] = byte(v >> (8 * j))
		}
	}
	groups := n * m.Groups()
	s := make([]float32, groups)
	b := make([]float32, groups)
	for i := range s {
		s[i] = float32(0.002 + 0.001*rng.Float64())
		b[i] = -8 * s[i]
	}
	m.Scales, m.Biases = quant.BF16.Bytes(s), quant.BF16.Bytes(b)
	return m
}

// median runs f 3 times, then 20 times timed, and returns the median.
func median(t *testing.T, f func() error) time.Duration {
	t.Helper()
	for range 3 {
		require.NoError(t, f())
	}
	times := make([]time.Duration, 20)
	for i := range times {
		start := time.Now()
		require.NoError(t, f())
		times[i] = time.Since(start)
	}
	slices.Sort(times)
	return times[len(times)/2]
}
