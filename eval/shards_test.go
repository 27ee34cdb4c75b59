package eval_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/eval"
	"github.com/mlxq/mlxq/quant"
)

// shardsConfig is a config of a synthetic layer of every format, 48
// output features and 6 groups of input features, which split into 1, 2
// and 3 shards both ways.
func shardsConfig(t *testing.T) string {
	var b strings.Builder
	b.WriteString("name: shards\nsynthetic:\n")
	for i, f := range quant.Formats() {
		fmt.Fprintf(&b, "  - {rows: 48, cols: %d, mode: %s, bits: %d, group_size: %d, bias: %v}\n", 6*f.GroupSize, f.Mode, f.Bits, f.GroupSize, i%2 == 0)
	}
	b.WriteString("seq_lens: [1, 5]\ndtypes: [f32, bf16]\nshards: [1, 2, 3]\nsplit: both\nbackends: [cpu]\n" +
		"repeat: 1\nwarmup: 0\ncheck_rows: 0\ncopy_bandwidth: false\n" +
		"output: {dir: " + t.TempDir() + ", formats: [json, csv, markdown, svg]}\n")
	return b.String()
}

// Every format splits into 2 and 3 shards, column- and row-parallel, on
// CPU devices, and each sharded case passes against the float64
// reference as the unsharded one does; the reports carry the shards and
// the split.
func TestShards(t *testing.T) {
	_, b, err := load(t, shardsConfig(t), nil)
	require.NoError(t, err)
	formats := len(quant.Formats())
	require.Equal(t, formats*2*2*5, b.Cases(), "per layer, M and dtype: 1 shard, then 2 and 3 shards each split both ways")
	assert.Empty(t, b.Notes())
	r := b.Run(context.Background(), nil)
	require.Len(t, r.Cases, b.Cases())
	assert.Equal(t, len(r.Cases), r.Passed)

	type key struct {
		layer, dtype string
		m            int
	}
	type run struct {
		shards int
		split  string
	}
	runs := map[key][]run{}
	bytes := map[string]int{}
	for _, c := range r.Cases {
		assert.True(t, c.Pass, "%+v", c)
		assert.LessOrEqual(t, float64(c.RelErr), c.Tolerance, "%+v", c)
		assert.Equal(t, c.M, c.CheckedRows)
		if c.DType == "bf16" {
			assert.Equal(t, "bfloat16", c.Precision)
		}
		k := key{c.Layer, c.DType, c.M}
		runs[k] = append(runs[k], run{c.Shards, c.Split})
		if c.Shards == 1 {
			bytes[c.Layer] = c.Bytes
		} else {
			assert.Equal(t, bytes[c.Layer], c.Bytes, "a split layer's weights are the whole layer's: %+v", c)
		}
	}
	assert.Len(t, runs, formats*2*2)
	for k, got := range runs {
		assert.Equal(t, []run{{1, ""}, {2, "column"}, {2, "row"}, {3, "column"}, {3, "row"}}, got, "%+v", k)
	}

	files, err := r.Write()
	require.NoError(t, err)
	back := readJSON(t, files[0])
	assert.Equal(t, r.Cases, back.Cases)
	assert.Equal(t, []int{1, 2, 3}, back.Config.Shards)

	f, err := os.Open(files[1])
	require.NoError(t, err)
	defer f.Close()
	records, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	col := map[string]int{}
	for i, h := range records[0] {
		col[h] = i
	}
	require.Contains(t, col, "shards")
	require.Contains(t, col, "split")
	assert.Equal(t, [2]string{"1", ""}, [2]string{records[1][col["shards"]], records[1][col["split"]]})
	assert.Equal(t, [2]string{"3", "row"}, [2]string{records[9][col["shards"]], records[9][col["split"]]})

	md, err := os.ReadFile(filepath.Join(r.Config.Output.Dir, "report.md"))
	require.NoError(t, err)
	assert.Contains(t, string(md), "| SHARDS | SPLIT |")
	assert.Contains(t, string(md), "| f32 | 1 | - | cpu |")
	assert.Contains(t, string(md), "| f32 | 3 | column | cpu |")
	svg, err := os.ReadFile(filepath.Join(r.Config.Output.Dir, "chart.svg"))
	require.NoError(t, err)
	assert.Contains(t, string(svg), " M=5 qmv 2×row<")
}

// Bad shard counts and splits are config errors naming the key, and so
// is a layer that does not split into a listed number of shards; the
// environment and the command line set the axis as they set the others.
func TestShardsConfig(t *testing.T) {
	base := "synthetic: [{rows: 30, cols: 256, group_size: 64}]\nbackends: [cpu]\ncopy_bandwidth: false\n"
	for _, tc := range []struct{ yaml, want string }{
		{"shards: [0]\n", "shards[0]: 0, want at least 1"},
		{"shards: [2, 2]\n", "shards[1]: 2 is listed twice"},
		{"shards: []\n", "shards: empty, want at least one number of shards"},
		{"split: diagonal\n", `split: unknown split "diagonal", want column, row or both`},
		{"shards: [1, 4]\nsplit: column\n", "shards[1]: column split of synthetic: layer 30x256 affine4 g64 BF16: bad tensor-parallel split: 30 output features do not divide into 4 equal shards"},
		{"shards: [3]\nsplit: row\n", "shards[0]: row split of synthetic: layer 30x256 affine4 g64 BF16: bad tensor-parallel split: 256 input features are 4 groups of 64, which do not divide into 3 shards of whole groups"},
	} {
		_, _, err := load(t, base+tc.yaml, nil)
		assert.ErrorIs(t, err, eval.ErrConfig, tc.yaml)
		assert.ErrorContains(t, err, tc.want, tc.yaml)
	}

	t.Setenv(eval.EnvVar("shards"), "1,2")
	cfg, b, err := load(t, base+"split: column\n", nil)
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2}, cfg.Shards)
	assert.Equal(t, 2, b.Cases())
	cfg, b, err = load(t, base, map[string]string{"shards": "2", "split": "row"})
	require.NoError(t, err)
	assert.Equal(t, []int{2}, cfg.Shards)
	assert.Equal(t, "row", cfg.Split)
	assert.Equal(t, 1, b.Cases())

	// An embedding's lookup and stacked experts' gathered products are
	// not split: they run once whatever the shards.
	_, b, err = load(t, "models: [{path: embedded, layers: [model.embed_tokens]}]\nshards: [1, 2]\nbackends: [cpu]\ncopy_bandwidth: false\n", nil)
	require.NoError(t, err)
	assert.Equal(t, 1, b.Cases())
}
