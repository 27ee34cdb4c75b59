package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/internal/golden"
	"github.com/mlxq/mlxq/internal/npy"
	"github.com/mlxq/mlxq/quant"
)

// runCLI runs the command line in process.
func runCLI(args ...string) (status int, stdout, stderr string) {
	var out, errb bytes.Buffer
	status = run(args, &out, &errb)
	return status, out.String(), errb.String()
}

func TestDefaultRun(t *testing.T) {
	status, out, errOut := runCLI("--repeat", "3")
	require.Equal(t, 0, status, errOut)
	for _, want := range []string{"tiny (embedded)", "kernel       qmv", "affine 4-bit group 32, BF16 scales", "activations  f32", "M, N, K      1, 256, 512",
		"GB/s of weights", "weights      81920 bytes on disk, 81920 on the device", "float32 tolerance 1e-05"} {
		assert.Contains(t, out, want)
	}
	assert.Empty(t, errOut)
}

func runJSON(t *testing.T, args ...string) report {
	t.Helper()
	status, out, errOut := runCLI(append(args, "--json")...)
	require.Equal(t, 0, status, errOut)
	var r report
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	return r
}

func TestJSONReport(t *testing.T) {
	r := runJSON(t, "--layer", "model.layers.0.self_attn.q_proj", "--seq-len", "64", "--repeat", "2")
	assert.Equal(t, "model.layers.0.self_attn.q_proj", r.Layer)
	assert.Equal(t, 64, r.M)
	assert.Equal(t, 256, r.N)
	assert.Equal(t, 256, r.K)
	assert.Equal(t, "cpu", r.Backend)
	assert.Equal(t, "qmm", r.Kernel)
	assert.Equal(t, "f32", r.DType)
	assert.Equal(t, r.Bytes, r.DeviceBytes)
	assert.Less(t, r.RelErr, 1e-5)
	assert.Greater(t, r.MedianUS, 0.0)
	assert.Greater(t, r.GBps, 0.0)

	r = runJSON(t, "--model", "../../testdata/mixed", "--layer", "model.layers.1.self_attn.q_proj", "--repeat", "1")
	assert.Equal(t, "mxfp4", r.Mode)
	assert.Equal(t, "qmv", r.Kernel)
	assert.Less(t, r.RelErr, 1e-5)

	r = runJSON(t, "--layer", "model.layers.0.self_attn.q_proj", "--kernel", "simd4", "--repeat", "1")
	assert.Equal(t, "simd4", r.Kernel)
	assert.Equal(t, 256*256+2*256*8*2, r.DeviceBytes, "codes unpacked at load")

	for _, dt := range []string{"f16", "bf16"} {
		r = runJSON(t, "--layer", "model.layers.0.self_attn.q_proj", "--dtype", dt, "--seq-len", "4", "--repeat", "1")
		assert.Equal(t, dt, r.DType)
		assert.Equal(t, map[string]string{"f16": "float16", "bf16": "bfloat16"}[dt], r.Precision)
		assert.Equal(t, 1e-2, r.Tolerance)
		assert.Less(t, r.RelErr, 1e-2)
	}

	r = runJSON(t, "--model", "../../testdata/mixed", "--layer", "model.layers.1.mlp.switch_mlp.gate_proj", "--expert", "1", "--kernel", "per_element", "--repeat", "1")
	assert.Equal(t, "model.layers.1.mlp.switch_mlp.gate_proj[1]", r.Layer)
	assert.Equal(t, "per_element", r.Kernel)

	r = runJSON(t, "--model", "../../testdata/tiny/model.safetensors", "--bits", "4", "--group-size", "32", "--repeat", "1")
	assert.Equal(t, "qmv", r.Kernel)
}

// --input and --output round trip a golden file.
func TestInputOutput(t *testing.T) {
	dir := "../../testdata/mixed"
	man, err := golden.Read(dir)
	require.NoError(t, err)
	gl := man.Layers[0]
	out := filepath.Join(t.TempDir(), "y.npy")
	status, _, errOut := runCLI("--model", dir, "--layer", gl.Name, "--input", filepath.Join(dir, gl.X), "--output", out, "--repeat", "1")
	require.Equal(t, 0, status, errOut)
	y, err := npy.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, []int{man.Rows, gl.Out}, y.Shape)
	want, err := man.Output(gl)
	require.NoError(t, err)
	assert.Less(t, quant.RelErr(y.Float32(), want), 1e-5)
}

func TestErrors(t *testing.T) {
	tmp := t.TempDir()
	ints := filepath.Join(tmp, "ints.npy")
	header := "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 256), }\n"
	ibytes := append([]byte("\x93NUMPY\x01\x00"), byte(len(header)), 0)
	ibytes = append(append(ibytes, header...), make([]byte, 4*256)...)
	require.NoError(t, os.WriteFile(ints, ibytes, 0o644))
	wide := filepath.Join(tmp, "wide.npy")
	f, err := os.Create(wide)
	require.NoError(t, err)
	require.NoError(t, npy.WriteFloat32(f, []int{2, 100}, make([]float32, 200)))
	require.NoError(t, f.Close())

	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--model", filepath.Join(tmp, "missing")}, "--model " + filepath.Join(tmp, "missing") + ": no such file or directory; want a model directory (config.json and model*.safetensors) or a .safetensors file"},
		{[]string{"--layer", "model.layers.9.q_proj"}, "model.layers.9.q_proj"},
		{[]string{"--input", wide, "--layer", "model.layers.0.self_attn.q_proj"}, "shape [2 100], want [M 256]"},
		{[]string{"--input", ints}, `dtype "<i4"`},
		{[]string{"--input", filepath.Join(tmp, "none.npy")}, "none.npy"},
		{[]string{"--seq-len", "9", "--max-seq-len", "4"}, "M = 9 rows exceed --max-seq-len 4"},
		{[]string{"--seq-len", "0"}, "--seq-len 0"},
		{[]string{"--backend", "tpu"}, `unknown backend "tpu"`},
		{[]string{"--kernel", "qmv_fast"}, `--kernel: invalid arguments: unknown kernel "qmv_fast"`},
		{[]string{"--dtype", "f64"}, `--dtype: invalid arguments: activation dtype "f64", want f32, f16 or bf16`},
		{[]string{"inspect", "--dtype", "int8"}, `activation dtype "int8"`},
		{[]string{"help", "frobnicate"}, "help frobnicate: want run help, run help inspect or run help eval"},
		{[]string{"--kernel", "simd4_gs64"}, "group size 32, want [64]"},
		{[]string{"--model", "../../testdata/tiny/model.safetensors"}, "bits"},
		{[]string{"--bits", "7"}, "affine bits 7"},
		{[]string{"--mode", "int4"}, `mode "int4"`},
		{[]string{"--repeat", "0"}, "--repeat 0"},
		{[]string{"--expert", "3"}, "expert 3"},
		{[]string{"frobnicate"}, `unknown command "frobnicate", want inspect, eval, help or flags of the forward pass`},
		{[]string{"inspect", "--seq-len", "0"}, "--seq-len 0"},
		{[]string{"inspect", "--model", filepath.Join(tmp, "missing")}, "--model " + filepath.Join(tmp, "missing") + ": no such file or directory"},
	}
	for _, tt := range tests {
		status, out, errOut := runCLI(tt.args...)
		assert.Equal(t, 1, status, "%v", tt.args)
		assert.Empty(t, out, "%v", tt.args)
		assert.True(t, strings.HasPrefix(errOut, "error: "), "%v: %q", tt.args, errOut)
		assert.Equal(t, 1, strings.Count(errOut, "\n"), "%v: one line, got %q", tt.args, errOut)
		assert.Contains(t, errOut, tt.want, "%v", tt.args)
		assert.NotContains(t, errOut, "goroutine", "%v", tt.args)
	}
}

func TestUsage(t *testing.T) {
	status, _, errOut := runCLI("--no-such-flag")
	assert.Equal(t, 2, status)
	assert.Contains(t, errOut, "flag provided but not defined: -no-such-flag")
	status, _, errOut = runCLI("-h")
	assert.Equal(t, 0, status)
	for _, want := range []string{"usage: run [flags]", "run inspect [--model PATH]", "run eval --config FILE", "run help", "-dtype", "-kernel"} {
		assert.Contains(t, errOut, want)
	}
	status, _, _ = runCLI("inspect", "extra")
	assert.Equal(t, 2, status)

	// run help prints the same text on stdout, and the subcommands' flags.
	status, out, errOut := runCLI("help")
	assert.Equal(t, 0, status, errOut)
	assert.Contains(t, out, "run eval --config FILE")
	assert.Contains(t, out, "-seq-len")
	status, out, _ = runCLI("help", "inspect")
	assert.Equal(t, 0, status)
	assert.Contains(t, out, "usage: run inspect")
	status, out, _ = runCLI("help", "eval")
	assert.Equal(t, 0, status)
	assert.Contains(t, out, "usage: run eval --config FILE")
	assert.Contains(t, out, "-dtypes")
}

// --dtype f16 writes float16 .npy output, --dtype bf16 float32 (numpy has
// no bfloat16); both within the 16-bit tolerance of the golden output.
func TestHalfOutput(t *testing.T) {
	dir := "../../testdata/mixed"
	man, err := golden.Read(dir)
	require.NoError(t, err)
	gl := man.Layers[0]
	want, err := man.Output(gl)
	require.NoError(t, err)
	for dt, descr := range map[string]string{"f16": "<f2", "bf16": "<f4"} {
		out := filepath.Join(t.TempDir(), "y.npy")
		status, _, errOut := runCLI("--model", dir, "--layer", gl.Name, "--input", filepath.Join(dir, gl.X), "--output", out, "--dtype", dt, "--repeat", "1")
		require.Equal(t, 0, status, errOut)
		raw, err := os.ReadFile(out)
		require.NoError(t, err)
		assert.Contains(t, string(raw[:128]), "'descr': '"+descr+"'", dt)
		y, err := npy.ReadFile(out)
		require.NoError(t, err)
		assert.Equal(t, []int{man.Rows, gl.Out}, y.Shape)
		assert.Less(t, quant.RelErr(y.Float32(), want), 1e-2, dt)
	}
}

func TestInspect(t *testing.T) {
	status, out, errOut := runCLI("inspect", "--model", "../../testdata/mixed", "--seq-len", "16")
	require.Equal(t, 0, status, errOut)
	assert.Contains(t, out, "M = 16")
	lines := strings.Split(out, "\n")
	find := func(name string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, name+" ") {
				return l
			}
		}
		t.Fatalf("no line for %s in\n%s", name, out)
		return ""
	}
	// Every layer runs packed: its device bytes are its bytes on disk.
	assert.Regexp(t, `512x384\s+affine\s+5\s+32\s+F16\s+(\d+)\s+(\d+)\s+qmm \(packed\)\s+qmv to M=\d+`, find("model.layers.0.mlp.gate_proj"))
	assert.Regexp(t, `switch_linear\s+8x256x384\s+affine\s+4\s+64\s+BF16\s+\d+\s+\d+\s+gather_qmm \(packed\)\s+-$`, find("model.layers.1.mlp.switch_mlp.gate_proj"))
	assert.Regexp(t, `^lm_head\s+linear\s+509x384`, find("lm_head"))
	assert.Regexp(t, `nvfp4\s+4\s+16\s+U8\s+\d+\s+\d+\s+qmm \(packed\)`, find("model.layers.1.self_attn.k_proj"))
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 9 && strings.HasPrefix(f[0], "model.") {
			assert.Equal(t, f[7], f[8], "bytes on disk and on the device: %s", l)
		}
	}
	assert.Regexp(t, `quantized weights: (\d+) bytes on disk, (\d+) on the device`, out)
	assert.Contains(t, out, "total                       15")

	status, out, errOut = runCLI("inspect")
	require.Equal(t, 0, status, errOut)
	assert.Regexp(t, `model.layers.0.self_attn.q_proj\s+linear\s+256x256\s+affine\s+4\s+32\s+BF16\s+40960\s+40960\s+qmv \(packed\)`, out)
	assert.Regexp(t, `model.embed_tokens\s+embedding\s+1024x256\s+affine\s+4\s+32\s+BF16\s+163840\s+163840\s+embed \(packed\)\s+-`, out)
	status, out, errOut = runCLI("inspect", "--model", "../../testdata/mixed", "--top-k", "1")
	require.Equal(t, 0, status, errOut)
	assert.Regexp(t, `switch_mlp.up_proj\s+switch_linear.*gather_qmv \(packed\)`, out, "one row through one expert")
}

// An embedding runs its lookup of --ids, checked against the dequantized
// rows; with --input it runs as the tied head.
func TestLookupRun(t *testing.T) {
	r := runJSON(t, "--layer", "model.embed_tokens", "--ids", "1,5,9", "--repeat", "2")
	assert.Equal(t, "embedding", r.Kind)
	assert.Equal(t, "embed", r.Kernel)
	assert.Equal(t, []int32{1, 5, 9}, r.IDs)
	assert.Equal(t, [3]int{3, 1024, 256}, [3]int{r.M, r.N, r.K})
	assert.Equal(t, 3*r.Bytes/1024, r.ReadBytes, "three rows of the vocabulary")
	assert.Equal(t, r.Bytes, r.DeviceBytes)
	assert.LessOrEqual(t, r.RelErr, 1e-5)

	man, err := golden.Read("../../testdata/tiny")
	require.NoError(t, err)
	var gl golden.Layer
	for _, l := range man.Layers {
		if l.Kind == "embedding" {
			gl = l
		}
	}
	require.Equal(t, "model.embed_tokens", gl.Name)
	out := filepath.Join(t.TempDir(), "rows.npy")
	status, _, errOut := runCLI("--layer", gl.Name, "--ids", joinInts(gl.IDs, ","), "--output", out, "--dtype", "bf16", "--repeat", "1")
	require.Equal(t, 0, status, errOut)
	y, err := npy.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, []int{len(gl.IDs), gl.In}, y.Shape)
	want, err := man.Lookup(gl)
	require.NoError(t, err)
	assert.Less(t, quant.RelErr(y.Float32(), want), 1e-2)

	r = runJSON(t, "--layer", gl.Name, "--input", filepath.Join("../../testdata/tiny", gl.X), "--repeat", "1")
	assert.Equal(t, "qmv", r.Kernel, "the tied head")
	assert.Equal(t, [3]int{man.Rows, 1024, 256}, [3]int{r.M, r.N, r.K})

	r = runJSON(t, "--layer", gl.Name, "--seq-len", "4", "--repeat", "1")
	assert.Len(t, r.IDs, 4, "random ids")
}

// Stacked experts run their gathered product, on --route or random
// routing, checked against each row through its experts.
func TestSwitchRun(t *testing.T) {
	dir := "../../testdata/mixed"
	man, err := golden.Read(dir)
	require.NoError(t, err)
	var gl golden.Layer
	for _, l := range man.Layers {
		if l.Name == "model.layers.1.mlp.switch_mlp.down_proj" {
			gl = l
		}
	}
	require.Equal(t, 2, gl.TopK)
	var rows []string
	for i := 0; i < len(gl.Indices); i += gl.TopK {
		rows = append(rows, joinInts(gl.Indices[i:i+gl.TopK], ","))
	}
	out := filepath.Join(t.TempDir(), "y.npy")
	status, stdout, errOut := runCLI("--model", dir, "--layer", gl.Name, "--input", filepath.Join(dir, gl.X), "--route", strings.Join(rows, "/"), "--output", out, "--repeat", "1")
	require.Equal(t, 0, status, errOut)
	assert.Contains(t, stdout, "layer        model.layers.1.mlp.switch_mlp.down_proj (switch_linear)")
	assert.Contains(t, stdout, "experts      2 of 8 per row: "+strings.Join(rows, "/"))
	y, err := npy.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, []int{man.Rows, 2, gl.Out}, y.Shape)
	want, err := man.Gathered(gl)
	require.NoError(t, err)
	assert.Less(t, quant.RelErr(y.Float32(), want), 1e-5)

	for m, kernel := range map[string]string{"1": "gather_qmv", "9": "gather_qmm"} {
		r := runJSON(t, "--model", dir, "--layer", "model.layers.1.mlp.switch_mlp.gate_proj", "--seq-len", m, "--top-k", "3", "--repeat", "1")
		assert.Equal(t, "switch_linear", r.Kind)
		assert.Equal(t, kernel, r.Kernel, "M=%s", m)
		assert.Equal(t, [2]int{3, 8}, [2]int{r.TopK, r.Experts})
		assert.Len(t, r.Route, r.M*3)
		assert.Zero(t, r.ReadBytes%(r.Bytes/8), "whole experts")
		assert.LessOrEqual(t, r.RelErr, 1e-5)
	}
	r := runJSON(t, "--model", dir, "--layer", "model.layers.1.mlp.switch_mlp.gate_proj", "--seq-len", "2", "--route", "0,1/2,3", "--kernel", "gather_qmm", "--repeat", "1")
	assert.Equal(t, "gather_qmm", r.Kernel)
	assert.Equal(t, []int32{0, 1, 2, 3}, r.Route)
}

// Bad ids and expert indices are one-line errors naming them and the
// vocabulary size or the number of experts.
func TestRoutedErrors(t *testing.T) {
	mixed := "../../testdata/mixed"
	sw := "model.layers.1.mlp.switch_mlp.up_proj"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--layer", "model.embed_tokens", "--ids", "1,1024"}, "id 1024 (position 1) out of range: the vocabulary has 1024 rows"},
		{[]string{"--layer", "model.embed_tokens", "--ids", "-3"}, "id -3 (position 0) out of range: the vocabulary has 1024 rows"},
		{[]string{"--layer", "model.embed_tokens", "--ids", "1,x"}, `--ids: "x" is not an integer`},
		{[]string{"--layer", "model.embed_tokens", "--ids", "1,2,3", "--max-seq-len", "2"}, "3 ids exceed --max-seq-len 2"},
		{[]string{"--layer", "model.embed_tokens", "--route", "1"}, "--route/--top-k: layer model.embed_tokens is an embedding"},
		{[]string{"--ids", "1"}, "--ids: layer model.layers.0.mlp.down_proj is not an embedding (kind linear)"},
		{[]string{"--top-k", "2"}, "--route/--top-k: layer model.layers.0.mlp.down_proj is not stacked experts"},
		{[]string{"--model", mixed, "--layer", sw, "--route", "0,8"}, "expert index 8 (row 0, slot 1) out of range: the layer has 8 experts"},
		{[]string{"--model", mixed, "--layer", sw, "--route", "-1,2"}, "expert index -1 (row 0, slot 0) out of range"},
		{[]string{"--model", mixed, "--layer", sw, "--route", "0,1/2"}, "--route gives 2 rows of experts, x has 1 rows"},
		{[]string{"--model", mixed, "--layer", sw, "--seq-len", "2", "--route", "0,1/2"}, "--route row 1 has 1 experts, row 0 has 2"},
		{[]string{"--model", mixed, "--layer", sw, "--top-k", "9"}, "--top-k 9, want 1 to 8"},
		{[]string{"--model", mixed, "--layer", sw, "--expert", "2", "--top-k", "2"}, "one expert of " + sw + " runs alone"},
		{[]string{"--model", mixed, "--layer", sw, "--kernel", "embed"}, "kernel embed does not compute this layer's operation"},
	}
	for _, tt := range tests {
		status, out, errOut := runCLI(append(tt.args, "--repeat", "1")...)
		assert.Equal(t, 1, status, "%v", tt.args)
		assert.Empty(t, out, "%v", tt.args)
		assert.Equal(t, 1, strings.Count(errOut, "\n"), "%v: one line, got %q", tt.args, errOut)
		assert.Contains(t, errOut, tt.want, "%v", tt.args)
	}
}
