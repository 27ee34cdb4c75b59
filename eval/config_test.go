package eval_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/mlxq/mlxq/cpu"
	"github.com/mlxq/mlxq/eval"
)

// mixed is the testdata model with every mode and width.
var mixed, _ = filepath.Abs("../testdata/mixed")

// writeConfig writes a config file named x.yaml into a temporary directory
// and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o644))
	return path
}

// load loads and opens a config, closing the batch at the end of the test.
func load(t *testing.T, yaml string, overrides map[string]string) (*eval.Config, *eval.Batch, error) {
	t.Helper()
	cfg, err := eval.Load(writeConfig(t, yaml), overrides)
	if err != nil {
		return nil, nil, err
	}
	b, err := eval.Open(cfg)
	if err != nil {
		return cfg, nil, err
	}
	t.Cleanup(b.Close)
	return cfg, b, nil
}

func TestDefaults(t *testing.T) {
	cfg, b, err := load(t, "models: [{path: embedded}]\n", nil)
	require.NoError(t, err)
	assert.Equal(t, "x", cfg.Name)
	assert.Equal(t, []int{1}, cfg.SeqLens)
	assert.Equal(t, []string{"auto"}, cfg.Backends)
	assert.Equal(t, []string{"plan"}, cfg.Kernels)
	assert.Equal(t, 1, cfg.Warmup)
	assert.Equal(t, 10, cfg.Repeat)
	assert.Equal(t, 8, cfg.CheckRows)
	assert.True(t, cfg.CopyBandwidth)
	assert.Equal(t, eval.Input{Distribution: "normal", Seed: 1}, cfg.Input)
	assert.Equal(t, eval.Tolerance{Float32: 1e-5, TF32: 1e-3, Float16: 1e-2, BFloat16: 1e-2}, cfg.Tolerance)
	assert.Equal(t, eval.Output{Dir: filepath.Join("eval-out", "x"), Formats: []string{"json", "csv", "markdown", "svg"}, Chart: "gbps"}, cfg.Output)
	assert.Equal(t, 2, cfg.TopK)
	assert.Equal(t, 8, b.Cases(), "the 8 layers of the embedded model")
}

func TestSchemaErrors(t *testing.T) {
	const ok = "models: [{path: embedded}]\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", ok + "repeats: 3\n", `x.yaml: unknown key "repeats" (did you mean "repeat"?)`},
		{"unknown key far from any", ok + "colour: red\n", `x.yaml: unknown key "colour"`},
		{"unknown nested key", "models: [{path: embedded, bitz: 4}]\n", `x.yaml: unknown key "models[0].bitz" (did you mean "models[0].bits"?)`},
		{"unknown key in a table", ok + "output: {dirr: out}\n", `x.yaml: unknown key "output.dirr" (did you mean "output.dir"?)`},
		{"unknown key in synthetic", "synthetic: [{rows: 64, cols: 64, group: 32}]\n", `x.yaml: unknown key "synthetic[0].group"`},
		{"string for int", ok + "repeat: many\n", `x.yaml: repeat: got "many", want an integer`},
		{"bool for int", ok + "warmup: true\n", `x.yaml: warmup: got boolean true, want an integer`},
		{"fraction for int", ok + "seq_lens: [1, 2.5]\n", `x.yaml: seq_lens[1]: got 2.5, want an integer`},
		{"list for int", ok + "repeat: [1, 2]\n", `x.yaml: repeat: got a list, want an integer`},
		{"table for list", ok + "seq_lens: {a: 1}\n", `x.yaml: seq_lens[0]: got a table of keys, want an integer`},
		{"scalar for table", ok + "tolerance: 5\n", `x.yaml: tolerance: got a number, want a table of keys`},
		{"list for table", ok + "output: [a]\n", `x.yaml: output: got a list, want a table of keys`},
		{"string for model", "models: [embedded]\n", `x.yaml: models[0]: got a string, want a table of keys`},
		{"negative seed", ok + "input: {seed: -1}\n", `x.yaml: input.seed: got -1, want an integer ≥ 0`},
		{"duplicate key", ok + "repeat: 3\nrepeat: 4\n", `mapping key "repeat" already defined at line 2`},
		{"string for number", ok + "tolerance: {float32: small}\n", `x.yaml: tolerance.float32: got "small", want a number`},
		{"nothing to run", "seq_lens: [1]\n", `x.yaml: no models and no synthetic layers: nothing to run`},
		{"empty model list", "models: []\n", `x.yaml: no models and no synthetic layers: nothing to run`},
		{"empty seq lens", ok + "seq_lens: []\n", `x.yaml: seq_lens: empty, want at least one sequence length`},
		{"seq len 0", ok + "seq_lens: [1, 0]\n", `x.yaml: seq_lens[1]: 0, want at least 1`},
		{"repeat 0", ok + "repeat: 0\n", `x.yaml: repeat: 0, want at least 1`},
		{"negative warmup", ok + "warmup: -1\n", `x.yaml: warmup: -1, want at least 0`},
		{"negative check rows", ok + "check_rows: -2\n", `x.yaml: check_rows: -2, want at least 0`},
		{"unknown backend", ok + "backends: [cpu, tpu]\n", `x.yaml: backends[1]: unknown backend "tpu", want one of cpu, auto`},
		{"empty backends", ok + "backends: []\n", `x.yaml: backends: empty, want at least one backend`},
		{"unknown kernel", ok + "kernels: [plan, qmv_fast]\n", `x.yaml: kernels[1]: unknown kernel "qmv_fast", want plan, all or one of per_element, tiled, simd, simd4, simd4_gs64, packed_simd4_b4, qmv, qmm`},
		{"empty dtypes", ok + "dtypes: []\n", `x.yaml: dtypes: empty, want at least one of f32, f16 and bf16`},
		{"all not alone", ok + "kernels: [all, plan]\n", `x.yaml: kernels[0]: "all" runs every kernel: list it alone`},
		{"unknown mode", "synthetic: [{rows: 64, cols: 64, mode: int4}]\n", `x.yaml: synthetic[0]: unsupported quantization format: mode "int4", want affine, mxfp4, mxfp8 or nvfp4`},
		{"unknown model mode", "models: [{path: embedded, mode: int4}]\n", `x.yaml: models[0]: unsupported quantization format: mode "int4"`},
		{"bits 7", "synthetic: [{rows: 64, cols: 64, bits: 7}]\n", `x.yaml: synthetic[0]: unsupported quantization format: affine bits 7, want 2, 3, 4, 5, 6 or 8`},
		{"model bits 7", "models: [{path: embedded, bits: 7}]\n", `x.yaml: models[0]: unsupported quantization format: affine bits 7`},
		{"fp mode group", "synthetic: [{rows: 64, cols: 64, mode: mxfp4, group_size: 64}]\n", `x.yaml: synthetic[0]: unsupported quantization format: mxfp4 takes bits 4 and group size 32, got 4 and 64`},
		{"unknown dtype", "synthetic: [{rows: 64, cols: 64, scale_dtype: f8}]\n", `x.yaml: synthetic[0]: scale_dtype "f8", want bf16, f16 or f32 for affine`},
		{"dtype of fp mode", "synthetic: [{rows: 64, cols: 64, mode: nvfp4, scale_dtype: bf16}]\n", `x.yaml: synthetic[0]: scale_dtype "bf16", want u8 for nvfp4`},
		{"zero rows", "synthetic: [{rows: 0, cols: 64}]\n", `x.yaml: synthetic[0]: shape 0x64 (rows x cols), want both at least 1`},
		{"cols not groups", "synthetic: [{rows: 8, cols: 96, group_size: 64}]\n", `x.yaml: synthetic[0].cols: 96, want a multiple of the group size 64`},
		{"duplicate names", "synthetic: [{rows: 8, cols: 64}, {rows: 8, cols: 64}]\n", `x.yaml: synthetic[1].name: "8x64 affine4 g64 BF16" names two synthetic layers`},
		{"bad regexp", "models: [{path: embedded, layers: ['/q_proj(/']}]\n", "x.yaml: models[0].layers[0]: regular expression /q_proj(/: error parsing regexp"},
		{"bad glob", "models: [{path: embedded, layers: ['model.[']}]\n", `x.yaml: models[0].layers[0]: glob "model.[": syntax error in pattern`},
		{"unknown distribution", ok + "input: {distribution: cauchy}\n", `x.yaml: input.distribution: unknown distribution "cauchy", want normal or uniform`},
		{"zero tolerance", ok + "tolerance: {float32: 0}\n", `x.yaml: tolerance.float32: 0, want a finite number > 0`},
		{"negative tolerance", ok + "tolerance: {tf32: -1e-3}\n", `x.yaml: tolerance.tf32: -0.001, want a finite number > 0`},
		{"bad output format", ok + "output: {formats: [json, pdf]}\n", `x.yaml: output.formats[1]: unknown format "pdf", want json, csv, markdown (or md), svg or png`},
		{"bad chart", ok + "output: {chart: fps}\n", `x.yaml: output.chart: unknown quantity "fps", want gbps or tflops`},
		{"yaml syntax", "models: [{path: embedded\n", "x.yaml: While parsing config: yaml:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := eval.Load(writeConfig(t, tt.yaml), nil)
			require.Error(t, err)
			assert.ErrorIs(t, err, eval.ErrConfig)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// Problems found when the models and devices open.
func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"missing model", "models: [{path: nowhere}]\n", `x.yaml: models[0].path: nowhere: no such model (looked for `},
		{"glob matches nothing", "models: [{path: embedded, layers: ['model.layers.9.*']}]\n",
			`x.yaml: models[0].layers[0]: "model.layers.9.*" matches no quantized layer of tiny (embedded) (it has 8, such as model.embed_tokens, model.layers.0.mlp.down_proj, model.layers.0.mlp.gate_proj)`},
		{"regexp matches nothing", "models: [{path: embedded, layers: [model.layers.0.mlp.up_proj, /lm_head/]}]\n",
			`x.yaml: models[0].layers[1]: "/lm_head/" matches no quantized layer`},
		{"name matches nothing", "models: [{path: embedded, layers: [model.layers.0.q_proj]}]\n",
			`x.yaml: models[0].layers[0]: layer model.layers.0.q_proj: not found; close names: model.layers.0.mlp.up_proj`},
		{"kernel does not take layer", "models: [{path: embedded}]\nkernels: [simd4_gs64]\n",
			`x.yaml: kernels[0]: kernel simd4_gs64 does not take layer model.embed_tokens of tiny (embedded) (affine 4-bit group 32): group size 32, want [64]`},
		{"embed on a linear", "models: [{path: embedded, layers: [model.layers.0.mlp.up_proj]}]\nkernels: [embed]\n",
			`x.yaml: kernels[0]: kernel embed does not take layer model.layers.0.mlp.up_proj of tiny (embedded) (kind linear)`},
		{"gathered product on an embedding", "models: [{path: embedded, layers: [model.embed_tokens]}]\nkernels: [gather_qmm]\n",
			`x.yaml: kernels[0]: kernel gather_qmm does not take layer model.embed_tokens of tiny (embedded) (kind embedding)`},
		{"top_k above the experts", "models: [{path: " + mixed + ", layers: [model.layers.1.mlp.switch_mlp.up_proj]}]\ntop_k: 9\n",
			`x.yaml: top_k: 9, but layer model.layers.1.mlp.switch_mlp.up_proj of ` + mixed + ` has 8 experts`},
		{"kernel does not take mode", "models: [{path: " + mixed + ", layers: [model.layers.1.self_attn.k_proj]}]\nkernels: [tiled]\n",
			`kernels[0]: kernel tiled does not take layer model.layers.1.self_attn.k_proj of ` + mixed + ` (nvfp4 4-bit group 16): mode nvfp4, want [affine]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := load(t, tt.yaml, nil)
			require.Error(t, err)
			assert.ErrorIs(t, err, eval.ErrConfig)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestMissingFile(t *testing.T) {
	_, err := eval.Load(filepath.Join(t.TempDir(), "none.yaml"), nil)
	assert.ErrorIs(t, err, eval.ErrConfig)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), "none.yaml")
}

// Every problem is reported, not just the first.
func TestAllErrors(t *testing.T) {
	_, err := eval.Load(writeConfig(t, "models: [{path: embedded}]\nrepeat: 0\nseq_lens: [0]\n"), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "repeat: 0")
	assert.Contains(t, err.Error(), "seq_lens[0]: 0")
	var ce *eval.ConfigError
	require.True(t, errors.As(err, &ce))
	assert.Contains(t, ce.File, "x.yaml")
}

func TestSelection(t *testing.T) {
	yaml := "models: [{path: " + mixed + ", layers: [lm_head, 'model.layers.0.self_attn.*', '/switch_mlp\\.(gate|up)_proj$/', 'model.layers.0.self_attn.q_proj']}]\nbackends: [cpu]\nseq_lens: [1, 2]\n"
	_, b, err := load(t, yaml, nil)
	require.NoError(t, err)
	assert.Equal(t, 2*(1+4+2), b.Cases(), "each layer once")
}

func TestKernelsAll(t *testing.T) {
	yaml := "models: [{path: " + mixed + ", layers: [model.layers.0.self_attn.q_proj, model.layers.1.self_attn.k_proj]}]\nbackends: [cpu]\nkernels: all\nseq_lens: [1, 3]\n"
	_, b, err := load(t, yaml, nil)
	require.NoError(t, err)
	// q_proj (affine 2-bit g32): per_element, tiled, simd, simd4, qmv, qmm;
	// k_proj (nvfp4): per_element, qmv, qmm.
	assert.Equal(t, 2*(6+3), b.Cases())
	assert.Equal(t, 2*(2+5), b.Skipped())
}

func TestEnvOverrides(t *testing.T) {
	t.Setenv("MLXQ_REPEAT", "3")
	t.Setenv("MLXQ_SEQ_LENS", "1, 4,16")
	t.Setenv("MLXQ_KERNELS", "per_element")
	t.Setenv("MLXQ_OUTPUT_DIR", "elsewhere")
	t.Setenv("MLXQ_TOLERANCE_FLOAT32", "2e-5")
	t.Setenv("MLXQ_COPY_BANDWIDTH", "false")
	t.Setenv("MLXQ_INPUT_SEED", "7")
	cfg, err := eval.Load(writeConfig(t, "models: [{path: embedded}]\nrepeat: 9\nseq_lens: [2]\n"), nil)
	require.NoError(t, err)
	assert.Equal(t, 3, cfg.Repeat)
	assert.Equal(t, []int{1, 4, 16}, cfg.SeqLens)
	assert.Equal(t, []string{"per_element"}, cfg.Kernels)
	assert.Equal(t, "elsewhere", cfg.Output.Dir, "a key the file does not set")
	assert.Equal(t, 2e-5, cfg.Tolerance.Float32)
	assert.False(t, cfg.CopyBandwidth)
	assert.Equal(t, uint64(7), cfg.Input.Seed)

	t.Setenv("MLXQ_REPEAT", "lots")
	_, err = eval.Load(writeConfig(t, "models: [{path: embedded}]\n"), nil)
	assert.ErrorIs(t, err, eval.ErrConfig)
	assert.ErrorContains(t, err, `x.yaml: repeat: got "lots", want an integer (from MLXQ_REPEAT)`)
}

func TestFlagsOverEnv(t *testing.T) {
	t.Setenv("MLXQ_REPEAT", "3")
	t.Setenv("MLXQ_BACKENDS", "auto")
	overrides := map[string]string{"repeat": "5", "backends": "cpu", "output.dir": "out", "seq_lens": "2,8"}
	cfg, err := eval.Load(writeConfig(t, "models: [{path: embedded}]\nrepeat: 9\n"), overrides)
	require.NoError(t, err)
	assert.Equal(t, 5, cfg.Repeat)
	assert.Equal(t, []string{"cpu"}, cfg.Backends)
	assert.Equal(t, "out", cfg.Output.Dir)
	assert.Equal(t, []int{2, 8}, cfg.SeqLens)

	_, err = eval.Load(writeConfig(t, "models: [{path: embedded}]\n"), map[string]string{"repeat": "x"})
	assert.ErrorContains(t, err, `repeat: got "x", want an integer (from the command line)`)
	_, err = eval.Load(writeConfig(t, "models: [{path: embedded}]\n"), map[string]string{"seq_lens": "0"})
	assert.ErrorContains(t, err, `seq_lens[0]: 0, want at least 1`)
}

func TestEnvKeys(t *testing.T) {
	keys := eval.EnvKeys()
	for _, k := range []string{"name", "seq_lens", "backends", "kernels", "warmup", "repeat", "check_rows", "copy_bandwidth",
		"input.distribution", "input.seed", "tolerance.float32", "tolerance.tf32", "tolerance.float16", "tolerance.bfloat16",
		"output.dir", "output.formats", "output.chart"} {
		assert.Contains(t, keys, k)
	}
	assert.NotContains(t, keys, "models")
	assert.NotContains(t, keys, "synthetic")
	assert.Equal(t, "MLXQ_OUTPUT_DIR", eval.EnvVar("output.dir"))
}

// The annotated example of docs/eval.md is a valid config.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/eval.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	require.True(t, ok)
	example, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)
	testdata, err := filepath.Abs("../testdata")
	require.NoError(t, err)
	cfg, b, err := load(t, strings.ReplaceAll(example, "../testdata", testdata), nil)
	require.NoError(t, err)
	assert.Equal(t, "example", cfg.Name)
	assert.Equal(t, 7+8+1, b.Cases(), "7 layers selected from the embedded model, 8 of the bare file, 1 synthetic")
}
