// Package shaders holds the kernel sources of the GPU backends, embedded
// in the binary and compiled at run time: shaders/cuda has common.cuh and
// one .cu file per kernel family of the catalog (the file name is the
// kernel's name), plus ptx.bundle, the PTX made from those sources for
// machines without NVRTC (regenerate it with go run ./cuda/internal/ptxgen).
package shaders

import (
	"embed"
	"fmt"
	"io/fs"
)

// The whole directory is embedded, so that the package builds before the
// PTX bundle has been generated.
//
//go:embed cuda
var cudaFiles embed.FS

// PTXBundleName is the name of the PTX bundle in the CUDA sources.
const PTXBundleName = "ptx.bundle"

// CUDA returns the CUDA sources, rooted at shaders/cuda.
func CUDA() fs.FS {
	sub, err := fs.Sub(cudaFiles, "cuda")
	if err != nil {
		panic(err) // "cuda" is a valid path
	}
	return sub
}

// CUDASource returns the text of the CUDA source file name, such as
// "qmv.cu" or "common.cuh".
func CUDASource(name string) (string, error) {
	b, err := fs.ReadFile(CUDA(), name)
	if err != nil {
		return "", fmt.Errorf("shaders: cuda source %s: %w", name, err)
	}
	return string(b), nil
}

// PTXBundle returns the embedded PTX bundle, or nil if there is none.
func PTXBundle() []byte {
	b, err := fs.ReadFile(CUDA(), PTXBundleName)
	if err != nil {
		return nil
	}
	return b
}
