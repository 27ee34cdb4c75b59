package msltest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/cuda"
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/engine/enginetest"
	"github.com/mlxq/mlxq/metal"
)

// PTXLoader is what the CUDA backend's driver must offer for the
// translated Metal kernels to run on it: a kernel from PTX (one entry,
// mlxq_kernel, with the CUDA backend's argument lists) and a launch
// computed per dispatch, which TestCUDAConformance takes from the Metal
// backend's geometry table. Package cuda does not export it yet.
type PTXLoader interface {
	LoadPTX(name string, ptx []byte, launch func(p engine.Params) (grid, block [3]uint32, shared uint32)) (engine.Compiled, error)
}

// translated is an engine.Driver that runs the Metal backend's kernels,
// translated to CUDA, on the CUDA backend's driver: memory, copies and
// queues are the CUDA driver's; kernels, precision and geometry are the
// Metal backend's.
type translated struct {
	engine.Driver
	loader       PTXLoader
	clang        string
	here, shared string
	dir          string
	mu           sync.Mutex
	n            int
}

func (d *translated) Kernels() []engine.Kernel { return metal.Kernels() }

func (d *translated) Precision(v engine.Variant) engine.Precision { return engine.ActPrecision(v.Act) }

// Crossover is qmv's reach on a Mac, as the Metal backend reports it
// there; any value exercises the plan.
func (d *translated) Crossover(engine.Params) int { return 8 }

func (d *translated) Compile(v engine.Variant) (engine.Compiled, error) {
	spec, ok := metal.Geometry(v)
	if !ok {
		return nil, engine.ErrUnsupported
	}
	d.mu.Lock()
	d.n++
	name := fmt.Sprintf("v%d", d.n)
	d.mu.Unlock()
	ptx, err := compilePTX(d.clang, d.here, d.shared, d.dir, name, v)
	if err != nil {
		return nil, err
	}
	u, _ := metal.CompileUnit(v)
	return d.loader.LoadPTX(u.Name, []byte(ptx), func(p engine.Params) (grid, block [3]uint32, shared uint32) {
		l := spec.Launch(p)
		for i := range 3 {
			grid[i], block[i] = uint32(l.Grid[i]), uint32(l.Threads[i])
		}
		return grid, block, uint32(l.Memory)
	})
}

// TestCUDAConformance runs the engine's conformance suite on the Metal
// kernels translated to CUDA, dispatched with the Metal backend's geometry
// through the CUDA backend's driver. It needs a CUDA GPU, clang with the
// NVPTX target, and a driver that implements PTXLoader.
func TestCUDAConformance(t *testing.T) {
	clang := os.Getenv(EnvClang)
	if clang == "" {
		clang = "clang-19"
	}
	if _, err := exec.LookPath(clang); err != nil {
		t.Skipf("%s not found: the translated kernels are compiled to PTX with clang", clang)
	}
	drv, err := cuda.Open()
	if err != nil {
		t.Skip("cuda: " + strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	loader, ok := any(drv).(PTXLoader)
	if !ok {
		drv.Close()
		t.Skip("the cuda driver has no LoadPTX, so it cannot run foreign PTX with the Metal geometry")
	}
	here, err := filepath.Abs(".")
	require.NoError(t, err)
	d := &translated{Driver: drv, loader: loader, clang: clang, here: here,
		shared: filepath.Join(here, "..", "..", "..", "shaders", "cuda"), dir: t.TempDir()}
	dev := engine.NewDevice("metal-on-cuda", d)
	t.Cleanup(func() { assert.NoError(t, dev.Close()) })
	enginetest.TestDevice(t, dev)
}
