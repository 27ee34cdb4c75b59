//go:build linux

package cuda

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/ebitengine/purego"
)

// loadNCCL opens NCCL from the library path, a CUDA toolkit or pip's
// nvidia-nccl wheels, and binds every function of ncclAPI.
func loadNCCL() (*ncclAPI, error) {
	h, name, err := openFirst(ncclLibraries, ncclLibDirs())
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

// ncclLibDirs lists the toolkits' library directories, then those of
// pip's nvidia-nccl wheels (nvidia/nccl/lib; nvidia/cu13/lib for CUDA 13)
// in the active virtual environment and the usual site-packages.
func ncclLibDirs() []string {
	dirs := toolkitLibDirs()
	var sites []string
	if v := os.Getenv("VIRTUAL_ENV"); v != "" {
		sites = append(sites, filepath.Join(v, "lib", "python3*", "site-packages"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		sites = append(sites, filepath.Join(h, ".local", "lib", "python3*", "site-packages"))
	}
	sites = append(sites, "/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages",
		"/usr/lib/python3*/dist-packages", "/usr/lib/python3/dist-packages", "/opt/conda/lib/python3*/site-packages")
	for _, s := range sites {
		for _, sub := range []string{"nvidia/nccl/lib", "nvidia/cu13/lib"} {
			matches, _ := filepath.Glob(filepath.Join(s, sub))
			dirs = append(dirs, matches...)
		}
	}
	return dirs
}
