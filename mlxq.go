// Package mlxq runs the quantized layers of MLX-format models (mlx-community
// safetensors, DWQ included) from Go, on the CPU or a GPU, without cgo.
//
// The work is split over packages: quant (the format's math), loader
// (model files), engine (the backend contract and the plan), cpu (the
// pure-Go backend), layers (QuantLinear) and cmd/run (the command line).
// This package holds the model the command line runs by default.
package mlxq

import (
	"embed"
	"io/fs"
)

//go:embed testdata/tiny/config.json testdata/tiny/model.safetensors
var tiny embed.FS

// DefaultModelName names the embedded default model.
const DefaultModelName = "tiny (embedded)"

// DefaultModel returns the embedded default model, a small 4-bit group-32
// model with BF16 scales (testdata/tiny), as a file system holding
// config.json and model.safetensors at its root.
func DefaultModel() fs.FS {
	sub, err := fs.Sub(tiny, "testdata/tiny")
	if err != nil {
		panic(err) // the embedded path is fixed at build time
	}
	return sub
}
