package loader

import (
	"encoding/binary"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/internal/stfile"
	"github.com/mlxq/mlxq/quant"
)

// badCase is a model that must be rejected with an error that wraps every
// error of is and contains every fragment of want.
type badCase struct {
	name  string
	model testModel
	file  bool // open model.safetensors rather than the directory
	opts  []Option
	is    []error
	want  []string
}

// edit returns ts with the tensor called name changed by f (or removed when
// f is nil).
func edit(ts []stfile.Tensor, name string, f func(*stfile.Tensor)) []stfile.Tensor {
	ts = slices.Clone(ts)
	for i := range ts {
		if ts[i].Name == name {
			if f == nil {
				return slices.Delete(ts, i, i+1)
			}
			f(&ts[i])
			return ts
		}
	}
	panic("no tensor " + name)
}

func TestOpenBad(t *testing.T) {
	q := qProj.name // affine 4-bit group 32, [16 64], BF16 scales [16 2]
	global := quantConfig(map[string]any{"group_size": 32, "bits": 4})
	good := tensorsOf(t, []layerSpec{qProj}, norm)
	goodFile := fileBytes(t, good, map[string]string{"format": "mlx"})
	one := func(ts []stfile.Tensor) testModel {
		return testModel{config: global, files: map[string][]stfile.Tensor{"model.safetensors": ts}}
	}
	raw := func(data []byte) testModel {
		return testModel{config: global, raw: map[string][]byte{"model.safetensors": data}}
	}
	withConfig := func(c any) testModel { m := one(good); m.config = c; return m }
	headerLen := func(n uint64) []byte {
		b := slices.Clone(goodFile)
		binary.LittleEndian.PutUint64(b, n)
		return b
	}
	f32 := func(n int) []byte { return make([]byte, 4*n) }
	shards := func(index any) testModel {
		return testModel{config: global, index: index, files: map[string][]stfile.Tensor{
			"model-00001-of-00002.safetensors": good[:2],
			"model-00002-of-00002.safetensors": good[2:],
		}}
	}
	weightMap := map[string]any{
		q + ".weight": "model-00001-of-00002.safetensors", q + ".scales": "model-00001-of-00002.safetensors",
		q + ".biases": "model-00002-of-00002.safetensors", "model.norm.weight": "model-00002-of-00002.safetensors",
	}
	withMap := func(k, v string) map[string]any {
		m := map[string]any{}
		for key, val := range weightMap {
			m[key] = val
		}
		m[k] = v
		return map[string]any{"weight_map": m}
	}
	mxfp4 := func(ts []stfile.Tensor) testModel {
		m := one(ts)
		m.config = quantConfig(map[string]any{"mode": "mxfp4"})
		return m
	}
	scales := func(f func(*stfile.Tensor)) testModel { return one(edit(good, q+".scales", f)) }
	biases := func(f func(*stfile.Tensor)) testModel { return one(edit(good, q+".biases", f)) }

	cases := []badCase{
		// The safetensors container.
		{name: "truncated file", model: raw(goodFile[:len(goodFile)-3]), is: []error{ErrFile},
			want: []string{"model.safetensors: tensor model.norm.weight: data_offsets [", "run past the end of the data", "the file is truncated"}},
		{name: "truncated in the header", model: raw(goodFile[:40]), is: []error{ErrFile},
			want: []string{"model.safetensors: header length", "runs past the end of the file (32 bytes after the length)"}},
		{name: "shorter than the header length", model: raw([]byte{1, 2, 3}), is: []error{ErrFile},
			want: []string{"model.safetensors: file of 3 bytes is too short to hold the 8-byte header length"}},
		{name: "empty file", model: raw(nil), is: []error{ErrFile}, want: []string{"file of 0 bytes"}},
		{name: "header length beyond the file", model: raw(headerLen(1 << 40)), is: []error{ErrFile},
			want: []string{"model.safetensors: header length 1099511627776 runs past the end of the file"}},
		{name: "header length 2^64-1", model: raw(headerLen(1<<64 - 1)), is: []error{ErrFile},
			want: []string{"header length 18446744073709551615 runs past the end of the file"}},
		{name: "invalid header JSON", model: raw(rawFile(`{"a": {"dtype": "F32", `, f32(1))), is: []error{ErrFile},
			want: []string{"model.safetensors: invalid header deserialization"}},
		{name: "header not an object", model: raw(rawFile(`[1, 2]`, nil)), is: []error{ErrFile},
			want: []string{"model.safetensors: invalid header deserialization"}},
		{name: "extra key in a tensor entry", model: raw(rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, f32(1))),
			is: []error{ErrFile}, want: []string{`model.safetensors: invalid header deserialization: failed to JSON-decode tensor "a": invalid keys`}},
		{name: "negative offset", model: raw(rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, f32(1))),
			is: []error{ErrFile}, want: []string{`model.safetensors: invalid header deserialization: failed to JSON-decode tensor "a"`, "data_offsets"}},
		{name: "metadata not a string", model: raw(rawFile(`{"__metadata__":{"format":1}}`, nil)),
			is: []error{ErrFile}, want: []string{`model.safetensors: invalid header deserialization: __metadata__ "format" has value`}},
		{name: "overlapping offsets", model: raw(rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, f32(3))),
			is: []error{ErrFile}, want: []string{"model.safetensors: tensor b: data_offsets [4 12] overlap those of a [0 8]"}},
		{name: "out-of-range offsets", model: raw(rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, f32(3))),
			is: []error{ErrFile}, want: []string{"model.safetensors: tensor b: data_offsets [8 16] run past the end of the data (12 bytes)"}},
		{name: "gap between tensors", model: raw(rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, f32(3))),
			is: []error{ErrFile}, want: []string{"model.safetensors: tensor b: data_offsets [8 12] leave 4 unused bytes after a [0 4]"}},
		{name: "gap at the start", model: raw(rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32(2))),
			is: []error{ErrFile}, want: []string{"tensor a: data_offsets [4 8] leave 4 unused bytes at the start of the data"}},
		{name: "trailing bytes", model: raw(rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32(2))),
			is: []error{ErrFile}, want: []string{"model.safetensors: tensors end at byte 4 of the data, but the data has 8 bytes"}},
		{name: "start after end", model: raw(rawFile(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}`, f32(1))),
			is: []error{ErrFile}, want: []string{"tensor a: data_offsets [4 0]: start after end"}},
		{name: "offsets disagree with the shape", model: raw(rawFile(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, f32(2))),
			is: []error{ErrFile}, want: []string{"tensor a: data_offsets [0 8] hold 8 bytes, want 12 for F32 [3]"}},
		{name: "shape overflows", model: raw(rawFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, nil)),
			is: []error{ErrFile}, want: []string{"tensor a: F32 shape [4294967296 4294967296]: byte size overflows"}},
		{name: "huge dimension beside a zero", model: raw(rawFile(`{"a":{"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]}}`, nil)),
			is: []error{ErrShape}, want: []string{"model.safetensors: tensor a: shape [0 18446744073709551615]: dimension 18446744073709551615 out of range"}},
		{name: "unknown dtype", model: raw(rawFile(`{"a":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}`, f32(1))),
			is: []error{ErrFile, ErrDType}, want: []string{`model.safetensors: tensor a: unknown dtype "F8_E4M3", want BOOL, U8`}},
		{name: "tensor in two shards", model: testModel{config: global, files: map[string][]stfile.Tensor{
			"model-00001-of-00002.safetensors": good, "model-00002-of-00002.safetensors": {norm}}},
			is: []error{ErrFile}, want: []string{"model-00002-of-00002.safetensors: tensor model.norm.weight: also in model-00001-of-00002.safetensors"}},
		{name: "directory named like a shard", model: testModel{config: global, raw: map[string][]byte{}}, is: []error{ErrNotFound},
			want: []string{"no model*.safetensors files"}},

		// Layers.
		{name: "weight not U32", model: one(edit(good, q+".weight", func(t *stfile.Tensor) { t.DType = "F32" })), is: []error{ErrDType},
			want: []string{"model.safetensors: weight of model.layers.0.self_attn.q_proj: dtype F32, want U32 (packed 4-bit codes)"}},
		{name: "scales I32", model: scales(func(t *stfile.Tensor) { t.DType, t.Shape = "I32", []int{16, 1} }), is: []error{ErrDType},
			want: []string{"model.safetensors: scales of model.layers.0.self_attn.q_proj: dtype I32, want F32, F16 or BF16 for affine"}},
		{name: "biases of another dtype than the scales", model: biases(func(t *stfile.Tensor) { t.DType = "F16" }), is: []error{ErrDType},
			want: []string{"model.safetensors: biases of model.layers.0.self_attn.q_proj: dtype F16, want BF16 like the scales"}},
		{name: "fp mode with float scales", model: withConfig(quantConfig(map[string]any{"mode": "mxfp4", q: map[string]any{"mode": "mxfp4"}})),
			is: []error{ErrDType}, want: []string{"scales of model.layers.0.self_attn.q_proj: dtype BF16, want U8 for mxfp4"}},
		{name: "scales of the wrong shape", model: scales(func(t *stfile.Tensor) { t.Shape = []int{32, 1} }), is: []error{ErrShape},
			want: []string{"model.safetensors: scales of model.layers.0.self_attn.q_proj: shape [32 1], want [16 2] for group size 32"}},
		{name: "scales of the wrong rank", model: scales(func(t *stfile.Tensor) { t.Shape = []int{32} }), is: []error{ErrShape},
			want: []string{"scales of model.layers.0.self_attn.q_proj: shape [32], want [16 2] for group size 32"}},
		{name: "biases of the wrong shape", model: biases(func(t *stfile.Tensor) { t.Shape = []int{2, 16} }), is: []error{ErrShape},
			want: []string{"model.safetensors: biases of model.layers.0.self_attn.q_proj: shape [2 16], want [16 2] like the scales"}},
		{name: "missing biases", model: one(edit(good, q+".biases", nil)), is: []error{ErrNotFound},
			want: []string{"model.safetensors: biases of model.layers.0.self_attn.q_proj: not found, want BF16 [16 2] for affine 4-bit group 32"}},
		{name: "missing weight", model: one(edit(good, q+".weight", nil)), is: []error{ErrNotFound},
			want: []string{"weight of model.layers.0.self_attn.q_proj: not found, but the model has model.layers.0.self_attn.q_proj.scales"}},
		{name: "missing scales of a configured layer", model: testModel{config: quantConfig(map[string]any{q: map[string]any{"group_size": 32}}),
			files: map[string][]stfile.Tensor{"model.safetensors": edit(good, q+".scales", nil)}}, is: []error{ErrNotFound},
			want: []string{"scales of model.layers.0.self_attn.q_proj: not found, want F32, F16 or BF16 [16 2] for affine 4-bit group 32"}},
		{name: "fp mode with biases", model: mxfp4(slices.Concat(tensorsOf(t, []layerSpec{qProj.with("", quant.DefaultFormat(quant.MXFP4), quant.U8)}),
			[]stfile.Tensor{floatTensor(q+".biases", quant.BF16, 16, 2)})),
			is: []error{ErrShape}, want: []string{"biases of model.layers.0.self_attn.q_proj: present, but mxfp4 layers have no biases"}},
		{name: "bits 7", model: withConfig(quantConfig(map[string]any{"group_size": 32, "bits": 7})), is: []error{ErrConfig, quant.ErrFormat},
			want: []string{"config.json: quantization: unsupported quantization format: affine bits 7, want 2, 3, 4, 5, 6 or 8"}},
		{name: "bits 8 with 4-bit tensors", model: withConfig(quantConfig(map[string]any{"group_size": 32, "bits": 8})), is: []error{ErrShape},
			want: []string{"model.safetensors: scales of model.layers.0.self_attn.q_proj: shape [16 2], want [16 1] for group size 32"}},
		{name: "group size does not divide in-features", model: withConfig(quantConfig(map[string]any{"group_size": 128, "bits": 4})), is: []error{ErrShape},
			want: []string{"model.safetensors: weight of model.layers.0.self_attn.q_proj: shape [16 8] holds 64 4-bit codes per row, not a multiple of group size 128"}},
		{name: "row not a whole number of codes", model: withConfig(quantConfig(map[string]any{"group_size": 32, "bits": 3})), is: []error{ErrShape},
			want: []string{"weight of model.layers.0.self_attn.q_proj: shape [16 8]: 8 words per row do not hold a whole number of 3-bit codes"}},
		{name: "weight of one dimension", model: one(edit(good, q+".weight", func(t *stfile.Tensor) { t.Shape = []int{128} })), is: []error{ErrShape},
			want: []string{"weight of model.layers.0.self_attn.q_proj: shape [128], want [out in*bits/32] or [experts out in*bits/32]"}},
		{name: "weight with a zero dimension", model: one(edit(good, q+".weight", func(t *stfile.Tensor) { t.Shape, t.Data = []int{0, 8}, nil })),
			is: []error{ErrShape}, want: []string{"weight of model.layers.0.self_attn.q_proj: shape [0 8] has a zero dimension"}},
		{name: "bias of the wrong shape", model: one(append(slices.Clone(good), floatTensor(q+".bias", quant.BF16, 64))), is: []error{ErrShape},
			want: []string{"model.safetensors: bias of model.layers.0.self_attn.q_proj: shape [64], want [16]"}},
		{name: "bias not float", model: one(append(slices.Clone(good), stfile.Tensor{Name: q + ".bias", DType: "I32", Shape: []int{16}, Data: f32(16)})),
			is: []error{ErrDType}, want: []string{"bias of model.layers.0.self_attn.q_proj: dtype I32, want F32, F16 or BF16"}},

		// config.json.
		{name: "unknown mode", model: withConfig(quantConfig(map[string]any{"mode": "int4"})), is: []error{ErrConfig, quant.ErrFormat},
			want: []string{`config.json: quantization.mode: unsupported quantization format: mode "int4", want affine, mxfp4, mxfp8 or nvfp4`}},
		{name: "broken config.json", model: withConfig(`{"quantization": {"bits": 4`), is: []error{ErrConfig},
			want: []string{"config.json: invalid JSON: unexpected EOF"}},
		{name: "config key of the wrong type", model: withConfig(quantConfig(map[string]any{"group_size": "32"})), is: []error{ErrConfig},
			want: []string{`config.json: quantization.group_size: found string "32", want an integer`}},
		{name: "config layer with no tensors", model: withConfig(quantConfig(map[string]any{"group_size": 32, "model.layers.9.mlp.up_proj": map[string]any{"bits": 6}})),
			is: []error{ErrNotFound}, want: []string{"weight of model.layers.9.mlp.up_proj: not found, but config.json quantizes the layer as affine 6-bit group 64"}},
		{name: "scales without a quantization section", model: withConfig(map[string]any{"model_type": "llama"}), is: []error{ErrConfig},
			want: []string{"model.safetensors: scales of model.layers.0.self_attn.q_proj: found, but config.json has no quantization section"}},
		{name: "legacy quant_method", model: withConfig(map[string]any{"quantization_config": map[string]any{"quant_method": "gptq", "bits": 4}}),
			is: []error{ErrConfig}, want: []string{`config.json: quantization_config.quant_method: "gptq" is a Hugging Face quantization that mlxq does not read`}},
		{name: "no config.json", model: testModel{files: map[string][]stfile.Tensor{"model.safetensors": good}}, is: []error{ErrNotFound},
			want: []string{"no config.json; pass loader.WithFormat"}},
		{name: "bare file without WithFormat", model: one(good), file: true, is: []error{ErrConfig},
			want: []string{"model.safetensors: scales of model.layers.0.self_attn.q_proj: found, but model.safetensors is a bare .safetensors file", "pass loader.WithFormat"}},
		{name: "WithFormat bits 7", model: one(good), file: true, opts: []Option{WithFormat(affine(7, 32))}, is: []error{quant.ErrFormat},
			want: []string{"WithFormat: unsupported quantization format: affine bits 7"}},

		// The index.
		{name: "index naming a missing file", model: shards(withMap("model.norm.weight", "model-00003-of-00003.safetensors")), is: []error{ErrNotFound},
			want: []string{"model.safetensors.index.json: weight_map puts model.norm.weight in model-00003-of-00003.safetensors, which is not in"}},
		{name: "index naming the wrong file", model: shards(withMap("model.norm.weight", "model-00001-of-00002.safetensors")), is: []error{ErrNotFound},
			want: []string{"model-00001-of-00002.safetensors: tensor model.norm.weight: not found, but model.safetensors.index.json puts it there (it is in model-00002-of-00002.safetensors)"}},
		{name: "index naming a missing tensor", model: shards(withMap("lm_head.weight", "model-00001-of-00002.safetensors")), is: []error{ErrNotFound},
			want: []string{"model-00001-of-00002.safetensors: tensor lm_head.weight: not found, but model.safetensors.index.json puts it there"}},
		{name: "index naming a path", model: shards(withMap("model.norm.weight", "../model.safetensors")), is: []error{ErrConfig},
			want: []string{`model.safetensors.index.json: weight_map puts model.norm.weight in "../model.safetensors", want a .safetensors file of the model directory`}},
		{name: "index without weight_map", model: shards(map[string]any{"metadata": map[string]any{}}), is: []error{ErrConfig},
			want: []string{"model.safetensors.index.json: no weight_map"}},
		{name: "broken index", model: shards("{"), is: []error{ErrConfig}, want: []string{"model.safetensors.index.json: unexpected end of JSON input"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Through the file system (memory-mapped) and through an fs.FS.
			dir := c.model.write(t)
			fsys, name := c.model.mapFS(t, "m"), "m"
			if c.file {
				dir = filepath.Join(dir, "model.safetensors")
				name = "m/model.safetensors"
			}
			for how, open := range map[string]func() (*Model, error){
				"Open":   func() (*Model, error) { return Open(dir, c.opts...) },
				"OpenFS": func() (*Model, error) { return OpenFS(fsys, name, c.opts...) },
			} {
				m, err := open()
				require.Error(t, err, how)
				assert.Nil(t, m, how)
				for _, is := range c.is {
					assert.ErrorIs(t, err, is, how)
				}
				for _, w := range c.want {
					assert.Contains(t, err.Error(), w, how)
				}
			}
		})
	}
}
