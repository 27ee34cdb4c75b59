// Command gen writes mlxq's test models: small MLX-format quantized models
// (config.json plus safetensors, as mlx-lm writes them) and, for every
// quantized layer, a fixed input and its float64 reference output.
//
// Run it from the repository root:
//
//	go run ./testdata/gen [-out testdata]
//
// The output is deterministic: every random value comes from a PCG generator
// seeded from the model and tensor names, so each run writes the same bytes.
// It replaces the directories tiny, mixed and sharded under -out and rewrites
// README.md there; nothing else is touched.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mlxq/mlxq/internal/golden"
	"github.com/mlxq/mlxq/internal/npy"
	"github.com/mlxq/mlxq/internal/stfile"
	"github.com/mlxq/mlxq/quant"
)

// rows is the number of input rows of every golden x.
const rows = 4

// cfgKind says how config.json's "quantization" object covers a layer.
type cfgKind int

const (
	// unnamed layers are quantized with the global format; the config does
	// not name them and a loader finds them by their ".scales" tensor.
	unnamed cfgKind = iota
	// override layers are named with {"group_size", "bits", "mode"}.
	override
	// overrideNoMode layers are named with {"group_size", "bits"} only, as
	// mlx-lm's model predicates write them; the mode is then affine.
	overrideNoMode
	// disabled layers are named with false and stored as a plain BF16
	// weight [out, in] without scales.
	disabled
)

var cfgNames = [...]string{unnamed: "unnamed", override: "override", overrideNoMode: "override-no-mode", disabled: "false"}

func (k cfgKind) String() string { return cfgNames[k] }

// layer is one Linear (or stacked-experts SwitchLinear) module.
type layer struct {
	name     string // module path, e.g. model.layers.0.self_attn.q_proj
	out, in  int
	experts  int // 0: a plain Linear [out, in]; E > 0: stacked [E, out, in]
	format   quant.Format
	scale    quant.DType
	cfg      cfgKind
	bias     bool // has a Linear bias tensor "<name>.bias" (BF16 [out], [experts, out] for stacked experts)
	zeroHead bool // the first group of row 0 (of expert 0) is all zeros
	embed    bool // a token embedding [vocab, dims]: golden rows of some ids
}

// model is one model directory.
type model struct {
	name   string
	about  string
	config map[string]any // config.json without the quantization keys
	global quant.Format
	layers []layer
	// topK is the experts per row of the stacked layers' golden routing.
	topK  int
	norms map[string]int // norm weight name -> length, stored BF16
	// shard returns 1 or 2 for a tensor name; nil writes a single
	// model.safetensors.
	shard func(tensor string) int
}

// affine returns an affine format.
func affine(bits, gs int) quant.Format {
	return quant.Format{Mode: quant.Affine, Bits: bits, GroupSize: gs}
}

func models() []model {
	tinyLayers := []layer{}
	for _, p := range []struct {
		name    string
		out, in int
	}{
		{"self_attn.q_proj", 256, 256},
		{"self_attn.k_proj", 64, 256},
		{"self_attn.v_proj", 64, 256},
		{"self_attn.o_proj", 256, 256},
		{"mlp.gate_proj", 512, 256},
		{"mlp.up_proj", 512, 256},
		{"mlp.down_proj", 256, 512},
	} {
		tinyLayers = append(tinyLayers, layer{name: "model.layers.0." + p.name, out: p.out, in: p.in,
			format: affine(4, 32), scale: quant.BF16, cfg: unnamed})
	}
	tinyLayers = append(tinyLayers, layer{name: "model.embed_tokens", out: 1024, in: 256, format: affine(4, 32), scale: quant.BF16, cfg: unnamed, embed: true})
	tiny := model{
		name: "tiny",
		about: "One Llama-style decoder layer and the quantized token embedding, tied (no lm_head: the embedding is the output head), " +
			"every layer 4-bit group 32 with BF16 scales and biases (the global format; the config names no layer). The CLI's default model.",
		config: map[string]any{
			"architectures":           []string{"LlamaForCausalLM"},
			"model_type":              "llama",
			"hidden_size":             256,
			"intermediate_size":       512,
			"num_attention_heads":     8,
			"num_key_value_heads":     2,
			"head_dim":                32,
			"num_hidden_layers":       1,
			"vocab_size":              1024,
			"max_position_embeddings": 2048,
			"rms_norm_eps":            1e-05,
			"rope_theta":              10000.0,
			"hidden_act":              "silu",
			"attention_bias":          false,
			"mlp_bias":                false,
			"tie_word_embeddings":     true,
			"torch_dtype":             "bfloat16",
		},
		global: affine(4, 32),
		layers: tinyLayers,
		norms: map[string]int{
			"model.layers.0.input_layernorm.weight":          256,
			"model.layers.0.post_attention_layernorm.weight": 256,
		},
	}

	l0, l1 := "model.layers.0.", "model.layers.1."
	mixed := model{
		name: "mixed",
		about: "A two-layer MoE-style model mixing every format: affine bits 2, 3, 4, 5, 6 and 8 with group sizes 32, 64 and 128, " +
			"BF16, F16 and F32 scales, a layer disabled with false, a Linear bias, mxfp4, nvfp4 and mxfp8 layers, " +
			"a switch_mlp of 8 stacked experts routed 2 per token (the down projection mxfp4 with expert biases), " +
			"unnamed layers in the global format (found by their scales), in-features 320 and 384 (not powers of two) and an odd out-features (lm_head, 509). " +
			"The first group of row 0 of model.layers.0.self_attn.o_proj is all zeros (it must dequantize to exact zeros).",
		config: map[string]any{
			"architectures":           []string{"Qwen3MoeForCausalLM"},
			"model_type":              "qwen3_moe",
			"hidden_size":             384,
			"intermediate_size":       512,
			"moe_intermediate_size":   256,
			"num_attention_heads":     5,
			"num_key_value_heads":     2,
			"head_dim":                64,
			"num_hidden_layers":       2,
			"num_experts":             8,
			"num_experts_per_tok":     2,
			"decoder_sparse_step":     1,
			"mlp_only_layers":         []int{0},
			"norm_topk_prob":          true,
			"vocab_size":              509,
			"max_position_embeddings": 4096,
			"rms_norm_eps":            1e-06,
			"rope_theta":              1000000.0,
			"hidden_act":              "silu",
			"tie_word_embeddings":     false,
			"torch_dtype":             "bfloat16",
		},
		global: affine(4, 64),
		topK:   2,
		layers: []layer{
			{name: l0 + "self_attn.q_proj", out: 320, in: 384, format: affine(2, 32), scale: quant.BF16, cfg: override},
			{name: l0 + "self_attn.k_proj", out: 128, in: 384, format: affine(3, 128), scale: quant.F16, cfg: override, bias: true},
			{name: l0 + "self_attn.v_proj", out: 128, in: 384, format: affine(6, 64), scale: quant.F32, cfg: override},
			{name: l0 + "self_attn.o_proj", out: 384, in: 320, format: affine(4, 64), scale: quant.BF16, cfg: unnamed, zeroHead: true},
			{name: l0 + "mlp.gate_proj", out: 512, in: 384, format: affine(5, 32), scale: quant.F16, cfg: override},
			{name: l0 + "mlp.up_proj", out: 512, in: 384, format: affine(8, 128), scale: quant.BF16, cfg: overrideNoMode},
			{name: l0 + "mlp.down_proj", out: 384, in: 512, cfg: disabled},
			{name: l1 + "self_attn.q_proj", out: 320, in: 384, format: quant.DefaultFormat(quant.MXFP4), scale: quant.U8, cfg: override},
			{name: l1 + "self_attn.k_proj", out: 128, in: 384, format: quant.DefaultFormat(quant.NVFP4), scale: quant.U8, cfg: override},
			{name: l1 + "self_attn.v_proj", out: 128, in: 384, format: quant.DefaultFormat(quant.MXFP8), scale: quant.U8, cfg: override},
			{name: l1 + "self_attn.o_proj", out: 384, in: 320, format: affine(4, 64), scale: quant.F16, cfg: unnamed},
			{name: l1 + "mlp.gate", out: 8, in: 384, format: affine(8, 64), scale: quant.BF16, cfg: overrideNoMode},
			{name: l1 + "mlp.switch_mlp.gate_proj", out: 256, in: 384, experts: 8, format: affine(4, 64), scale: quant.BF16, cfg: unnamed},
			{name: l1 + "mlp.switch_mlp.up_proj", out: 256, in: 384, experts: 8, format: affine(4, 64), scale: quant.BF16, cfg: unnamed},
			{name: l1 + "mlp.switch_mlp.down_proj", out: 384, in: 256, experts: 8, format: quant.DefaultFormat(quant.MXFP4), scale: quant.U8, cfg: override, bias: true},
			{name: "lm_head", out: 509, in: 384, format: affine(8, 32), scale: quant.F32, cfg: override},
		},
		norms: map[string]int{
			l0 + "input_layernorm.weight":          384,
			l0 + "post_attention_layernorm.weight": 384,
			l1 + "input_layernorm.weight":          384,
			l1 + "post_attention_layernorm.weight": 384,
			"model.norm.weight":                    384,
		},
	}

	shardedLayers := []layer{}
	for _, pre := range []string{l0, l1} {
		for _, p := range []struct {
			name    string
			out, in int
		}{
			{"self_attn.q_proj", 256, 256},
			{"self_attn.k_proj", 64, 256},
			{"self_attn.v_proj", 64, 256},
			{"self_attn.o_proj", 256, 256},
			{"mlp.gate_proj", 384, 256},
			{"mlp.up_proj", 384, 256},
			{"mlp.down_proj", 256, 384},
		} {
			l := layer{name: pre + p.name, out: p.out, in: p.in, format: affine(4, 64), scale: quant.BF16, cfg: unnamed}
			switch l.name {
			case l0 + "mlp.down_proj":
				l.format, l.cfg = affine(8, 128), override
			case l1 + "self_attn.v_proj":
				l.format, l.scale, l.cfg = affine(6, 32), quant.F16, override
			}
			shardedLayers = append(shardedLayers, l)
		}
	}
	sharded := model{
		name: "sharded",
		about: "A two-layer Llama-style model, 4-bit group 64 with two overrides, split over two shards with model.safetensors.index.json. " +
			"model.layers.1.mlp.gate_proj is split across the shards: its weight is in shard 1, its scales and biases in shard 2.",
		config: map[string]any{
			"architectures":           []string{"LlamaForCausalLM"},
			"model_type":              "llama",
			"hidden_size":             256,
			"intermediate_size":       384,
			"num_attention_heads":     4,
			"num_key_value_heads":     1,
			"head_dim":                64,
			"num_hidden_layers":       2,
			"vocab_size":              1024,
			"max_position_embeddings": 2048,
			"rms_norm_eps":            1e-05,
			"rope_theta":              500000.0,
			"hidden_act":              "silu",
			"attention_bias":          false,
			"mlp_bias":                false,
			"tie_word_embeddings":     true,
			"torch_dtype":             "bfloat16",
		},
		global: affine(4, 64),
		layers: shardedLayers,
		norms: map[string]int{
			l0 + "input_layernorm.weight":          256,
			l0 + "post_attention_layernorm.weight": 256,
			l1 + "input_layernorm.weight":          256,
			l1 + "post_attention_layernorm.weight": 256,
			"model.norm.weight":                    256,
		},
		shard: func(t string) int {
			switch {
			case strings.HasPrefix(t, l0),
				strings.HasPrefix(t, l1+"self_attn."),
				strings.HasPrefix(t, l1+"input_layernorm."),
				t == l1+"mlp.gate_proj.weight":
				return 1
			}
			return 2
		},
	}
	return []model{tiny, mixed, sharded}
}

// newRand returns a generator seeded from the given names, so that each
// tensor's values depend only on its own names.
func newRand(names ...string) *rand.Rand {
	h := fnv.New64a()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
	}
	s := h.Sum64()
	return rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
}

// weights returns n values drawn from N(0, 0.02²) with about one in 500
// replaced by an outlier drawn from N(0, 0.15²).
func weights(r *rand.Rand, n int) []float32 {
	w := make([]float32, n)
	for i := range w {
		w[i] = float32(r.NormFloat64() * 0.02)
	}
	for range max(1, n/500) {
		w[r.IntN(n)] = float32(r.NormFloat64() * 0.15)
	}
	return w
}

// normals returns n standard normal values.
func normals(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// bf16 returns v rounded to bfloat16 and its little-endian bytes.
func bf16(v []float32) ([]float32, []byte) {
	b := make([]byte, 2*len(v))
	r := make([]float32, len(v))
	for i, x := range v {
		quant.BF16.Store(b, i, x)
		r[i] = quant.BF16.Load(b, i)
	}
	return r, b
}

// obj is a JSON object that keeps its keys in order.
type obj []kv

type kv struct {
	k string
	v any
}

func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(e.k)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(e.v)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// quantConfig returns the "quantization" object as mlx-lm writes it: the
// global group_size, bits and mode, then one entry per named layer.
func quantConfig(m *model) obj {
	o := obj{{"group_size", m.global.GroupSize}, {"bits", m.global.Bits}, {"mode", m.global.Mode.String()}}
	for _, l := range m.layers {
		switch l.cfg {
		case override:
			o = append(o, kv{l.name, obj{{"group_size", l.format.GroupSize}, {"bits", l.format.Bits}, {"mode", l.format.Mode.String()}}})
		case overrideNoMode:
			o = append(o, kv{l.name, obj{{"group_size", l.format.GroupSize}, {"bits", l.format.Bits}}})
		case disabled:
			o = append(o, kv{l.name, false})
		}
	}
	return o
}

// jsonFile formats v with four-space indents, as mlx-lm's json.dump does.
func jsonFile(v any) []byte {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

// writer writes files under a root and records what it wrote.
type writer struct {
	root  string
	files []written
}

type written struct {
	path string // relative to root, slash-separated
	size int
}

func (w *writer) write(rel string, data []byte) error {
	p := filepath.Join(w.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return err
	}
	w.files = append(w.files, written{rel, len(data)})
	return nil
}

// built is what a model's generation produced, for the README.
type built struct {
	m        *model
	man      *golden.Manifest
	tensors  map[string]stfile.Tensor
	shardMap map[string]string // tensor -> file
}

func build(w *writer, m *model) (*built, error) {
	man := &golden.Manifest{Model: m.name, Rows: rows, Global: golden.FormatOf(m.global), Layers: []golden.Layer{}, Unquantized: []golden.Plain{}}
	tensors := map[string]stfile.Tensor{}
	add := func(t stfile.Tensor) { tensors[t.Name] = t }

	for i := range m.layers {
		l := &m.layers[i]
		r := newRand(m.name, l.name)
		if l.cfg == disabled {
			_, data := bf16(weights(r, l.out*l.in))
			add(stfile.Tensor{Name: l.name + ".weight", DType: "BF16", Shape: []int{l.out, l.in}, Data: data})
			man.Unquantized = append(man.Unquantized, golden.Plain{Name: l.name + ".weight", DType: "BF16", Shape: []int{l.out, l.in}, Config: disabled.String()})
			continue
		}
		if l.in%l.format.GroupSize != 0 {
			return nil, fmt.Errorf("%s: in %d not a multiple of group size %d", l.name, l.in, l.format.GroupSize)
		}
		lead := []int{}
		if l.experts > 0 {
			lead = []int{l.experts}
		}
		shape := func(dims ...int) []int { return append(slices.Clone(lead), dims...) }
		var bias []float32
		if l.bias {
			var data []byte
			bias, data = bf16(weights(newRand(m.name, l.name, "bias"), l.out*max(1, l.experts)))
			add(stfile.Tensor{Name: l.name + ".bias", DType: "BF16", Shape: shape(l.out), Data: data})
		}
		biasOf := func(e int) []float32 {
			if bias == nil {
				return nil
			}
			return bias[e*l.out : (e+1)*l.out]
		}
		x := normals(newRand(m.name, l.name, "x"), rows*l.in)
		var wq, sc, bi []byte
		var y []float64
		var mats []*quant.Matrix
		for e := range max(1, l.experts) {
			v := weights(r, l.out*l.in)
			if l.zeroHead && e == 0 {
				clear(v[:l.format.GroupSize])
			}
			mat, err := quant.Quantize(v, l.out, l.in, l.format, l.scale)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", l.name, err)
			}
			wq = append(wq, mat.Weight...)
			sc = append(sc, mat.Scales...)
			bi = append(bi, mat.Biases...)
			y = append(y, quant.Reference(x, rows, mat, biasOf(e))...)
			mats = append(mats, mat)
		}
		add(stfile.Tensor{Name: l.name + ".weight", DType: "U32", Shape: shape(l.out, quant.RowBytes(l.in, l.format.Bits)/4), Data: wq})
		add(stfile.Tensor{Name: l.name + ".scales", DType: l.scale.String(), Shape: shape(l.out, l.in/l.format.GroupSize), Data: sc})
		if l.format.HasBiases() {
			add(stfile.Tensor{Name: l.name + ".biases", DType: l.scale.String(), Shape: shape(l.out, l.in/l.format.GroupSize), Data: bi})
		}

		lj := golden.Layer{Name: l.name, Format: golden.FormatOf(l.format), ScaleDType: l.scale.String(), Out: l.out, In: l.in,
			Experts: l.experts, HasBias: l.bias, Config: l.cfg.String(), Kind: "linear",
			X: "golden/" + l.name + ".x.npy", Y: "golden/" + l.name + ".y.npy"}
		switch {
		case l.experts > 0:
			if err := gatherGolden(w, m, l, &lj, x, mats, biasOf); err != nil {
				return nil, err
			}
		case l.embed:
			if err := lookupGolden(w, m, l, &lj, mats[0]); err != nil {
				return nil, err
			}
		}
		man.Layers = append(man.Layers, lj)
		var xb, yb bytes.Buffer
		if err := npy.WriteFloat32(&xb, []int{rows, l.in}, x); err != nil {
			return nil, err
		}
		if err := npy.WriteFloat64(&yb, shape(rows, l.out), y); err != nil {
			return nil, err
		}
		if err := w.write(m.name+"/"+lj.X, xb.Bytes()); err != nil {
			return nil, err
		}
		if err := w.write(m.name+"/"+lj.Y, yb.Bytes()); err != nil {
			return nil, err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.norms)) {
		n := m.norms[name]
		r := newRand(m.name, name)
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(1 + float64(0.1*r.NormFloat64()))
		}
		_, data := bf16(v)
		add(stfile.Tensor{Name: name, DType: "BF16", Shape: []int{n}, Data: data})
		man.Unquantized = append(man.Unquantized, golden.Plain{Name: name, DType: "BF16", Shape: []int{n}})
	}

	// config.json: mlx-lm sorts the top-level keys and writes the
	// quantization object twice.
	cfg := map[string]any{}
	for k, v := range m.config {
		cfg[k] = v
	}
	q := quantConfig(m)
	cfg["quantization"] = q
	cfg["quantization_config"] = q
	if err := w.write(m.name+"/config.json", jsonFile(cfg)); err != nil {
		return nil, err
	}

	// Safetensors, tensors sorted by name within each file.
	meta := map[string]string{"format": "mlx"}
	names := slices.Sorted(maps.Keys(tensors))
	shardMap := map[string]string{}
	if m.shard == nil {
		ts := make([]stfile.Tensor, 0, len(names))
		for _, n := range names {
			ts = append(ts, tensors[n])
			shardMap[n] = "model.safetensors"
		}
		var b bytes.Buffer
		if err := stfile.Write(&b, ts, meta); err != nil {
			return nil, err
		}
		if err := w.write(m.name+"/model.safetensors", b.Bytes()); err != nil {
			return nil, err
		}
		man.Files = []string{"model.safetensors"}
	} else {
		const nShards = 2
		total := 0
		for s := 1; s <= nShards; s++ {
			file := fmt.Sprintf("model-%05d-of-%05d.safetensors", s, nShards)
			var ts []stfile.Tensor
			for _, n := range names {
				if m.shard(n) == s {
					ts = append(ts, tensors[n])
					shardMap[n] = file
					total += len(tensors[n].Data)
				}
			}
			var b bytes.Buffer
			if err := stfile.Write(&b, ts, meta); err != nil {
				return nil, err
			}
			if err := w.write(m.name+"/"+file, b.Bytes()); err != nil {
				return nil, err
			}
			man.Files = append(man.Files, file)
		}
		index := map[string]any{
			"metadata":   map[string]any{"total_size": total},
			"weight_map": shardMap,
		}
		if err := w.write(m.name+"/model.safetensors.index.json", jsonFile(index)); err != nil {
			return nil, err
		}
	}
	if err := w.write(m.name+"/golden/manifest.json", jsonFile(man)); err != nil {
		return nil, err
	}
	return &built{m: m, man: man, tensors: tensors, shardMap: shardMap}, nil
}

// lookupGolden writes the golden rows of an embedding: the dequantized
// rows of the first and last ids and four drawn at random, in float64.
func lookupGolden(w *writer, m *model, l *layer, lj *golden.Layer, mat *quant.Matrix) error {
	r := newRand(m.name, l.name, "ids")
	lj.Kind = "embedding"
	lj.IDs = []int32{0, int32(l.out - 1)}
	for range 4 {
		lj.IDs = append(lj.IDs, int32(r.IntN(l.out)))
	}
	out := make([]float64, len(lj.IDs)*l.in)
	for i, id := range lj.IDs {
		mat.DequantizeRow(out[i*l.in:(i+1)*l.in], int(id))
	}
	lj.Rows = "golden/" + l.name + ".rows.npy"
	var b bytes.Buffer
	if err := npy.WriteFloat64(&b, []int{len(lj.IDs), l.in}, out); err != nil {
		return err
	}
	return w.write(m.name+"/"+lj.Rows, b.Bytes())
}

// gatherGolden writes the golden routing of stacked experts: each row of x
// to m.topK distinct experts drawn at random, and MLX's gather_qmm of x
// through them, y[r, j] = x[r]·W[e]ᵀ + bias[e] for e = indices[r, j].
func gatherGolden(w *writer, m *model, l *layer, lj *golden.Layer, x []float32, mats []*quant.Matrix, biasOf func(int) []float32) error {
	if m.topK < 1 || m.topK > l.experts {
		return fmt.Errorf("%s: top %d of %d experts", l.name, m.topK, l.experts)
	}
	r := newRand(m.name, l.name, "indices")
	lj.Kind, lj.TopK = "switch_linear", m.topK
	var out []float64
	for row := range rows {
		for _, e := range r.Perm(l.experts)[:m.topK] {
			lj.Indices = append(lj.Indices, int32(e))
			out = append(out, quant.Reference(x[row*l.in:(row+1)*l.in], 1, mats[e], biasOf(e))...)
		}
	}
	lj.Gather = "golden/" + l.name + ".gather.npy"
	var b bytes.Buffer
	if err := npy.WriteFloat64(&b, []int{rows, m.topK, l.out}, out); err != nil {
		return err
	}
	return w.write(m.name+"/"+lj.Gather, b.Bytes())
}

func shapeString(s []int) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func readme(bs []*built) []byte {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# testdata\n\n")
	p("Small MLX-format quantized models (the layout mlx-lm writes for mlx-community repos) and golden outputs for their layers.\n")
	p("Everything here except `gen/` is written by the generator, this file included; do not edit it by hand.\n\n")
	p("## Regenerating\n\n")
	p("From the repository root:\n\n")
	p("    go run ./testdata/gen            # writes into testdata/\n")
	p("    go run ./testdata/gen -out DIR   # writes into DIR instead\n\n")
	p("The generator replaces the directories `tiny/`, `mixed/` and `sharded/` and this README, and prints each file it wrote with its size.\n")
	p("Its output is deterministic: every value comes from a `math/rand/v2` PCG generator seeded from the model and tensor names\n")
	p("(FNV-1a), weights are quantized with `quant.Quantize` and the goldens computed with `quant.Reference`, so every run writes the same bytes.\n")
	p("`go test ./quant` checks this (`TestTestdataGeneratorDeterministic` runs the generator into a temporary directory and compares\n")
	p("every file byte for byte) and recomputes every golden output from the checked-in tensors (`TestTestdataGoldens`).\n")
	p("`quant.Reference` rounds every product before adding it (no fused multiply-add), so the goldens are the same bits on every GOARCH.\n\n")
	p("## Layout of a model directory\n\n")
	p("- `config.json`: an mlx-lm style config (keys sorted) with `quantization` and the identical `quantization_config`:\n")
	p("  global `group_size`, `bits`, `mode`, then per-layer entries (a dict, or `false` for a layer left unquantized).\n")
	p("- `model.safetensors`, or `model-0000N-of-00002.safetensors` plus `model.safetensors.index.json` (`{\"metadata\": {\"total_size\"}, \"weight_map\"}`).\n")
	p("  Headers are unpadded, as MLX writes them (tensor data is often misaligned), with metadata `{\"format\": \"mlx\"}`; tensors are sorted by name.\n")
	p("  A quantized layer `P` has `P.weight` (U32 `[..., out, in*bits/32]`), `P.scales` (`[..., out, in/group_size]`), `P.biases` (affine only,\n")
	p("  same shape and dtype as the scales) and optionally `P.bias` (the Linear bias, BF16 `[out]`). Floating-point modes have U8 scales\n")
	p("  (E8M0 for mxfp4 and mxfp8, E4M3 for nvfp4) and no biases.\n")
	p("- `golden/manifest.json`: every quantized layer with `name`, `format` (`mode`, `bits`, `group_size`), `scale_dtype`, `out`, `in`, `experts`\n")
	p("  (0 for a plain Linear, E for stacked experts), `has_bias`, `config` (how config.json covers it: `override` = a dict with mode,\n")
	p("  `override-no-mode` = a dict without mode (so affine), `unnamed` = not named, quantized with the global format and found by its scales),\n")
	p("  `kind` (`linear`, `embedding` or `switch_linear`, as the loader finds it), and the golden file names; plus the unquantized tensors\n")
	p("  (`config: \"false\"` for a layer disabled in the config) and the safetensors files.\n")
	p("- `golden/<layer>.x.npy`: float32 `[4, in]`, standard normal. `golden/<layer>.y.npy`: float64 `[4, out]` (`[E, 4, out]` for stacked experts,\n")
	p("  every expert applied to the same x) = `quant.Reference(x, 4, matrix, bias)`, i.e. `x · dequant(W)ᵀ + bias` in float64 with scales and biases as stored.\n")
	p("- An embedding also has `ids` in the manifest (the first and last rows and four at random) and `golden/<layer>.rows.npy`: float64\n")
	p("  `[len(ids), in]`, those rows dequantized (`Matrix.DequantizeRow`), what a lookup returns.\n")
	p("- Stacked experts also have `top_k` and `indices` in the manifest (each row of x routed to `top_k` distinct experts, row-major `[4, top_k]`)\n")
	p("  and `golden/<layer>.gather.npy`: float64 `[4, top_k, out]`, MLX's `gather_qmm` of x through them (`x[r] · dequant(W[e])ᵀ + bias[e]`).\n\n")
	p("Weights are N(0, 0.02²) with about one value in 500 replaced by an outlier from N(0, 0.15²), quantized one\n")
	p("`[out, in]` matrix (one expert) at a time. Norm weights are BF16 around 1. Linear biases are BF16 N(0, 0.02²) (one per expert of stacked experts).\n\n")
	for _, bt := range bs {
		m := bt.m
		p("## `%s`\n\n%s\n\n", m.name, m.about)
		p("Global format: %s. Files: %s.\n\n", m.global, "`"+strings.Join(bt.man.Files, "`, `")+"`")
		p("| layer | config | format | scale dtype | weight | scales | bias |")
		if m.shard != nil {
			p(" files |")
		}
		p("\n|---|---|---|---|---|---|---|")
		if m.shard != nil {
			p("---|")
		}
		p("\n")
		for _, l := range bt.man.Layers {
			w, s := bt.tensors[l.Name+".weight"], bt.tensors[l.Name+".scales"]
			bias := ""
			if l.HasBias {
				bias = "BF16 " + shapeString(bt.tensors[l.Name+".bias"].Shape)
			}
			f := fmt.Sprintf("%s %d-bit g%d", l.Format.Mode, l.Format.Bits, l.Format.GroupSize)
			p("| `%s` | %s | %s | %s | U32 %s | %s |%s|", l.Name, l.Config, f, l.ScaleDType, shapeString(w.Shape), shapeString(s.Shape), " "+bias+" ")
			if m.shard != nil {
				var files []string
				for _, suf := range []string{".weight", ".scales", ".biases"} {
					if f, ok := bt.shardMap[l.Name+suf]; ok {
						files = append(files, strings.TrimPrefix(suf, ".")+": "+strings.TrimSuffix(strings.TrimPrefix(f, "model-0000"), "-of-00002.safetensors"))
					}
				}
				p(" %s |", strings.Join(files, ", "))
			}
			p("\n")
		}
		p("\nUnquantized tensors:\n\n| tensor | dtype | shape | config |\n|---|---|---|---|\n")
		for _, u := range bt.man.Unquantized {
			c := ""
			if u.Config != "" {
				c = "`" + u.Config + "`"
			}
			p("| `%s` | %s | %s | %s |\n", u.Name, u.DType, shapeString(u.Shape), c)
		}
		p("\n")
	}
	return []byte(b.String())
}

func main() {
	out := flag.String("out", "testdata", "directory to write the models and README.md into")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	ms := models()
	for _, m := range ms {
		if err := os.RemoveAll(filepath.Join(out, m.name)); err != nil {
			return err
		}
	}
	w := &writer{root: out}
	var bs []*built
	for i := range ms {
		bt, err := build(w, &ms[i])
		if err != nil {
			return fmt.Errorf("model %s: %w", ms[i].name, err)
		}
		bs = append(bs, bt)
	}
	if err := w.write("README.md", readme(bs)); err != nil {
		return err
	}
	total := 0
	for _, f := range w.files {
		fmt.Printf("%9d  %s\n", f.size, filepath.Join(out, filepath.FromSlash(f.path)))
		total += f.size
	}
	fmt.Printf("%9d  total, %d files\n", total, len(w.files))
	return nil
}
