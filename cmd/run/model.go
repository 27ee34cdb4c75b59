package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mlxq/mlxq"
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/loader"
	"github.com/mlxq/mlxq/quant"
)

// backendChoices lists the values --backend takes in this binary.
func backendChoices() string {
	return strings.Join(append([]string{engine.Auto}, engine.Backends()...), ", ")
}

// kernelChoices lists the catalog's matrix product kernels.
func kernelChoices() string { return engine.KernelNames(engine.MatmulKernels()) }

// modelFlags select a model: a path, or the embedded default, and the
// format of a bare .safetensors file.
type modelFlags struct {
	path      string
	bits      int
	groupSize int
	mode      string
}

func (f *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.path, "model", "", "model directory or .safetensors file (default: the embedded tiny model)")
	fs.IntVar(&f.bits, "bits", 0, "bits of a bare .safetensors file")
	fs.IntVar(&f.groupSize, "group-size", 0, "group size of a bare .safetensors file")
	fs.StringVar(&f.mode, "mode", "", "quantization mode of a bare .safetensors file (affine, mxfp4, mxfp8, nvfp4)")
}

// open opens the selected model and returns it with its display name.
func (f *modelFlags) open() (*loader.Model, string, error) {
	var opts []loader.Option
	if f.bits != 0 || f.groupSize != 0 || f.mode != "" {
		format, err := f.format()
		if err != nil {
			return nil, "", err
		}
		opts = append(opts, loader.WithFormat(format))
	}
	if f.path == "" {
		m, err := loader.OpenFS(mlxq.DefaultModel(), ".", opts...)
		return m, mlxq.DefaultModelName, err
	}
	if _, err := os.Stat(f.path); err != nil {
		return nil, "", fmt.Errorf("--model %s: %w; want a model directory (config.json and model*.safetensors) or a .safetensors file", f.path, pathError(err))
	}
	m, err := loader.Open(f.path, opts...)
	if err != nil {
		return nil, "", err
	}
	return m, filepath.Clean(f.path), nil
}

// pathError is err without the operation and path that *fs.PathError
// repeats ("stat /x: no such file or directory" becomes the last part).
func pathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// format builds the format of --mode, --bits and --group-size, taking the
// mode's defaults for the ones not given.
func (f *modelFlags) format() (quant.Format, error) {
	format, err := quant.ParseFormat(f.mode, f.bits, f.groupSize)
	if err != nil {
		return quant.Format{}, fmt.Errorf("--mode/--bits/--group-size: %w", err)
	}
	return format, nil
}
