//go:build linux

package cuda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/ebitengine/purego"
)

// cudaLibraries are the names under which the driver library is tried.
var cudaLibraries = []string{"libcuda.so.1", "libcuda.so"}

// nvrtcLibraries are the sonames NVRTC is tried under, newest first.
var nvrtcLibraries = []string{"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"}

// loadCUDA opens the driver library and binds every function of cuAPI.
func loadCUDA() (*cuAPI, error) {
	h, name, err := openFirst(cudaLibraries, nil)
	if err != nil {
		return nil, fmt.Errorf("%s not found: %w", cudaLibraries[0], err)
	}
	a := &cuAPI{}
	if err := bind(h, name, a.symbols()); err != nil {
		purego.Dlclose(h)
		return nil, err
	}
	return a, nil
}

// loadNVRTC opens NVRTC from the library path or a CUDA toolkit.
func loadNVRTC() (*nvrtcAPI, error) {
	h, name, err := openFirst(nvrtcLibraries, toolkitLibDirs())
	if err != nil {
		return nil, fmt.Errorf("libnvrtc.so not found: %w", err)
	}
	a := &nvrtcAPI{}
	if err := bind(h, name, a.symbols()); err != nil {
		purego.Dlclose(h)
		return nil, err
	}
	if err := a.loadVersion(); err != nil {
		purego.Dlclose(h)
		return nil, err
	}
	return a, nil
}

// openFirst dlopens the first of names that loads, from the dynamic
// linker's search path and then from each of dirs.
func openFirst(names, dirs []string) (uintptr, string, error) {
	var errs []error
	try := func(path string) (uintptr, bool) {
		h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			errs = append(errs, err)
			return 0, false
		}
		return h, true
	}
	for _, n := range names {
		if h, ok := try(n); ok {
			return h, n, nil
		}
	}
	for _, d := range dirs {
		for _, n := range names {
			p := filepath.Join(d, n)
			if _, err := os.Stat(p); err != nil {
				continue
			}
			if h, ok := try(p); ok {
				return h, p, nil
			}
		}
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return 0, "", errors.New(strings.Join(msgs, "; "))
}

// bind resolves each symbol in library h (named lib, for errors) and binds
// its Go function. A missing symbol is an error, not a panic.
func bind(h uintptr, lib string, syms []symbol) error {
	for _, s := range syms {
		addr, err := purego.Dlsym(h, s.name)
		if err != nil || addr == 0 {
			return fmt.Errorf("%s: symbol %s missing: %v", lib, s.name, err)
		}
		purego.RegisterFunc(s.fn, addr)
	}
	return nil
}

// wheelLibDirs lists the toolkits' library directories, then the
// directories subs (such as "nvidia/cu13/lib") of pip's nvidia wheels in the
// active virtual environment and the usual site-packages.
func wheelLibDirs(subs ...string) []string {
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
		for _, sub := range subs {
			matches, _ := filepath.Glob(filepath.Join(s, sub))
			dirs = append(dirs, matches...)
		}
	}
	return dirs
}

// toolkitLibDirs lists the library directories of the CUDA toolkits named
// by $CUDA_HOME and $CUDA_PATH, and of /usr/local/cuda.
func toolkitLibDirs() []string {
	target := "x86_64-linux"
	if runtime.GOARCH == "arm64" {
		target = "sbsa-linux"
	}
	var dirs []string
	for _, root := range toolkitRoots() {
		dirs = append(dirs, filepath.Join(root, "lib64"), filepath.Join(root, "targets", target, "lib"), filepath.Join(root, "lib"))
	}
	return dirs
}
