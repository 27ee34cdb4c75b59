package layers

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/quant"
)

// Every shard of every format is made of the file's bytes: a row-parallel
// shard of s takes bytes k0·Bits/8 to k1·Bits/8 of every packed row, k0
// on a 32-bit word, and the same groups' scales and biases, so that it
// dequantizes to the same columns of every row; a column-parallel shard
// views whole rows.
func TestSplitMatrixIsSlices(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, f := range quant.Formats() {
		const rows = 12
		cols := 12 * f.GroupSize
		w := make([]float32, rows*cols)
		for i := range w {
			w[i] = float32(rng.NormFloat64())
		}
		st := quant.BF16
		if f.Mode != quant.Affine {
			st = quant.U8
		}
		m, err := quant.Quantize(w, rows, cols, f, st)
		require.NoError(t, err)
		full := make([]float64, cols)
		part := make([]float64, cols)
		for _, s := range []int{1, 2, 3, 4, 6, 12} {
			shards, err := splitMatrix("w", m, RowParallel, s)
			require.NoError(t, err)
			for r, sh := range shards {
				require.NoError(t, sh.Check(), "%v shard %d of %d", f, r, s)
				k0, k1 := r*cols/s, (r+1)*cols/s
				require.Zero(t, k0*f.Bits%32, "%v: shard %d of %d starts inside a word", f, r, s)
				for n := range rows {
					assert.Equal(t, m.Row(n)[k0*f.Bits/8:k1*f.Bits/8], sh.Row(n), "%v shard %d of %d row %d", f, r, s, n)
					m.DequantizeRow(full, n)
					sh.DequantizeRow(part[:sh.Cols], n)
					assert.Equal(t, full[k0:k1], part[:sh.Cols], "%v shard %d of %d row %d", f, r, s, n)
				}
			}
			shards, err = splitMatrix("w", m, ColumnParallel, s)
			require.NoError(t, err)
			for r, sh := range shards {
				require.NoError(t, sh.Check())
				for n := range sh.Rows {
					assert.Equal(t, m.Row(r*rows/s+n), sh.Row(n))
					assert.Equal(t, m.Scale(r*rows/s+n, 0), sh.Scale(n, 0))
				}
			}
		}
	}
}
