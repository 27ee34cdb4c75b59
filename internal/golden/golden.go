// Package golden reads the manifests and golden inputs and outputs that
// testdata/gen writes next to each test model.
package golden

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mlxq/mlxq/internal/npy"
	"github.com/mlxq/mlxq/quant"
)

// Manifest describes a test model: its global format, its quantized layers
// with their golden files, its plain tensors and its files. testdata/gen
// writes it as golden/manifest.json.
type Manifest struct {
	Model       string   `json:"model"`
	Rows        int      `json:"rows"` // rows of every golden x
	Global      Format   `json:"global"`
	Layers      []Layer  `json:"layers"`
	Unquantized []Plain  `json:"unquantized"`
	Files       []string `json:"files"`
	dir         string
}

// Format is a quantization format as the manifest writes it.
type Format struct {
	Mode      string `json:"mode"`
	Bits      int    `json:"bits"`
	GroupSize int    `json:"group_size"`
}

// FormatOf returns f as the manifest writes it.
func FormatOf(f quant.Format) Format {
	return Format{Mode: f.Mode.String(), Bits: f.Bits, GroupSize: f.GroupSize}
}

// Quant returns the format as a quant.Format.
func (f Format) Quant() (quant.Format, error) {
	m, err := quant.ParseMode(f.Mode)
	return quant.Format{Mode: m, Bits: f.Bits, GroupSize: f.GroupSize}, err
}

// Layer is one quantized layer and its golden files.
type Layer struct {
	Name       string `json:"name"`
	Format     Format `json:"format"`
	ScaleDType string `json:"scale_dtype"`
	Out        int    `json:"out"`
	In         int    `json:"in"`
	Experts    int    `json:"experts"`
	HasBias    bool   `json:"has_bias"`
	// Config says how config.json covers the layer: "override" (a dict
	// with a mode), "override-no-mode", or "unnamed" (found by its scales).
	Config string `json:"config"`
	// Kind is the layer's loader.Kind: "linear", "embedding" or
	// "switch_linear".
	Kind string `json:"kind"`
	X    string `json:"x"`
	Y    string `json:"y"`
	// IDs are, for an embedding, token ids whose dequantized rows the
	// file Rows holds, [len(IDs), In].
	IDs  []int32 `json:"ids,omitempty"`
	Rows string  `json:"rows,omitempty"`
	// Indices route, for stacked experts, each row of x to TopK experts
	// (row-major [Rows, TopK]); the file Gather holds MLX's gather_qmm of
	// x through them, [Rows, TopK, Out].
	TopK    int     `json:"top_k,omitempty"`
	Indices []int32 `json:"indices,omitempty"`
	Gather  string  `json:"gather,omitempty"`
}

// Plain is a tensor that is not part of a quantized layer.
type Plain struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	Shape []int  `json:"shape"`
	// Config is "false" for the weight of a layer config.json leaves
	// unquantized, else empty.
	Config string `json:"config"`
}

// Read reads golden/manifest.json of the model directory dir.
func Read(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, "golden", "manifest.json"))
	if err != nil {
		return nil, err
	}
	m := &Manifest{dir: dir}
	if err := json.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return m, nil
}

// Input returns the layer's golden x, [Rows, In].
func (m *Manifest) Input(l Layer) ([]float32, error) {
	a, err := npy.ReadFile(filepath.Join(m.dir, l.X))
	if err != nil {
		return nil, err
	}
	return a.Float32(), nil
}

// Output returns the layer's golden y: [Rows, Out], or [Experts, Rows, Out]
// for stacked experts.
func (m *Manifest) Output(l Layer) ([]float64, error) { return m.values(l.Y) }

// Lookup returns an embedding's golden rows of its IDs, [len(IDs), In].
func (m *Manifest) Lookup(l Layer) ([]float64, error) { return m.values(l.Rows) }

// Gathered returns stacked experts' golden gather_qmm of x through their
// Indices, [Rows, TopK, Out].
func (m *Manifest) Gathered(l Layer) ([]float64, error) { return m.values(l.Gather) }

func (m *Manifest) values(file string) ([]float64, error) {
	if file == "" {
		return nil, fmt.Errorf("%s: no such golden file", m.dir)
	}
	a, err := npy.ReadFile(filepath.Join(m.dir, file))
	if err != nil {
		return nil, err
	}
	return a.Values, nil
}
