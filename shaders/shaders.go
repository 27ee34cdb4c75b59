// Package shaders holds the kernel sources of the GPU backends, embedded
// in the binary and compiled at run time: shaders/cuda has common.cuh and
// one .cu file per kernel family of the catalog (the file name is the
// kernel's name), plus ptx.bundle, the PTX made from those sources for
// machines without NVRTC (regenerate it with go run ./cuda/internal/ptxgen);
// shaders/metal has common.metal and one .metal file per kernel family,
// compiled by the metal backend with newLibraryWithSource, and
// msl_check.h, the stand-in for the Metal standard library that lets a C++
// compiler check them (not embedded).
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

//go:embed metal/*.metal
var metalFiles embed.FS

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

// MetalCommon is the name of the helper source every Metal compile unit
// starts with.
const MetalCommon = "common.metal"

// Metal returns the Metal Shading Language sources (*.metal), rooted at
// shaders/metal.
func Metal() fs.FS {
	sub, err := fs.Sub(metalFiles, "metal")
	if err != nil {
		panic(err) // "metal" is a valid path
	}
	return sub
}

// MetalSource returns the text of the Metal source file name, such as
// "qmv.metal" or "common.metal".
func MetalSource(name string) (string, error) {
	b, err := fs.ReadFile(Metal(), name)
	if err != nil {
		return "", fmt.Errorf("shaders: metal source %s: %w", name, err)
	}
	return string(b), nil
}
