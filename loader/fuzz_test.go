package loader

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/mlxq/mlxq/internal/stfile"
	"github.com/mlxq/mlxq/quant"
)

// maxSeed bounds the size of a fuzz seed. The fuzzing engine minimizes each
// input that finds new coverage before it goes on fuzzing, in a number of
// runs that grows with the square of the input's size, and the first such
// inputs are mutations of the seeds, about one per seed. Seeds of a kilobyte
// or more (a model file of ../testdata, a layer of 16 rows) keep both
// workers minimizing for seconds to minutes each (up to -fuzzminimizetime,
// 60s by default), and fuzzing stalls. Hence the short names and the one or
// two rows of the seeds below.
const maxSeed = 256

// addSeeds adds seeds to f, failing for one larger than maxSeed.
func addSeeds(f *testing.F, seeds ...[]byte) {
	f.Helper()
	for i, s := range seeds {
		if len(s) > maxSeed {
			f.Fatalf("seed %d has %d bytes, want at most %d (see maxSeed)", i, len(s), maxSeed)
		}
		f.Add(s)
	}
}

// seedFile encodes tensors as a safetensors file and sets its last byte, from
// which FuzzOpenFile picks the format, so that it picks f. That byte is part
// of the last tensor's data, so the file stays well-formed.
func seedFile(t testing.TB, tensors []stfile.Tensor, metadata map[string]string, f quant.Format) []byte {
	t.Helper()
	i := slices.Index(fuzzFormats, f)
	if i < 0 {
		t.Fatalf("format %v is not one of fuzzFormats", f)
	}
	data := fileBytes(t, tensors, metadata)
	data[len(data)-1] = byte(i)
	return data
}

// without returns tensors less those whose name ends in suffix.
func without(tensors []stfile.Tensor, suffix string) []stfile.Tensor {
	return slices.DeleteFunc(slices.Clone(tensors), func(t stfile.Tensor) bool { return strings.HasSuffix(t.Name, suffix) })
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

// The layers of the FuzzOpenFile seeds: a row or two of one or two groups,
// with short names, so that each seed stays under maxSeed.
var (
	seedA4 = layerSpec{name: "a", format: affine(4, 32), out: 2, in: 32, scaleType: quant.BF16}
	seedA3 = layerSpec{name: "b", format: affine(3, 64), out: 1, in: 64, scaleType: quant.F16}
	seedE  = layerSpec{name: "e", format: affine(4, 32), experts: 2, out: 1, in: 32, scaleType: quant.F32}
	seedMX = layerSpec{name: "m", format: quant.DefaultFormat(quant.MXFP4), out: 1, in: 32, scaleType: quant.U8}
	seedNV = layerSpec{name: "v", format: quant.DefaultFormat(quant.NVFP4), out: 1, in: 32, scaleType: quant.U8, bias: true}
	seed8  = layerSpec{name: "s", format: affine(8, 32), out: 1, in: 32, scaleType: quant.BF16}
)

// FuzzOpenFile opens arbitrary bytes as a bare .safetensors file.
func FuzzOpenFile(f *testing.F) {
	md := map[string]string{"format": "mlx"}
	a4, a3, a8 := affine(4, 32), affine(3, 64), affine(8, 128)
	mx, nv := quant.DefaultFormat(quant.MXFP4), quant.DefaultFormat(quant.NVFP4)
	layer := func(s layerSpec) []stfile.Tensor { return tensorsOf(f, []layerSpec{s}) }
	plain := []stfile.Tensor{
		// A weight without scales, as a shard can hold, and names that sort
		// by number.
		{Name: "l.10.g.weight", DType: "U32", Shape: []int{1, 1}, Data: make([]byte, 4)},
		floatTensor("l.2.n", quant.BF16, 2),
	}
	addSeeds(f,
		// Files that open with the format picked, one for each format but
		// affine 8-bit group 128, whose smallest layer is over maxSeed.
		seedFile(f, layer(seedA4), nil, a4),
		seedFile(f, layer(seedA3), nil, a3),
		seedFile(f, layer(seedE), nil, a4),
		seedFile(f, layer(seedMX), md, mx),
		seedFile(f, layer(seedNV), nil, nv),
		seedFile(f, plain, md, a4),
		// Files whose layers do not fit the format picked: codes that do
		// not fill whole words, rows that are not whole groups, scales of
		// the wrong dtype for the mode, scales of the wrong shape (an 8-bit
		// layer read as 4-bit).
		seedFile(f, layer(seedA4), nil, a3),
		seedFile(f, layer(seedA4), nil, a8),
		seedFile(f, layer(seedA4), nil, mx),
		seedFile(f, layer(seedMX), nil, a4),
		seedFile(f, layer(seed8), nil, a4),
		// Layers with tensors missing, as in one shard of a sharded model:
		// scales and biases without the weight, or no biases.
		seedFile(f, without(layer(seedA4), ".weight"), md, a4),
		seedFile(f, without(layer(seedA4), ".biases"), nil, a4),
		// Malformed headers.
		rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)),
		rawFile(`{"a":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}`, make([]byte, 4)),
		rawFile(`{"a":{"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]}}`, nil),
		[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	)

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
	// Short layer names keep small both the header, parsed at every run,
	// and the seeds that name the layers.
	specs := []layerSpec{
		qProj.with("l.0.q", affine(4, 32), quant.BF16),
		qProj.with("l.0.g", affine(8, 64), quant.BF16),
		qProj.with("l.1.q", quant.DefaultFormat(quant.MXFP4), quant.U8),
		{name: "l.1.e", format: affine(4, 32), experts: 2, out: 8, in: 64, scaleType: quant.F16, bias: true},
	}
	weights := fileBytes(f, tensorsOf(f, specs, norm), map[string]string{"format": "mlx"})
	var seeds [][]byte
	for _, seed := range []string{
		`{"model_type": "llama"}`,
		`{"quantization": {"group_size": 32, "bits": 4}}`,
		`{"quantization": {"group_size": 32, "bits": 4, "mode": "affine", "l.0.g": {"group_size": 64, "bits": 8},
			"l.1.q": {"mode": "mxfp4"}, "lm_head": false}}`,
		`{"quantization": {"mode": "mxfp4", "l.0.q": {"group_size": 32}, "l.0.g": {"bits": 8},
			"l.1.e": {"group_size": 32, "bits": 4}}}`,
		`{"quantization_config": {"quant_method": "mxfp4"}}`,
		`{"quantization_config": {"quant_method": "awq"}}`,
		`{"text_config": {"quantization": {"bits": 4, "group_size": 32, "quantize_activations": true}}}`,
		`{"quantization": {"bits": 7}}`,
		`{"quantization": {"bits": 4.5, "mode": "int4"}}`,
		`{"quantization": {"x": null, "y": true, "z": 3}}`,
		`[1, 2, {"quantization": {}}]`,
		// What the configs in ../testdata hold, in small pieces: other keys
		// of every JSON type around the section, mlx-lm's indentation, the
		// section under both keys, per-layer dicts of every mode with and
		// without mode, a layer mapped to false.
		`{"architectures":["LlamaForCausalLM"],"rms_norm_eps":1e-05,"tie_word_embeddings":true,"vocab_size":1024}`,
		"{\n    \"quantization\": {\n        \"group_size\": 64,\n        \"bits\": 4\n    },\n    \"quantization_config\": {}\n}\n",
		`{"quantization":{"group_size":64,"bits":4,"mode":"affine","a":{"group_size":32,"bits":2,"mode":"affine"},"b":false}}`,
		`{"quantization":{"a":{"group_size":128,"bits":3},"b":{"bits":5},"c":{"group_size":32,"bits":6}}}`,
		`{"quantization":{"a":{"group_size":16,"bits":4,"mode":"nvfp4"},"b":{"group_size":32,"bits":8,"mode":"mxfp8"}}}`,
	} {
		seeds = append(seeds, []byte(seed))
	}
	addSeeds(f, seeds...)

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
