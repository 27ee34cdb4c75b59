package cuda

import (
	"bytes"
	"fmt"

	"github.com/mlxq/mlxq/engine"
)

// LoadPTX loads a kernel the caller compiled itself, for tools and tests
// that run their own kernels with the backend's argument lists: ptx is a
// module whose entry mlxq_kernel takes (x, w, scales, biases, bias, y, M,
// N, K) for matrix products and (w, codes, rows, cols) for unpack, as the
// backend's own kernels do. The driver's linker JIT-compiles it for the
// device, like the embedded PTX, and the result is cached alike.
//
// The kernel dispatches through the driver's queues like a compiled
// variant, but each launch takes its grid, block and dynamic shared memory
// bytes from launch(p) (for unpack, p.N is the rows and p.K the codes per
// row), checked against the device's limits; it never takes the cuBLAS
// path. name names the kernel in messages.
func (d *Driver) LoadPTX(name string, ptx []byte, launch func(p engine.Params) (grid, block [3]uint32, shared uint32)) (engine.Compiled, error) {
	switch {
	case name == "":
		return nil, fmt.Errorf("%w: LoadPTX: no name", engine.ErrArgs)
	case launch == nil:
		return nil, fmt.Errorf("%w: %s: no launch", engine.ErrArgs, name)
	case len(ptx) == 0:
		return nil, fmt.Errorf("%w: %s: empty PTX", engine.ErrArgs, name)
	case !bytes.Contains(ptx, []byte(".entry "+kernelName)):
		return nil, fmt.Errorf("%w: %s: the PTX has no .entry %s", engine.ErrArgs, name, kernelName)
	}
	mod, err := d.module(d.ptxBuild(name, ptx))
	if err != nil {
		return nil, err
	}
	return &kernel{name: name, launch: launch, mod: mod}, nil
}
