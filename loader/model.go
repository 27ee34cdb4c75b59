package loader

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/mlxq/mlxq/quant"
)

// A Model is an opened model: its safetensors files, its quantization config
// and its validated quantized layers. Its methods may be called from several
// goroutines at once, except Close.
type Model struct {
	path    string
	config  *Config
	files   []*file
	tensors map[string]*Tensor
	names   []string // tensor names, in natural order
	layers  map[string]*Layer
	order   []*Layer // layers, in natural order of names
	closed  bool
}

// An Option changes how a model is opened.
type Option func(*options)

type options struct {
	format *quant.Format
}

// WithFormat gives the global quantization format of the model: the one of
// a bare .safetensors file, or of a directory without config.json. For a
// directory with config.json it replaces the config's global format;
// per-layer entries of the config still apply.
func WithFormat(f quant.Format) Option {
	return func(o *options) { o.format = &f }
}

// Open opens the model at path, a directory or a single .safetensors file.
//
// A directory holds config.json and model*.safetensors: one file, or shards.
// When it also holds model.safetensors.index.json, every file the index
// names must exist and every tensor it names must be in the file it names.
// A bare .safetensors file with quantized layers needs WithFormat, since
// their shapes do not fix the bit width and group size.
//
// Every quantized layer is validated before Open returns. The files are
// memory-mapped read-only (read into memory on systems without mmap) and no
// tensor data is copied; Close releases them.
func Open(path string, opts ...Option) (*Model, error) {
	return open(osSource{}, path, opts)
}

// OpenFS is like Open for a model inside fsys, such as an embed.FS; name is
// a path as fs.FS takes it ("." for the root). The files are read into
// memory, then parsed and checked as by Open.
func OpenFS(fsys fs.FS, name string, opts ...Option) (*Model, error) {
	if !fs.ValidPath(name) {
		return nil, errorf(ErrNotFound, "open %s: %w", name, fs.ErrInvalid)
	}
	return open(fsSource{fsys}, name, opts)
}

func open(src source, name string, opts []Option) (*Model, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.format != nil {
		if err := o.format.Validate(); err != nil {
			return nil, fmt.Errorf("WithFormat: %w", err)
		}
	}
	fi, err := src.stat(name)
	if err != nil {
		return nil, fileError(err)
	}
	m := &Model{
		path:    name,
		tensors: map[string]*Tensor{},
		layers:  map[string]*Layer{},
	}
	if fi.IsDir() {
		err = m.openDir(src, o)
	} else {
		err = m.openFile(src, o)
	}
	if err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// fileError classifies an error of the file system.
func fileError(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return withKind(err, ErrNotFound)
	}
	return withKind(err, ErrFile)
}

// openFile opens a bare safetensors file.
func (m *Model) openFile(src source, o options) error {
	m.config = &Config{Overrides: map[string]quant.Format{}, Unquantized: map[string]bool{}}
	m.applyFormat(o)
	if err := m.load(src, m.path, src.base(m.path)); err != nil {
		return err
	}
	hint := fmt.Sprintf("%s is a bare .safetensors file, whose format the shapes do not fix: pass loader.WithFormat with the model's mode, bits and group size",
		src.base(m.path))
	return m.finish(hint)
}

// openDir opens a model directory.
func (m *Model) openDir(src source, o options) error {
	data, err := src.readFile(src.join(m.path, configFile))
	switch {
	case err == nil:
		if m.config, err = ParseConfig(data); err != nil {
			return err
		}
	case errors.Is(err, fs.ErrNotExist) && o.format != nil:
		m.config = &Config{Overrides: map[string]quant.Format{}, Unquantized: map[string]bool{}}
	case errors.Is(err, fs.ErrNotExist):
		return errorf(ErrNotFound, "%s: no %s; pass loader.WithFormat to open a directory of safetensors files without one",
			m.path, configFile)
	default:
		return fileError(err)
	}
	m.applyFormat(o)

	entries, err := src.readDir(m.path)
	if err != nil {
		return fileError(err)
	}
	names, present := map[string]bool{}, map[string]bool{}
	for _, e := range entries {
		present[e.Name()] = true
		if ok, _ := path.Match("model*.safetensors", e.Name()); ok && !e.IsDir() {
			names[e.Name()] = true
		}
	}
	idx, err := readIndex(src, m.path)
	if err != nil {
		return err
	}
	for _, t := range slices.SortedFunc(maps.Keys(idx), compareNames) {
		f := idx[t]
		if !present[f] {
			return errorf(ErrNotFound, "%s: weight_map puts %s in %s, which is not in %s", indexFile, t, f, m.path)
		}
		names[f] = true
	}
	if len(names) == 0 {
		return errorf(ErrNotFound, "%s: no model*.safetensors files", m.path)
	}
	for _, name := range slices.SortedFunc(maps.Keys(names), compareNames) {
		if err := m.load(src, src.join(m.path, name), name); err != nil {
			return err
		}
	}
	if err := m.checkIndex(idx); err != nil {
		return err
	}
	return m.finish(configFile + " has no quantization section")
}

// applyFormat applies WithFormat to the config.
func (m *Model) applyFormat(o options) {
	if o.format != nil {
		m.config.Format, m.config.Quantized = *o.format, true
	}
}

// load maps and parses one safetensors file.
func (m *Model) load(src source, full, name string) error {
	data, unmap, err := src.load(full)
	if err != nil {
		return fileError(err)
	}
	f := &file{name: name, data: data, unmap: unmap}
	m.files = append(m.files, f)
	tensors, err := f.parse()
	if err != nil {
		return err
	}
	for _, t := range tensors {
		if prev, ok := m.tensors[t.Name]; ok {
			return &TensorError{File: name, Tensor: t.Name,
				Err: errorf(ErrFile, "also in %s; a tensor must be in one file only", prev.File)}
		}
		m.tensors[t.Name] = t
	}
	return nil
}

// finish sorts the tensors and finds and validates the quantized layers.
// hint says why there is no global format, for models that lack one.
func (m *Model) finish(hint string) error {
	m.names = slices.SortedFunc(maps.Keys(m.tensors), compareNames)
	return m.findLayers(hint)
}

// Close releases the model's files. The views handed out by the model must
// not be used afterwards. Close may be called more than once.
func (m *Model) Close() error {
	if m.closed {
		return nil
	}
	m.closed = true
	var errs []error
	for _, f := range m.files {
		if f.unmap != nil {
			if err := f.unmap(); err != nil {
				errs = append(errs, fmt.Errorf("%s: unmap: %w", f.name, err))
			}
		}
		f.data = nil
	}
	for _, t := range m.tensors {
		t.Data = nil
	}
	return errors.Join(errs...)
}

// Path returns the path the model was opened from.
func (m *Model) Path() string { return m.path }

// Config returns the model's quantization config, with WithFormat applied.
// The caller must not modify it.
func (m *Model) Config() *Config { return m.config }

// Files returns the names of the model's safetensors files, relative to its
// path (the base name for a bare file), in natural order.
func (m *Model) Files() []string {
	names := make([]string, len(m.files))
	for i, f := range m.files {
		names[i] = f.name
	}
	return names
}

// Metadata returns the "__metadata__" of the safetensors files merged into
// one map (MLX writes {"format": "mlx"} in every file); where files
// disagree, the first file in natural order wins.
func (m *Model) Metadata() map[string]string {
	md := map[string]string{}
	for i := len(m.files) - 1; i >= 0; i-- {
		maps.Copy(md, m.files[i].metadata)
	}
	return md
}

// Layers returns the quantized layers sorted by name, numeric path
// components compared as numbers (layers.2 before layers.10).
func (m *Model) Layers() []*Layer { return slices.Clone(m.order) }

// Layer returns the quantized layer with the given module path. The error
// for a missing layer wraps ErrNotFound and lists a few close names.
func (m *Model) Layer(name string) (*Layer, error) {
	if l, ok := m.layers[name]; ok {
		return l, nil
	}
	if _, ok := m.tensors[name+".weight"]; ok {
		return nil, errorf(ErrNotFound, "layer %s: not quantized (its weight %s.weight is a plain %s tensor)",
			name, name, m.tensors[name+".weight"].DType)
	}
	return nil, errorf(ErrNotFound, "layer %s: not found%s", name, suggest(name, slices.Collect(maps.Keys(m.layers))))
}

// Tensor returns the tensor with the given name, plain or part of a
// quantized layer. The error for a missing tensor wraps ErrNotFound and
// lists a few close names.
func (m *Model) Tensor(name string) (*Tensor, error) {
	if t, ok := m.tensors[name]; ok {
		return t, nil
	}
	return nil, errorf(ErrNotFound, "tensor %s: not found%s", name, suggest(name, m.names))
}

// TensorNames returns the names of all tensors in natural order.
func (m *Model) TensorNames() []string { return slices.Clone(m.names) }

// suggest formats the candidates closest to name as "; close names: a, b, c".
func suggest(name string, candidates []string) string {
	close := closest(name, candidates, 3)
	if len(close) == 0 {
		return ""
	}
	return "; close names: " + strings.Join(close, ", ")
}
