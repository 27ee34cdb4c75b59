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

// Manifest describes a test model's quantized layers.
type Manifest struct {
	Model  string  `json:"model"`
	Rows   int     `json:"rows"` // rows of every golden x
	Layers []Layer `json:"layers"`
	dir    string
}

// Layer is one quantized layer and its golden files.
type Layer struct {
	Name       string `json:"name"`
	Format     format `json:"format"`
	ScaleDType string `json:"scale_dtype"`
	Out        int    `json:"out"`
	In         int    `json:"in"`
	Experts    int    `json:"experts"`
	HasBias    bool   `json:"has_bias"`
	X          string `json:"x"`
	Y          string `json:"y"`
}

type format struct {
	Mode      string `json:"mode"`
	Bits      int    `json:"bits"`
	GroupSize int    `json:"group_size"`
}

// Quant returns the layer's format.
func (l Layer) Quant() (quant.Format, error) {
	m, err := quant.ParseMode(l.Format.Mode)
	return quant.Format{Mode: m, Bits: l.Format.Bits, GroupSize: l.Format.GroupSize}, err
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
func (m *Manifest) Output(l Layer) ([]float64, error) {
	a, err := npy.ReadFile(filepath.Join(m.dir, l.Y))
	if err != nil {
		return nil, err
	}
	return a.Values, nil
}
