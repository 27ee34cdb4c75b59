package loader

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/mlxq/mlxq/internal/stfile"
	"github.com/mlxq/mlxq/quant"
)

// maxSeed bounds the size of the testdata files used as fuzz seeds, to keep
// the fuzzer fast.
const maxSeed = 1 << 20

// addTestdataSeeds adds the files ../testdata/*/pattern as seeds, when they
// exist.
func addTestdataSeeds(f *testing.F, pattern string) {
	paths, _ := filepath.Glob(filepath.Join("..", "testdata", "*", pattern))
	for _, p := range paths {
		if fi, err := os.Stat(p); err != nil || fi.Size() > maxSeed {
			continue
		}
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
}

// checkClassified fails unless err wraps one of the package's sentinels.
func checkClassified(t *testing.T, err error) {
	for _, kind := range []error{ErrNotFound, ErrConfig, ErrFile, ErrDType, ErrShape, quant.ErrFormat} {
		if errors.Is(err, kind) {
			return
		}
	}
	t.Fatalf("error wraps no sentinel: %v", err)
}

// checkModel walks every layer of m the way a user would and checks that the
// validated views are consistent.
func checkModel(t *testing.T, m *Model) {
	for _, l := range m.Layers() {
		for e := range max(l.Experts, 1) {
			mat := l.Matrix(e)
			if err := mat.Check(); err != nil {
				t.Fatalf("%s expert %d: validated layer gives a bad matrix: %v", l.Name, e, err)
			}
			row := make([]float64, mat.Cols)
			mat.DequantizeRow(row, 0)
			mat.DequantizeRow(row, mat.Rows-1)
		}
		if l.Bias != nil {
			_ = l.Bias.DType.Floats(l.Bias.Data, len(l.Bias.Data)/l.Bias.DType.Size())
		}
	}
	for _, name := range m.TensorNames() {
		if _, err := m.Tensor(name); err != nil {
			t.Fatal(err)
		}
	}
	_ = m.Summary().String()
}

// fuzzFormats are the formats FuzzOpenFile opens files with, picked by the
// last byte of the input.
var fuzzFormats = []quant.Format{
	affine(4, 32), affine(3, 64), affine(8, 128), quant.DefaultFormat(quant.MXFP4), quant.DefaultFormat(quant.NVFP4),
}

// FuzzOpenFile opens arbitrary bytes as a bare .safetensors file.
func FuzzOpenFile(f *testing.F) {
	md := map[string]string{"format": "mlx"}
	for _, specs := range [][]layerSpec{
		{qProj, oProj},
		{qProj.with("", affine(3, 64), quant.F16)},
		{{name: "e", format: affine(8, 128), experts: 2, out: 2, in: 128, scaleType: quant.F32, bias: true}},
		{qProj.with("", quant.DefaultFormat(quant.MXFP4), quant.U8)},
		{qProj.with("", quant.DefaultFormat(quant.NVFP4), quant.U8)},
	} {
		f.Add(fileBytes(f, tensorsOf(f, specs, norm), md))
	}
	f.Add(fileBytes(f, []stfile.Tensor{norm}, nil))
	f.Add(rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)))
	f.Add(rawFile(`{"a":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(rawFile(`{"a":{"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]}}`, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	addTestdataSeeds(f, "*.safetensors")

	f.Fuzz(func(t *testing.T, data []byte) {
		format := fuzzFormats[0]
		if len(data) > 0 {
			format = fuzzFormats[int(data[len(data)-1])%len(fuzzFormats)]
		}
		fsys := fstest.MapFS{"m.safetensors": &fstest.MapFile{Data: data}}
		m, err := OpenFS(fsys, "m.safetensors", WithFormat(format))
		if err != nil {
			checkClassified(t, err)
			return
		}
		defer m.Close()
		checkModel(t, m)
	})
}

// FuzzConfig parses arbitrary bytes as config.json, alone and as the config
// of a small model.
func FuzzConfig(f *testing.F) {
	specs := []layerSpec{
		qProj,
		qProj.with("model.layers.0.mlp.gate", affine(8, 64), quant.BF16),
		qProj.with("model.layers.1.self_attn.q_proj", quant.DefaultFormat(quant.MXFP4), quant.U8),
		{name: "model.layers.1.mlp.switch_mlp.up_proj", format: affine(4, 32), experts: 2, out: 8, in: 64, scaleType: quant.F16, bias: true},
	}
	weights := fileBytes(f, tensorsOf(f, specs, norm), map[string]string{"format": "mlx"})
	for _, seed := range []string{
		`{"model_type": "llama"}`,
		`{"quantization": {"group_size": 32, "bits": 4}}`,
		`{"quantization": {"group_size": 32, "bits": 4, "mode": "affine", "model.layers.0.mlp.gate": {"group_size": 64, "bits": 8},
			"model.layers.1.self_attn.q_proj": {"mode": "mxfp4"}, "lm_head": false}}`,
		`{"quantization": {"mode": "mxfp4", "model.layers.0.self_attn.q_proj": {"group_size": 32}, "model.layers.0.mlp.gate": {"bits": 8},
			"model.layers.1.mlp.switch_mlp.up_proj": {"group_size": 32, "bits": 4}}}`,
		`{"quantization_config": {"quant_method": "mxfp4"}}`,
		`{"quantization_config": {"quant_method": "awq"}}`,
		`{"text_config": {"quantization": {"bits": 4, "group_size": 32, "quantize_activations": true}}}`,
		`{"quantization": {"bits": 7}}`,
		`{"quantization": {"bits": 4.5, "mode": "int4"}}`,
		`{"quantization": {"x": null, "y": true, "z": 3}}`,
		`[1, 2, {"quantization": {}}]`,
	} {
		f.Add([]byte(seed))
	}
	addTestdataSeeds(f, "config.json")

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("config error does not wrap ErrConfig: %v", err)
			}
			return
		}
		if c.Quantized != (c.Key != "") {
			t.Fatalf("Quantized %t with key %q", c.Quantized, c.Key)
		}
		if c.Quantized {
			if err := c.Format.Validate(); err != nil {
				t.Fatalf("global format: %v", err)
			}
		}
		for name, f := range c.Overrides {
			if err := f.Validate(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if c.Unquantized[name] {
				t.Fatalf("%s is both quantized and not", name)
			}
		}

		fsys := fstest.MapFS{configFile: {Data: data}, "model.safetensors": {Data: weights}}
		m, err := OpenFS(fsys, ".")
		if err != nil {
			checkClassified(t, err)
			return
		}
		defer m.Close()
		checkModel(t, m)
	})
}
