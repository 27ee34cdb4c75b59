package msltest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/metal"
	"github.com/mlxq/mlxq/quant"
)

// gatherHarness is a CPU build of one embed or gathered product unit,
// with cpu_harness.h, under AddressSanitizer so that a read past
// a buffer fails the run.
type gatherHarness struct {
	path string
	spec metal.Spec
}

func buildGather(t *testing.T, dir string, v engine.Variant) *gatherHarness {
	t.Helper()
	u, err := metal.CompileUnit(v)
	require.NoError(t, err)
	src, _, err := Translate(u.Source)
	require.NoError(t, err, u.Name)
	spec, ok := metal.Geometry(v)
	require.True(t, ok, "%v: no geometry", v)
	harness, err := filepath.Abs("cpu_harness.h")
	require.NoError(t, err)
	prelude, err := filepath.Abs("cpu_prelude.h")
	require.NoError(t, err)
	f, err := os.CreateTemp(dir, "unit*.cc")
	require.NoError(t, err)
	_, err = f.WriteString(src + "\n#include \"" + harness + "\"\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	bin := f.Name() + ".bin"
	out, err := exec.Command("g++", "-std=c++20", "-O1", "-pthread", "-fsanitize=address", "-Wno-attributes",
		"-DMLXQ_NINTS=2", "-DMLXQ_PAD_WORDS=0",
		"-include", prelude, "-o", bin, f.Name()).CombinedOutput()
	require.NoError(t, err, "%s:\n%s", u.Name, out)
	return &gatherHarness{path: bin, spec: spec}
}

// run dispatches the harness for the engine's parameters p (M the ids or
// the routing's tiles) on bufs and returns buffer out after the run.
func (h *gatherHarness) run(t *testing.T, dir string, p engine.Params, out int, bufs [][]byte) []byte {
	t.Helper()
	l := h.spec.Launch(p)
	var in bytes.Buffer
	put := func(v int) { binary.Write(&in, binary.LittleEndian, uint32(v)) }
	for _, g := range l.Grid {
		put(g)
	}
	for _, n := range l.Threads {
		put(n)
	}
	put(l.Memory)
	put(2)
	put(p.N)
	put(p.K)
	put(out)
	put(len(bufs))
	for _, b := range bufs {
		binary.Write(&in, binary.LittleEndian, uint64(len(b)))
		in.Write(b)
	}
	f, err := os.CreateTemp(dir, "in")
	require.NoError(t, err)
	_, err = f.Write(in.Bytes())
	require.NoError(t, err)
	require.NoError(t, f.Close())
	cmd := exec.Command(h.path, f.Name(), f.Name()+".out")
	cmd.Env = append(os.Environ(), "ASAN_OPTIONS=detect_leaks=0")
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", msg)
	y, err := os.ReadFile(f.Name() + ".out")
	require.NoError(t, err)
	return y
}

// gatherCases is the sample TestCPUGather runs of kernel k: every width
// and mode once, the group sizes, scale and activation dtypes rotating;
// with EnvAll set, every format with every scale dtype.
func gatherCases(k engine.Kernel) []engine.Variant {
	all := os.Getenv(EnvAll) == "1"
	floats := []quant.DType{quant.F32, quant.F16, quant.BF16}
	var out []engine.Variant
	for i, f := range quant.Formats() {
		if !all && f.Mode == quant.Affine && f.GroupSize != []int{32, 64, 128}[f.Bits%3] {
			continue
		}
		scales := []quant.DType{quant.U8}
		if f.Mode == quant.Affine {
			scales = floats
			if !all {
				scales = floats[i%3 : i%3+1]
			}
		}
		for j, st := range scales {
			out = append(out, engine.Variant{Kernel: k, Format: f, Act: engine.ActDTypes()[(i+j+int(k))%3], Scale: st})
		}
	}
	return out
}

func poison(act quant.DType, n int) []byte {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.NaN())
	}
	return act.Bytes(v)
}

func stacked(t *testing.T, rng *rand.Rand, v engine.Variant, e, n, k int) []*quant.Matrix {
	var out []*quant.Matrix
	for range e {
		w := make([]float32, n*k)
		for i := range w {
			w[i] = float32(rng.NormFloat64() * 0.05)
		}
		m, err := quant.Quantize(w, n, k, v.Format, v.Scale)
		require.NoError(t, err)
		out = append(out, m)
	}
	return out
}

// TestCPUGather runs the Metal embed and gathered product kernels'
// source, translated to C++, with the Metal backend's geometry table, on
// the CPU: against the dequantized rows and the float64 reference of each
// (row, expert) pair, with y poisoned past the ids or pairs, and an id out
// of range giving NaNs without a read out of bounds.
func TestCPUGather(t *testing.T) {
	if os.Getenv(EnvCPU) != "1" {
		t.Skipf("runs the Metal kernels on the CPU; set %s=1", EnvCPU)
	}
	if _, err := exec.LookPath("g++"); err != nil {
		t.Skip("g++ not found: running the Metal kernels on the CPU needs it")
	}
	dir := t.TempDir()
	var vs []engine.Variant
	for _, k := range []engine.Kernel{engine.Embed, engine.GatherQMV, engine.GatherQMM} {
		vs = append(vs, gatherCases(k)...)
	}
	harnesses := make([]*gatherHarness, len(vs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.NumCPU())
	for i, v := range vs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			harnesses[i] = buildGather(t, dir, v)
		})
	}
	wg.Wait()
	rng := rand.New(rand.NewPCG(41, 42))
	for i, v := range vs {
		h := harnesses[i]
		if h == nil {
			continue
		}
		k := 128
		if v.GroupSize == 16 {
			k = 48
		}
		if v.Kernel == engine.Embed {
			testCPUEmbed(t, dir, h, rng, v, 29, k)
			continue
		}
		for _, s := range [][3]int{{1, 2, 5}, {23, 2, 3}} {
			testCPUGatherProduct(t, dir, h, rng, v, s[0], s[1], s[2], 13, k, i%2 == 0)
		}
	}
}

func testCPUEmbed(t *testing.T, dir string, h *gatherHarness, rng *rand.Rand, v engine.Variant, vocab, k int) {
	m := stacked(t, rng, v, 1, vocab, k)[0]
	ids := []int32{int32(vocab - 1), 0, 7, int32(vocab), 7, -3}
	idBytes := make([]byte, 0, 4*len(ids))
	for _, id := range ids {
		idBytes = binary.LittleEndian.AppendUint32(idBytes, uint32(id))
	}
	p := engine.Params{M: len(ids), N: vocab, K: k, Format: v.Format, Act: v.Act}
	raw := h.run(t, dir, p, 4, [][]byte{idBytes, m.Weight, m.Scales, m.Biases, poison(v.Act, (len(ids)+1)*k)})
	y := make([]float32, (len(ids)+1)*k)
	v.Act.Decode(y, raw)
	for i, id := range ids {
		row := y[i*k : (i+1)*k]
		if id < 0 || int(id) >= vocab {
			for _, x := range row {
				if !math.IsNaN(float64(x)) {
					t.Errorf("%v: id %d out of range gave %v, want NaNs", v, id, x)
					break
				}
			}
			continue
		}
		ref := make([]float64, k)
		m.DequantizeRow(ref, int(id))
		assert.LessOrEqual(t, quant.RelErr(row, ref), engine.ActPrecision(v.Act).Tolerance(), "%v: id %d", v, id)
	}
	for _, x := range y[len(ids)*k:] {
		if !math.IsNaN(float64(x)) {
			t.Errorf("%v: y written past the ids", v)
			break
		}
	}
}

func testCPUGatherProduct(t *testing.T, dir string, h *gatherHarness, rng *rand.Rand, v engine.Variant, m, topK, experts, n, k int, withBias bool) {
	mats := stacked(t, rng, v, experts, n, k)
	var w, s, b, biasBytes []byte
	for _, mat := range mats {
		w, s, b = append(w, mat.Weight...), append(s, mat.Scales...), append(b, mat.Biases...)
	}
	var bias []float32
	if withBias {
		bias = make([]float32, experts*n)
		for i := range bias {
			bias[i] = float32(rng.NormFloat64())
		}
		biasBytes = engine.Float32Bytes(bias)
	}
	indices := make([]int32, m*topK)
	for i := range indices {
		indices[i] = int32(rng.IntN(experts))
	}
	r, err := engine.Route(indices, topK, experts, v.Kernel.Spec().TileRows)
	require.NoError(t, err)
	r.Bias = withBias
	x := make([]float32, m*k)
	for i := range x {
		x[i] = v.Act.Round(float32(rng.NormFloat64()))
	}
	pairs := m * topK
	p := engine.Params{M: len(r.Tiles), N: n, K: k, Format: v.Format, Act: v.Act}
	raw := h.run(t, dir, p, 5, [][]byte{v.Act.Bytes(x), w, s, b, biasBytes, poison(v.Act, (pairs+2)*n), r.Bytes()})
	y := make([]float32, (pairs+2)*n)
	v.Act.Decode(y, raw)
	var ref []float64
	for pair, e := range indices {
		var eb []float32
		if bias != nil {
			eb = bias[int(e)*n : (int(e)+1)*n]
		}
		row := pair / topK
		ref = append(ref, quant.Reference(x[row*k:(row+1)*k], 1, mats[e], eb)...)
	}
	name := fmt.Sprintf("%v M=%d top %d of %d, %dx%d", v, m, topK, experts, n, k)
	assert.LessOrEqual(t, quant.RelErr(y[:pairs*n], ref), engine.ActPrecision(v.Act).Tolerance(), "%s", name)
	for _, val := range y[pairs*n:] {
		if !math.IsNaN(float64(val)) {
			t.Errorf("%s: y written past the pairs", name)
			break
		}
	}
}
