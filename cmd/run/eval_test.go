package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/eval"
)

// evalConfig writes a config into a temporary directory, with output.dir
// there too, and returns its path.
func evalConfig(t *testing.T, yaml string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	yaml += "copy_bandwidth: false\noutput: {dir: " + filepath.Join(dir, "out") + "}\n"
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o644))
	return path
}

const quickConfig = "models: [{path: embedded, layers: [model.layers.0.self_attn.k_proj]}]\nbackends: [cpu]\nseq_lens: [1, 3]\nrepeat: 2\n"

func readReport(t *testing.T, config string) *eval.Report {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(filepath.Dir(config), "out", "report.json"))
	require.NoError(t, err)
	var r eval.Report
	require.NoError(t, json.Unmarshal(data, &r))
	return &r
}

func TestEvalPass(t *testing.T) {
	config := evalConfig(t, quickConfig)
	status, out, errOut := runCLI("eval", "--config", config)
	require.Equal(t, 0, status, errOut)
	assert.Empty(t, errOut, "no progress bar when stderr is not a terminal")
	assert.Contains(t, out, "2 cases: 2 passed, 0 failed")
	assert.Regexp(t, `model.layers.0.self_attn.k_proj\s+64×256\s+affine4 g32 BF16\s+3\s+f32\s+1\s+-\s+cpu\s+qmv \(plan\)`, out)
	assert.Contains(t, out, "reports: "+filepath.Join(filepath.Dir(config), "out", "report.json"))
	r := readReport(t, config)
	assert.Len(t, r.Cases, 2)
}

// --shards and --split split the matrix products over CPU devices.
func TestEvalShards(t *testing.T) {
	config := evalConfig(t, quickConfig)
	status, out, errOut := runCLI("eval", "--config", config, "--shards", "1,2", "--split", "row")
	require.Equal(t, 0, status, errOut)
	assert.Contains(t, out, "4 cases: 4 passed, 0 failed")
	assert.Regexp(t, `64×256\s+affine4 g32 BF16\s+3\s+f32\s+2\s+row\s+cpu\s+qmv \(plan\)`, out)
	r := readReport(t, config)
	require.Len(t, r.Cases, 4)
	assert.Equal(t, [2]any{2, "row"}, [2]any{r.Cases[3].Shards, r.Cases[3].Split})
}

func TestEvalFailingCase(t *testing.T) {
	config := evalConfig(t, quickConfig+"tolerance: {float32: 1e-30}\n")
	status, out, _ := runCLI("eval", "--config", config)
	assert.Equal(t, 1, status)
	assert.Contains(t, out, "2 cases: 0 passed, 2 failed")
	assert.False(t, readReport(t, config).Cases[0].Pass, "the report is written")
}

func TestEvalBadConfig(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--config", evalConfig(t, quickConfig+"repeats: 2\n")}, `c.yaml: unknown key "repeats" (did you mean "repeat"?)`},
		{[]string{"--config", evalConfig(t, quickConfig), "--repeat", "0"}, "c.yaml: repeat: 0, want at least 1"},
		{[]string{"--config", evalConfig(t, quickConfig), "--seq-lens", "1,x"}, `c.yaml: seq_lens[1]: got "x", want an integer (from the command line)`},
		{[]string{"--config", evalConfig(t, quickConfig), "--kernels", "simd4_gs64"}, "c.yaml: kernels[0]: kernel simd4_gs64 does not take layer"},
		{[]string{"--config", evalConfig(t, quickConfig), "--backends", "tpu"}, `c.yaml: backends[0]: unknown backend "tpu"`},
		{[]string{"--config", filepath.Join(t.TempDir(), "none.yaml")}, "none.yaml"},
		{[]string{}, "error: --config is required"},
	}
	for _, tt := range tests {
		status, out, errOut := runCLI(append([]string{"eval"}, tt.args...)...)
		assert.Equal(t, 2, status, "%v", tt.args)
		assert.Empty(t, out, "%v", tt.args)
		assert.True(t, strings.HasPrefix(errOut, "error: "), "%v: %q", tt.args, errOut)
		assert.Equal(t, 1, strings.Count(errOut, "\n"), "%v: one line, got %q", tt.args, errOut)
		assert.Contains(t, errOut, tt.want, "%v", tt.args)
	}

	status, _, errOut := runCLI("eval", "--no-such-flag")
	assert.Equal(t, 2, status)
	assert.Contains(t, errOut, "flag provided but not defined")
	status, _, errOut = runCLI("eval", "-h")
	assert.Equal(t, 0, status)
	assert.Contains(t, errOut, "usage: run eval --config FILE")
	assert.Contains(t, errOut, "MLXQ_SEQ_LENS")
}

// Flags override the environment, which overrides the file.
func TestEvalOverrides(t *testing.T) {
	t.Setenv("MLXQ_SEQ_LENS", "4")
	t.Setenv("MLXQ_REPEAT", "3")
	config := evalConfig(t, quickConfig)
	out := filepath.Join(t.TempDir(), "elsewhere")
	status, _, errOut := runCLI("eval", "--config", config, "--kernels", "per_element,tiled", "--repeat", "1", "--output-dir", out, "--formats", "json,md")
	require.Equal(t, 0, status, errOut)
	data, err := os.ReadFile(filepath.Join(out, "report.json"))
	require.NoError(t, err)
	var r eval.Report
	require.NoError(t, json.Unmarshal(data, &r))
	require.Len(t, r.Cases, 2)
	for i, kernel := range []string{"per_element", "tiled"} {
		assert.Equal(t, kernel, r.Cases[i].Kernel)
		assert.Equal(t, 4, r.Cases[i].M, "from MLXQ_SEQ_LENS")
		assert.Equal(t, 1, r.Cases[i].Repeat, "--repeat wins over MLXQ_REPEAT")
	}
	assert.FileExists(t, filepath.Join(out, "report.md"))
	assert.NoFileExists(t, filepath.Join(out, "report.csv"))
}

func TestEvalInterrupted(t *testing.T) {
	config := evalConfig(t, quickConfig)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	status := evalRun(ctx, []string{"--config", config}, &out, &errOut, false)
	assert.Equal(t, 130, status)
	assert.Contains(t, errOut.String(), "interrupted after 0 of 2 cases")
	r := readReport(t, config)
	assert.True(t, r.Interrupted, "the partial report is written")
	assert.Empty(t, r.Cases)
}

func TestEvalProgressBar(t *testing.T) {
	config := evalConfig(t, quickConfig)
	var out, errOut bytes.Buffer
	require.Equal(t, 0, evalRun(context.Background(), []string{"--config", config}, &out, &errOut, true))
	assert.Contains(t, errOut.String(), "[>                             ] 0/2  model.layers.0.self_attn.k_proj M=1 f32 cpu qmv")
	assert.Contains(t, errOut.String(), "[===============>              ] 1/2")
	assert.True(t, strings.HasSuffix(errOut.String(), "\r\033[K"), "the bar is cleared")

	errOut.Reset()
	require.Equal(t, 0, evalRun(context.Background(), []string{"--config", config, "--quiet"}, &out, &errOut, true))
	assert.Empty(t, errOut.String())
}

// The checked-in configs CI runs load and list their cases; smoke.yaml runs.
func TestConfigs(t *testing.T) {
	for _, name := range []string{"smoke", "kernels", "bench"} {
		cfg, err := eval.Load(filepath.Join("../../configs", name+".yaml"), nil)
		require.NoError(t, err, name)
		b, err := eval.Open(cfg)
		require.NoError(t, err, name)
		assert.Positive(t, b.Cases(), name)
		b.Close()
	}
	status, out, errOut := runCLI("eval", "--config", "../../configs/smoke.yaml", "--repeat", "1", "--output-dir", t.TempDir())
	require.Equal(t, 0, status, errOut)
	assert.Contains(t, out, "108 cases: 108 passed, 0 failed")
}
