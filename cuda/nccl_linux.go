//go:build linux

package cuda

import (
	"fmt"

	"github.com/ebitengine/purego"
)

// loadNCCL opens NCCL from the library path, a CUDA toolkit or pip's
// nvidia-nccl wheels, and binds every function of ncclAPI.
func loadNCCL() (*ncclAPI, error) {
	h, name, err := openFirst(ncclLibraries, wheelLibDirs("nvidia/nccl/lib", "nvidia/cu13/lib"))
	if err != nil {
		return nil, fmt.Errorf("%s not found: %w", ncclLibraries[0], err)
	}
	a := &ncclAPI{lib: name}
	if err := bind(h, name, a.symbols()); err != nil {
		purego.Dlclose(h)
		return nil, err
	}
	return a, nil
}
