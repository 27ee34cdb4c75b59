package msltest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/cuda"
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/engine/enginetest"
	"github.com/mlxq/mlxq/metal"
)

// translated is an engine.Driver that runs the Metal backend's kernels,
// translated to CUDA, on the CUDA backend's driver: memory, copies and
// queues are the CUDA driver's; kernels, precision and geometry are the
// Metal backend's.
type translated struct {
	*cuda.Driver
	// ptx returns the PTX of v's translated unit.
	ptx func(v engine.Variant) ([]byte, error)
}

func (d *translated) Kernels() []engine.Kernel { return metal.Kernels() }

// Precision is the Metal backend's: the float32 precision of the
// activations' dtype, since every kernel computes in float (the
// simdgroup matrices too, in the translation as on a Mac).
func (d *translated) Precision(v engine.Variant) engine.Precision { return engine.ActPrecision(v.Act) }

// Crossover is not the Metal backend's, which is unexported and not yet
// measured: any value exercises the plan, which is all the suite checks
// of it.
func (d *translated) Crossover(engine.Params) int { return 8 }

func (d *translated) Compile(v engine.Variant) (engine.Compiled, error) {
	spec, ok := metal.Geometry(v)
	if !ok {
		return nil, engine.ErrUnsupported
	}
	u, err := metal.CompileUnit(v)
	if err != nil {
		return nil, err
	}
	ptx, err := d.ptx(v)
	if err != nil {
		return nil, err
	}
	return d.LoadPTX(u.Name, ptx, func(p engine.Params) (grid, block [3]uint32, shared uint32) {
		l := spec.Launch(p)
		for i := range 3 {
			grid[i], block[i] = uint32(l.Grid[i]), uint32(l.Threads[i])
		}
		return grid, block, uint32(l.Memory)
	})
}

// TestCUDAConformance runs the engine's conformance suite on the Metal
// kernels translated to CUDA, dispatched with the Metal backend's geometry
// through the CUDA backend's driver. It needs a CUDA GPU, and the PTX of
// every variant: from the directory EnvPTX names, or else compiled with
// clang with the NVPTX target.
func TestCUDAConformance(t *testing.T) {
	var ptx func(v engine.Variant) ([]byte, error)
	if dir := os.Getenv(EnvPTX); dir != "" {
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("%s: %v", EnvPTX, err)
		}
		ptx = func(v engine.Variant) ([]byte, error) { return readPTX(dir, v) }
	} else {
		clang, err := findClang()
		if err != nil {
			t.Skipf("%v, or %s names precompiled PTX", err, EnvPTX)
		}
		here, err := filepath.Abs(".")
		require.NoError(t, err)
		cudaDir, tmp := filepath.Join(here, "..", "..", "..", "shaders", "cuda"), t.TempDir()
		ptx = func(v engine.Variant) ([]byte, error) {
			name, err := ptxFile(v)
			if err != nil {
				return nil, err
			}
			s, err := compilePTX(clang, here, cudaDir, tmp, strings.TrimSuffix(name, ".ptx"), v)
			return []byte(s), err
		}
	}
	drv, err := cuda.Open()
	if err != nil {
		t.Skip("cuda: " + strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	t.Logf("%s; %s; driver %d", drv.Name(), drv.Compiler(), drv.DriverVersion())
	dev := engine.NewDevice("metal-on-cuda", &translated{Driver: drv, ptx: ptx})
	t.Cleanup(func() { assert.NoError(t, dev.Close()) })
	enginetest.TestDevice(t, dev)
}
