package eval_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/eval"
)

// small is a config of a few cases of every kind: model layers (one of
// stacked experts), a synthetic layer, the plan and a fixed kernel.
func small(t *testing.T) string {
	return "name: small\n" +
		"models:\n" +
		"  - path: embedded\n" +
		"    layers: [model.layers.0.self_attn.k_proj]\n" +
		"  - path: " + mixed + "\n" +
		"    layers: [model.layers.1.mlp.switch_mlp.gate_proj]\n" +
		"synthetic:\n" +
		"  - {rows: 40, cols: 64, mode: mxfp4}\n" +
		"  - {name: wide, rows: 24, cols: 128, bits: 3, group_size: 32, scale_dtype: f16, bias: true}\n" +
		"seq_lens: [1, 33]\n" +
		"backends: [cpu]\n" +
		"kernels: [plan, per_element]\n" +
		"repeat: 2\n" +
		"check_rows: 3\n" +
		"copy_bandwidth: false\n" +
		"output: {dir: " + t.TempDir() + ", formats: [json, csv, md, svg, png]}\n"
}

func runSmall(t *testing.T, ctx context.Context, progress eval.Progress) *eval.Report {
	t.Helper()
	_, b, err := load(t, small(t), nil)
	require.NoError(t, err)
	require.Equal(t, 4*2*2, b.Cases())
	return b.Run(ctx, progress)
}

func TestRun(t *testing.T) {
	var calls []string
	r := runSmall(t, context.Background(), func(done, total int, name string) {
		assert.Equal(t, 16, total)
		assert.Equal(t, len(calls), done)
		calls = append(calls, name)
	})
	require.Len(t, r.Cases, 16)
	assert.Equal(t, "model.layers.0.self_attn.k_proj M=1 f32 cpu qmv", calls[0])
	assert.Empty(t, calls[16], "the last call clears")
	assert.Equal(t, 16, r.Passed)
	assert.Zero(t, r.Failed)
	assert.False(t, r.Interrupted)
	require.Len(t, r.Devices, 1)
	assert.Equal(t, "cpu", r.Devices[0].Backend)
	assert.Zero(t, r.Devices[0].CopyGBps, "copy_bandwidth: false")

	type key struct {
		layer, kernel string
		m             int
		planned       bool
	}
	var got []key
	for _, c := range r.Cases {
		got = append(got, key{c.Layer, c.Kernel, c.M, c.Planned})
		assert.True(t, c.Pass, "%+v", c)
		assert.Less(t, float64(c.RelErr), 1e-5)
		assert.Equal(t, 1e-5, c.Tolerance)
		assert.Equal(t, "float32", c.Precision)
		assert.Equal(t, min(c.M, 3), c.CheckedRows)
		assert.Greater(t, c.MedianUS, 0.0)
		assert.LessOrEqual(t, c.MinUS, c.MedianUS)
		assert.GreaterOrEqual(t, c.MaxUS, c.MedianUS)
		assert.InDelta(t, float64(c.Bytes)/c.MedianUS/1e3, c.GBps, 1e-9*c.GBps)
		assert.InDelta(t, 2*float64(c.M*max(1, c.TopK)*c.N*c.K)/c.MedianUS/1e3, c.GFLOPs, 1e-9*c.GFLOPs)
		assert.Equal(t, 2, c.Repeat)
		assert.Empty(t, c.Error)
	}
	// The plan runs qmv at M = 1 and qmm at M = 33 (above the CPU's
	// crossover) on every format; on the stacked experts the gathered
	// products (gather_qmm once the rows outnumber the experts), while
	// per_element runs their expert 0.
	var want []key
	for _, layer := range []string{"model.layers.0.self_attn.k_proj", "model.layers.1.mlp.switch_mlp.gate_proj", "40x64 mxfp4", "wide"} {
		if strings.Contains(layer, "switch_mlp") {
			want = append(want, key{layer, "gather_qmv", 1, true}, key{layer, "gather_qmm", 33, true}, key{layer + "[0]", "per_element", 1, false}, key{layer + "[0]", "per_element", 33, false})
			continue
		}
		want = append(want, key{layer, "qmv", 1, true}, key{layer, "qmm", 33, true}, key{layer, "per_element", 1, false}, key{layer, "per_element", 33, false})
	}
	assert.Equal(t, want, got)
	c := r.Cases[12]
	assert.Equal(t, eval.Case{Model: "synthetic", Layer: "wide", Kind: "linear", Mode: "affine", Bits: 3, GroupSize: 32, ScaleDType: "F16", M: 1, N: 24, K: 128,
		DType: "f32", Shards: 1, Backend: "cpu", Device: r.Devices[0].Name, Kernel: "qmv", Planned: true, Precision: "float32", Warmup: 1, Repeat: 2, Bytes: c.Bytes,
		MedianUS: c.MedianUS, MinUS: c.MinUS, MaxUS: c.MaxUS, GBps: c.GBps, GFLOPs: c.GFLOPs, RelErr: c.RelErr, CheckedRows: 1,
		Tolerance: 1e-5, Pass: true}, c)
	assert.Equal(t, 24*128*3/8+2*24*4*2, c.Bytes)
}

// The dtypes axis builds each layer for every activation dtype; 16-bit
// cases are held to the 16-bit tolerance on their rounded x.
func TestDTypes(t *testing.T) {
	_, b, err := load(t, small(t), map[string]string{"dtypes": "f32,f16,bf16", "kernels": "plan"})
	require.NoError(t, err)
	require.Equal(t, 4*2*3, b.Cases())
	r := b.Run(context.Background(), nil)
	require.Len(t, r.Cases, 24)
	seen := map[string]int{}
	for _, c := range r.Cases {
		seen[c.DType]++
		assert.True(t, c.Pass, "%+v", c)
		want := map[string]string{"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[c.DType]
		assert.Equal(t, want, c.Precision, "%s %s", c.Layer, c.DType)
		if c.DType != "f32" {
			assert.Equal(t, 1e-2, c.Tolerance)
			assert.Less(t, float64(c.RelErr), 1e-2)
			assert.Greater(t, float64(c.RelErr), 1e-6, "%s %s: y is rounded to 16 bits", c.Layer, c.DType)
		}
	}
	assert.Equal(t, map[string]int{"f32": 8, "f16": 8, "bf16": 8}, seen)

	_, _, err = load(t, small(t), map[string]string{"dtypes": "f32,int8"})
	assert.ErrorContains(t, err, `dtypes[1]: unknown activation dtype "int8", want f32, f16 or bf16`)
}

// The same seed gives the same inputs and weights, so the same errors.
func TestDeterministic(t *testing.T) {
	a := runSmall(t, context.Background(), nil)
	b := runSmall(t, context.Background(), nil)
	for i := range a.Cases {
		assert.Equal(t, a.Cases[i].RelErr, b.Cases[i].RelErr, "%s M=%d", a.Cases[i].Layer, a.Cases[i].M)
	}
}

func TestFailingTolerance(t *testing.T) {
	_, b, err := load(t, "models: [{path: embedded, layers: [model.layers.0.self_attn.v_proj]}]\nbackends: [cpu]\nrepeat: 1\ntolerance: {float32: 1e-30}\ncopy_bandwidth: false\n", nil)
	require.NoError(t, err)
	r := b.Run(context.Background(), nil)
	require.Len(t, r.Cases, 1)
	assert.False(t, r.Cases[0].Pass)
	assert.Equal(t, 1, r.Failed)
	var out bytes.Buffer
	require.NoError(t, r.WriteSummary(&out))
	assert.Contains(t, out.String(), "FAIL")
	assert.Contains(t, out.String(), "1 cases: 0 passed, 1 failed")
}

func TestInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := runSmall(t, ctx, func(done, total int, name string) {
		if done == 3 {
			cancel()
		}
	})
	assert.True(t, r.Interrupted)
	assert.Len(t, r.Cases, 4, "the case about to run when cancelled completes")
	assert.Equal(t, 16, r.Total)
	files, err := r.Write()
	require.NoError(t, err)
	back := readJSON(t, files[0])
	assert.True(t, back.Interrupted)
	assert.Len(t, back.Cases, 4)
	var out bytes.Buffer
	require.NoError(t, r.WriteSummary(&out))
	assert.Contains(t, out.String(), "interrupted after 4 of 16 cases")

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	r = runSmall(t, ctx, nil)
	assert.True(t, r.Interrupted)
	assert.Empty(t, r.Cases)
}

func readJSON(t *testing.T, path string) *eval.Report {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var r eval.Report
	require.NoError(t, json.Unmarshal(data, &r))
	return &r
}

func TestReportFiles(t *testing.T) {
	r := runSmall(t, context.Background(), nil)
	files, err := r.Write()
	require.NoError(t, err)
	dir := r.Config.Output.Dir
	names := []string{"report.json", "report.csv", "report.md", "chart.svg", "chart.png"}
	require.Len(t, files, len(names))
	for i, n := range names {
		assert.Equal(t, filepath.Join(dir, n), files[i])
	}

	back := readJSON(t, files[0])
	assert.Equal(t, r.Cases, back.Cases)
	assert.Equal(t, "small", back.Name)
	assert.Equal(t, r.Config.SeqLens, back.Config.SeqLens)
	assert.Equal(t, 16, back.Passed)
	assert.Equal(t, r.Devices, back.Devices)

	f, err := os.Open(files[1])
	require.NoError(t, err)
	defer f.Close()
	records, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	require.Len(t, records, 1+len(r.Cases))
	col := map[string]int{}
	for i, h := range records[0] {
		col[h] = i
	}
	for _, h := range []string{"model", "layer", "m", "n", "k", "backend", "kernel", "median_us", "gb_per_s", "gflop_per_s", "rel_err", "tolerance", "pass"} {
		require.Contains(t, col, h)
	}
	for i, rec := range records[1:] {
		c := r.Cases[i]
		assert.Equal(t, c.Layer, rec[col["layer"]])
		assert.Equal(t, strconv.Itoa(c.M), rec[col["m"]])
		assert.Equal(t, c.Kernel, rec[col["kernel"]])
		relErr, err := strconv.ParseFloat(rec[col["rel_err"]], 64)
		require.NoError(t, err)
		assert.Equal(t, float64(c.RelErr), relErr)
		gbps, err := strconv.ParseFloat(rec[col["gb_per_s"]], 64)
		require.NoError(t, err)
		assert.Equal(t, c.GBps, gbps)
		assert.Equal(t, "true", rec[col["pass"]])
	}

	md, err := os.ReadFile(files[2])
	require.NoError(t, err)
	var rows []string
	for _, line := range strings.Split(string(md), "\n") {
		if strings.HasPrefix(line, "| ") {
			rows = append(rows, line)
		}
	}
	require.Len(t, rows, 1+len(r.Cases), "a header and a row per case")
	assert.Contains(t, rows[0], "| LAYER |")
	assert.Contains(t, rows[13], "| wide |")
	assert.Contains(t, rows[13], "| qmv (plan) |")
	assert.Contains(t, string(md), "on at most 3 rows of y per case")

	svg, err := os.ReadFile(files[3])
	require.NoError(t, err)
	var doc struct {
		Rects []struct {
			Fill string `xml:"fill,attr"`
		} `xml:"rect"`
		Texts []string `xml:"text"`
	}
	require.NoError(t, xml.Unmarshal(svg, &doc))
	assert.Len(t, doc.Rects, 1+2+len(r.Cases), "background, legend, a bar per case")
	assert.Contains(t, doc.Texts, "synthetic: wide M=1 qmv", "labels name the model when there are several")
	assert.Contains(t, doc.Texts[0], "GB/s")

	pf, err := os.Open(files[4])
	require.NoError(t, err)
	defer pf.Close()
	img, err := png.Decode(pf)
	require.NoError(t, err)
	assert.Greater(t, img.Bounds().Dy(), 16*len(r.Cases))
}

func TestTFLOPsChart(t *testing.T) {
	cfg, b, err := load(t, "synthetic: [{rows: 64, cols: 64}]\nbackends: [cpu]\nrepeat: 1\noutput: {chart: tflops, formats: [svg]}\n", map[string]string{"output.dir": t.TempDir()})
	require.NoError(t, err)
	files, err := b.Run(context.Background(), nil).Write()
	require.NoError(t, err)
	require.Equal(t, []string{filepath.Join(cfg.Output.Dir, "chart.svg")}, files)
	svg, err := os.ReadFile(files[0])
	require.NoError(t, err)
	assert.Contains(t, string(svg), "FLOP/s, 2·M·N·K per second")
	assert.NotContains(t, string(svg), "copy bandwidth")
}

func TestCopyBandwidth(t *testing.T) {
	_, b, err := load(t, "synthetic: [{rows: 64, cols: 64}]\nbackends: [cpu]\nrepeat: 1\n", nil)
	require.NoError(t, err)
	r := b.Run(context.Background(), nil)
	require.Len(t, r.Devices, 1)
	assert.Greater(t, r.Devices[0].CopyGBps, 0.1)
	c := r.Cases[0]
	assert.InDelta(t, c.GBps/r.Devices[0].CopyGBps, c.CopyFraction, 1e-12)
}

func TestFloatJSON(t *testing.T) {
	for _, v := range []float64{0, 1.5e-7, math.NaN(), math.Inf(1), math.Inf(-1)} {
		b, err := json.Marshal(eval.Float(v))
		require.NoError(t, err)
		var back eval.Float
		require.NoError(t, json.Unmarshal(b, &back), string(b))
		if math.IsNaN(v) {
			assert.Equal(t, `"NaN"`, string(b))
			assert.True(t, math.IsNaN(float64(back)))
			continue
		}
		assert.Equal(t, v, float64(back), string(b))
	}
}

// An embedding's plan is its lookup and stacked experts' the gathered
// products, each checked against its own reference; "all" adds their
// Linear views.
func TestRoutedCases(t *testing.T) {
	yaml := "models:\n" +
		"  - path: embedded\n" +
		"    layers: [model.embed_tokens]\n" +
		"  - path: " + mixed + "\n" +
		"    layers: [model.layers.1.mlp.switch_mlp.down_proj]\n" +
		"seq_lens: [1, 24]\nbackends: [cpu]\nrepeat: 1\ncheck_rows: 0\ntop_k: 3\ncopy_bandwidth: false\n"
	_, b, err := load(t, yaml, nil)
	require.NoError(t, err)
	r := b.Run(context.Background(), nil)
	require.Len(t, r.Cases, 4)
	for i, want := range []struct {
		layer, kind, kernel string
		m                   int
	}{
		{"model.embed_tokens", "embedding", "embed", 1},
		{"model.embed_tokens", "embedding", "embed", 24},
		{"model.layers.1.mlp.switch_mlp.down_proj", "switch_linear", "gather_qmv", 1},
		{"model.layers.1.mlp.switch_mlp.down_proj", "switch_linear", "gather_qmm", 24},
	} {
		c := r.Cases[i]
		assert.Equal(t, [3]string{want.layer, want.kind, want.kernel}, [3]string{c.Layer, c.Kind, c.Kernel}, "case %d", i)
		assert.Equal(t, want.m, c.M)
		assert.Equal(t, c.M, c.CheckedRows)
		assert.True(t, c.Pass && c.Planned, "%+v", c)
		assert.Less(t, float64(c.RelErr), 1e-5)
		if c.Kind == "embedding" {
			assert.Equal(t, [3]int{1024, 256, c.M * (1024*256/2 + 2*1024*8*2) / 1024}, [3]int{c.N, c.K, c.Bytes}, "the rows looked up")
			assert.Zero(t, c.GFLOPs)
			continue
		}
		assert.Equal(t, [4]int{384, 256, 3, 8}, [4]int{c.N, c.K, c.TopK, c.Experts})
		expert := 384*256/2 + 384*8
		assert.True(t, c.Bytes%expert == 0 && c.Bytes >= 3*expert && c.Bytes <= 8*expert, "%d bytes: whole experts, those picked", c.Bytes)
		assert.Greater(t, float64(c.RelErr), 0.0, "float32 sums")
	}

	_, b, err = load(t, strings.Replace(yaml, "repeat: 1", "repeat: 1\nkernels: all", 1), nil)
	require.NoError(t, err)
	// embed and qmv, qmm, per_element, tiled, simd, simd4, packed_simd4_b4
	// on the embedding (affine 4-bit g32); the two gathered products and
	// qmv, qmm, per_element on the mxfp4 experts.
	assert.Equal(t, 2*(1+7+2+3), b.Cases())

	_, _, err = load(t, strings.Replace(yaml, "top_k: 3", "top_k: 0", 1), nil)
	assert.ErrorContains(t, err, "top_k: 0, want at least 1")
	_, _, err = load(t, yaml+"kernels: [unpack]\n", nil)
	assert.ErrorContains(t, err, `kernels[0]: unknown kernel "unpack"`)
}
