package loader

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/internal/npy"
	"github.com/mlxq/mlxq/quant"
)

// testdataModels are the models that testdata/gen writes into ../testdata.
var testdataModels = []string{"tiny", "mixed", "sharded"}

type manifestFormat struct {
	Mode      string `json:"mode"`
	Bits      int    `json:"bits"`
	GroupSize int    `json:"group_size"`
}

func (f manifestFormat) format(t *testing.T) quant.Format {
	m, err := quant.ParseMode(f.Mode)
	require.NoError(t, err)
	return quant.Format{Mode: m, Bits: f.Bits, GroupSize: f.GroupSize}
}

// TestTestdataModels opens the generated models, when they exist, checks
// their layers against the generator's manifest and recomputes the golden
// outputs from the loader's views.
func TestTestdataModels(t *testing.T) {
	for _, name := range testdataModels {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("..", "testdata", name)
			data, err := os.ReadFile(filepath.Join(dir, "golden", "manifest.json"))
			if os.IsNotExist(err) {
				t.Skipf("%s does not exist", dir)
			}
			require.NoError(t, err)
			var mf struct {
				Rows   int            `json:"rows"`
				Global manifestFormat `json:"global"`
				Layers []struct {
					Name       string         `json:"name"`
					Format     manifestFormat `json:"format"`
					ScaleDType string         `json:"scale_dtype"`
					Out        int            `json:"out"`
					In         int            `json:"in"`
					Experts    int            `json:"experts"`
					HasBias    bool           `json:"has_bias"`
					X          string         `json:"x"`
					Y          string         `json:"y"`
				} `json:"layers"`
				Unquantized []struct {
					Name  string `json:"name"`
					DType string `json:"dtype"`
					Shape []int  `json:"shape"`
				} `json:"unquantized"`
				Files []string `json:"files"`
			}
			require.NoError(t, json.Unmarshal(data, &mf))

			m, err := Open(dir)
			require.NoError(t, err)
			defer m.Close()
			assert.Equal(t, mf.Files, m.Files())
			assert.Equal(t, mf.Global.format(t), m.Config().Format)
			assert.Equal(t, "mlx", m.Metadata()["format"])
			require.Len(t, m.Layers(), len(mf.Layers))
			for _, want := range mf.Layers {
				l, err := m.Layer(want.Name)
				require.NoError(t, err)
				assert.Equal(t, want.Format.format(t), l.Format, want.Name)
				assert.Equal(t, want.ScaleDType, l.Scales.DType.String(), want.Name)
				assert.Equal(t, [3]int{want.Experts, want.Out, want.In}, [3]int{l.Experts, l.Out, l.In}, want.Name)
				assert.Equal(t, want.HasBias, l.Bias != nil, want.Name)

				x, err := npy.ReadFile(filepath.Join(dir, want.X))
				require.NoError(t, err)
				y, err := npy.ReadFile(filepath.Join(dir, want.Y))
				require.NoError(t, err)
				var got []float64
				for e := range max(l.Experts, 1) {
					mat := l.Matrix(e)
					require.NoError(t, mat.Check())
					b := l.BiasValues(e)
					got = append(got, quant.Reference(x.Float32(), mf.Rows, mat, b)...)
				}
				assert.Equal(t, y.Values, got, "%s: golden output", want.Name)
			}
			for _, want := range mf.Unquantized {
				got, err := m.Tensor(want.Name)
				require.NoError(t, err)
				assert.Equal(t, want.DType, got.DType.String(), want.Name)
				assert.Equal(t, want.Shape, got.Shape, want.Name)
			}
			t.Logf("%s:\n%s", name, m.Summary())
		})
	}
}
