package loader

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/internal/golden"
	"github.com/mlxq/mlxq/quant"
)

// testdataModels are the models that testdata/gen writes into ../testdata.
var testdataModels = []string{"tiny", "mixed", "sharded"}

// TestTestdataModels opens the generated models, when they exist, checks
// their layers against the generator's manifest and recomputes the golden
// outputs from the loader's views.
func TestTestdataModels(t *testing.T) {
	for _, name := range testdataModels {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("..", "testdata", name)
			mf, err := golden.Read(dir)
			if os.IsNotExist(err) {
				t.Skipf("%s does not exist", dir)
			}
			require.NoError(t, err)

			m, err := Open(dir)
			require.NoError(t, err)
			defer m.Close()
			assert.Equal(t, mf.Files, m.Files())
			assert.Equal(t, quantFormat(t, mf.Global), m.Config().Format)
			assert.Equal(t, "mlx", m.Metadata()["format"])
			require.Len(t, m.Layers(), len(mf.Layers))
			for _, want := range mf.Layers {
				l, err := m.Layer(want.Name)
				require.NoError(t, err)
				assert.Equal(t, quantFormat(t, want.Format), l.Format, want.Name)
				assert.Equal(t, want.ScaleDType, l.Scales.DType.String(), want.Name)
				assert.Equal(t, [3]int{want.Experts, want.Out, want.In}, [3]int{l.Experts, l.Out, l.In}, want.Name)
				assert.Equal(t, want.HasBias, l.Bias != nil, want.Name)

				x, err := mf.Input(want)
				require.NoError(t, err)
				y, err := mf.Output(want)
				require.NoError(t, err)
				var got []float64
				for e := range max(l.Experts, 1) {
					mat := l.Matrix(e)
					require.NoError(t, mat.Check())
					got = append(got, quant.Reference(x, mf.Rows, mat, l.BiasValues(e))...)
				}
				assert.Equal(t, y, got, "%s: golden output", want.Name)
				assert.Equal(t, want.Kind, l.Kind().String(), want.Name)
				checkRouted(t, mf, want, l, x)
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

// checkRouted recomputes, from the loader's views, an embedding's golden
// rows and stacked experts' golden gather_qmm.
func checkRouted(t *testing.T, mf *golden.Manifest, want golden.Layer, l *Layer, x []float32) {
	t.Helper()
	var got []float64
	switch l.Kind() {
	case Embedding:
		row := make([]float64, l.In)
		for _, id := range want.IDs {
			l.Matrix(0).DequantizeRow(row, int(id))
			got = append(got, row...)
		}
		rows, err := mf.Lookup(want)
		require.NoError(t, err)
		assert.Equal(t, rows, got, "%s: golden rows", want.Name)
	case SwitchLinear:
		for p, e := range want.Indices {
			r := p / want.TopK
			got = append(got, quant.Reference(x[r*l.In:(r+1)*l.In], 1, l.Matrix(int(e)), l.BiasValues(int(e)))...)
		}
		y, err := mf.Gathered(want)
		require.NoError(t, err)
		assert.Equal(t, y, got, "%s: golden gather_qmm", want.Name)
	}
}

func quantFormat(t *testing.T, f golden.Format) quant.Format {
	t.Helper()
	q, err := f.Quant()
	require.NoError(t, err)
	return q
}
