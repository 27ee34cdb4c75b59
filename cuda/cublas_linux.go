//go:build linux

package cuda

import (
	"fmt"

	"github.com/ebitengine/purego"
)

// loadCUBLAS opens cuBLAS from the library path, a CUDA toolkit or pip's
// nvidia wheels, and binds every function of cublasAPI.
func loadCUBLAS() (*cublasAPI, error) {
	h, name, err := openFirst(cublasLibraries, wheelLibDirs("nvidia/cu13/lib", "nvidia/cublas/lib"))
	if err != nil {
		return nil, fmt.Errorf("%s not found: %w", cublasLibraries[0], err)
	}
	a := &cublasAPI{lib: name}
	if err := bind(h, name, a.symbols()); err != nil {
		purego.Dlclose(h)
		return nil, err
	}
	return a, nil
}
