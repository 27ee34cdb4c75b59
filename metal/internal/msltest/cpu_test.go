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

// EnvCPU, set to 1, runs TestCPU and TestCPUUnpack (about a minute on two
// cores; CI's metal kernels step sets it).
const EnvCPU = "MLXQ_MSLTEST_CPU"

// EnvAll, set to 1, makes TestCPU run every format of every kernel, not
// the default sample.
const EnvAll = "MLXQ_MSLTEST_ALL"

// needCPU skips the test unless g++ is there and EnvCPU is set.
func needCPU(t *testing.T) {
	t.Helper()
	if os.Getenv(EnvCPU) != "1" {
		t.Skipf("runs the Metal kernels on the CPU (about a minute); set %s=1", EnvCPU)
	}
	if _, err := exec.LookPath("g++"); err != nil {
		t.Skip("g++ not found: running the Metal kernels on the CPU needs it")
	}
}

// harness is a built CPU harness of one compile unit.
type harness struct {
	path string
	spec metal.Spec
}

var (
	buildMu sync.Mutex
	builds  = map[string]*harness{}
)

// build compiles the unit of v with the CPU prelude and harness.
func build(t *testing.T, dir string, v engine.Variant) *harness {
	t.Helper()
	u, err := metal.CompileUnit(v)
	require.NoError(t, err)
	buildMu.Lock()
	h, ok := builds[u.Name]
	buildMu.Unlock()
	if ok {
		return h
	}
	src, kind, err := Translate(u.Source)
	require.NoError(t, err, u.Name)
	spec, ok := metal.Geometry(v)
	require.True(t, ok, "%v: no geometry", v)
	here, err := filepath.Abs(".")
	require.NoError(t, err)
	name := fmt.Sprintf("u%x", len(builds)) + fmt.Sprint(rand.Uint32())
	unit := filepath.Join(dir, name+".cc")
	require.NoError(t, os.WriteFile(unit, []byte(src+"\n#include \"cpu_harness.h\"\n"), 0o644))
	bin := filepath.Join(dir, name)
	cmd := exec.Command("g++", "-std=c++20", "-O0", "-pthread", fmt.Sprintf("-DMLXQ_NINTS=%d", kind.ints()),
		"-Wno-attributes", "-I", here, "-include", filepath.Join(here, "cpu_prelude.h"), "-o", bin, unit)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s:\n%s", u.Name, out)
	h = &harness{path: bin, spec: spec}
	buildMu.Lock()
	builds[u.Name] = h
	buildMu.Unlock()
	return h
}

// run dispatches the harness on bufs with the geometry of the backend and
// returns the output buffer.
func (h *harness) run(t *testing.T, dir string, kind Kind, p engine.Params, bufs [][]byte) []byte {
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
	ints, result := []int{p.M, p.N, p.K}, 5 // the output buffer: y
	if kind == Unpack {
		ints, result = []int{p.N, p.K}, 1 // codes
	}
	put(len(ints))
	for _, v := range ints {
		put(v)
	}
	put(result)
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
	outPath := f.Name() + ".out"
	out, err := exec.Command(h.path, f.Name(), outPath).CombinedOutput()
	require.NoError(t, err, "%s", out)
	y, err := os.ReadFile(outPath)
	require.NoError(t, err)
	return y
}

type cpuCase struct {
	k     engine.Kernel
	f     quant.Format
	scale quant.DType
}

// cases is the sample TestCPU runs: every kernel, every activation dtype,
// every width and mode through qmv and qmm.
func cases() []cpuCase {
	a := func(bits, gs int) quant.Format { return quant.Format{Mode: quant.Affine, Bits: bits, GroupSize: gs} }
	out := []cpuCase{
		{engine.PerElement, a(3, 64), quant.F16},
		{engine.PerElement, quant.DefaultFormat(quant.NVFP4), quant.U8},
		{engine.Tiled, a(4, 32), quant.BF16},
		{engine.SIMD, a(5, 32), quant.F32},
		{engine.SIMD4, a(4, 32), quant.F16},
		{engine.SIMD4GS64, a(6, 64), quant.BF16},
		{engine.PackedSIMD4B4, a(4, 32), quant.BF16},
	}
	for _, k := range []engine.Kernel{engine.QMV, engine.QMM} {
		for i, bits := range []int{2, 3, 4, 5, 6, 8} {
			out = append(out, cpuCase{k, a(bits, []int{32, 64, 128}[i%3]), []quant.DType{quant.BF16, quant.F16, quant.F32}[i%3]})
		}
		for _, m := range []quant.Mode{quant.MXFP4, quant.MXFP8, quant.NVFP4} {
			out = append(out, cpuCase{k, quant.DefaultFormat(m), quant.U8})
		}
	}
	if os.Getenv(EnvAll) == "1" {
		out = nil
		for _, k := range engine.MatmulKernels() {
			for _, v := range metal.Variants() {
				if v.Kernel == k && v.Act == quant.F32 {
					out = append(out, cpuCase{k, v.Format, v.Scale})
				}
			}
		}
	}
	return out
}

// TestCPU runs the Metal kernels' own source, translated to C++, with the
// Metal backend's geometry table, on the CPU: each against the float64
// reference, with y rows past M poisoned to catch stray writes.
func TestCPU(t *testing.T) {
	needCPU(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	type job struct {
		c   cpuCase
		act quant.DType
	}
	var jobs []job
	// Each case with one activation dtype in turn, and affine 4-bit qmv
	// and qmm with all three.
	for i, c := range cases() {
		acts := engine.ActDTypes()
		if !(c.f.Mode == quant.Affine && c.f.Bits == 4 && (c.k == engine.QMV || c.k == engine.QMM)) && os.Getenv(EnvAll) != "1" {
			acts = acts[i%3 : i%3+1]
		}
		for _, act := range acts {
			jobs = append(jobs, job{c, act})
		}
	}
	// Build in parallel, then run.
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.NumCPU())
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			build(t, dir, engine.Variant{Kernel: j.c.k, Format: j.c.f, Act: j.act, Scale: j.c.scale})
		}()
	}
	wg.Wait()
	for ji, j := range jobs {
		c, act := j.c, j.act
		v := engine.Variant{Kernel: c.k, Format: c.f, Act: act, Scale: c.scale}
		h := build(t, dir, v)
		shapes := [][3]int{{7, 13, 128}, {3, 40, 256}, {17, 50, 384}}
		if c.k != engine.QMV && c.k != engine.PerElement {
			// Two rows of 32-row tiles.
			shapes = append(shapes, [3]int{40, 24, 128})
		}
		if c.f.Mode == quant.NVFP4 {
			shapes = append(shapes, [3]int{5, 9, 48})
		}
		for si, s := range shapes {
			m, n, k := s[0], s[1], s[2]
			if k%c.f.GroupSize != 0 {
				continue
			}
			w := make([]float32, n*k)
			for i := range w {
				w[i] = float32(rng.NormFloat64() * 0.05)
			}
			mat, err := quant.Quantize(w, n, k, c.f, c.scale)
			require.NoError(t, err)
			var bias []float32
			var biasBytes []byte
			if (ji+si)%2 == 0 {
				bias = make([]float32, n)
				for i := range bias {
					bias[i] = float32(rng.NormFloat64())
				}
				biasBytes = engine.Float32Bytes(bias)
			}
			rows := m + 2
			x := make([]float32, rows*k)
			for i := range x {
				x[i] = act.Round(float32(rng.NormFloat64()))
			}
			weights := mat.Weight
			if c.k.Spec().Layout == engine.Codes {
				weights = make([]byte, n*k)
				for r := range n {
					quant.Unpack(weights[r*k:(r+1)*k], mat.Row(r), c.f.Bits)
				}
			}
			poison := make([]float32, rows*n)
			for i := range poison {
				poison[i] = float32(math.NaN())
			}
			p := engine.Params{M: m, N: n, K: k, Format: c.f, Act: act}
			raw := h.run(t, dir, Matmul, p, [][]byte{act.Bytes(x), weights, mat.Scales, mat.Biases, biasBytes, act.Bytes(poison)})
			y := make([]float32, rows*n)
			act.Decode(y, raw)
			ref := quant.Reference(x, m, mat, bias)
			name := fmt.Sprintf("%v %dx%dx%d", v, m, n, k)
			e := quant.RelErr(y[:m*n], ref)
			assert.LessOrEqual(t, e, engine.ActPrecision(act).Tolerance(), "%s: against the float64 reference", name)
			for i, val := range y[m*n:] {
				if !math.IsNaN(float64(val)) {
					t.Errorf("%s: y element %d past row M was written", name, m*n+i)
					break
				}
			}
			if testing.Verbose() && si == 0 {
				t.Logf("%s: relative error %.2g", name, e)
			}
		}
	}
}

// TestCPUUnpack runs the unpack kernel on the CPU for every width.
func TestCPUUnpack(t *testing.T) {
	needCPU(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 8))
	for _, bits := range []int{2, 3, 4, 5, 6, 8} {
		const rows, cols = 13, 96
		codes := make([]uint8, rows*cols)
		for i := range codes {
			codes[i] = uint8(rng.IntN(1 << bits))
		}
		packed := make([]byte, rows*quant.RowBytes(cols, bits))
		for r := range rows {
			quant.Pack(packed[r*quant.RowBytes(cols, bits):(r+1)*quant.RowBytes(cols, bits)], codes[r*cols:(r+1)*cols], bits)
		}
		h := build(t, dir, engine.Variant{Kernel: engine.Unpack, Format: quant.Format{Bits: bits}})
		got := h.run(t, dir, Unpack, engine.Params{N: rows, K: cols}, [][]byte{packed, make([]byte, rows*cols)})
		assert.Equal(t, codes, got, "bits %d", bits)
	}
}
