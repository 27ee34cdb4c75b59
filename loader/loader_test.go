package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/internal/stfile"
	"github.com/mlxq/mlxq/quant"
)

func affine(bits, gs int) quant.Format {
	return quant.Format{Mode: quant.Affine, Bits: bits, GroupSize: gs}
}

var (
	qProj  = layerSpec{name: "model.layers.0.self_attn.q_proj", format: affine(4, 32), out: 16, in: 64, scaleType: quant.BF16}
	oProj  = layerSpec{name: "model.layers.0.self_attn.o_proj", format: affine(4, 32), out: 64, in: 32, scaleType: quant.F16, bias: true}
	down2  = layerSpec{name: "model.layers.2.mlp.down_proj", format: affine(4, 32), out: 8, in: 96, scaleType: quant.F32}
	down10 = layerSpec{name: "model.layers.10.mlp.down_proj", format: affine(4, 32), out: 8, in: 96, scaleType: quant.BF16}
	norm   = floatTensor("model.norm.weight", quant.BF16, 64)
)

// with returns s with another format (and name, when not empty).
func (s layerSpec) with(name string, f quant.Format, scaleType quant.DType) layerSpec {
	if name != "" {
		s.name = name
	}
	s.format, s.scaleType = f, scaleType
	return s
}

// An openCase is a good model and how to open it.
type openCase struct {
	name        string
	config      any         // config.json; nil for none
	specs       []layerSpec // the quantized layers, with the formats they must get
	unquantized []layerSpec // layers written with scales that must stay plain
	plain       []stfile.Tensor
	shards      int    // split the tensors over this many shards (0: one file)
	index       bool   // write model.safetensors.index.json
	how         string // "dir" (default), "file", "fs", "fs-file"
	opts        []Option
}

func TestOpen(t *testing.T) {
	global := quantConfig(map[string]any{"group_size": 32, "bits": 4})
	mxfp4 := quant.DefaultFormat(quant.MXFP4)
	experts := layerSpec{name: "model.layers.0.mlp.switch_mlp.up_proj", format: affine(3, 32), experts: 3, out: 8, in: 64, scaleType: quant.BF16, bias: true}
	cases := []openCase{
		{name: "single file", config: global, specs: []layerSpec{qProj, oProj, down2, down10}, plain: []stfile.Tensor{norm}},
		{name: "sharded without index", config: global, specs: []layerSpec{qProj, oProj, down2, down10}, plain: []stfile.Tensor{norm}, shards: 2},
		{name: "sharded with index", config: global, specs: []layerSpec{qProj, oProj, down2, down10}, plain: []stfile.Tensor{norm}, shards: 3, index: true},
		{name: "bare file with WithFormat", specs: []layerSpec{qProj, down2}, plain: []stfile.Tensor{norm}, how: "file",
			opts: []Option{WithFormat(affine(4, 32))}},
		{name: "bare file without quantized layers", plain: []stfile.Tensor{norm}, how: "file"},
		{name: "OpenFS directory", config: global, specs: []layerSpec{qProj, oProj}, plain: []stfile.Tensor{norm}, shards: 2, index: true, how: "fs"},
		{name: "OpenFS bare file", specs: []layerSpec{qProj}, how: "fs-file", opts: []Option{WithFormat(affine(4, 32))}},
		{name: "directory without config.json, WithFormat", specs: []layerSpec{qProj}, opts: []Option{WithFormat(affine(4, 32))}},
		{name: "WithFormat replaces the global format", config: global, specs: []layerSpec{qProj.with("", affine(8, 32), quant.F32)},
			opts: []Option{WithFormat(affine(8, 32))}},
		{name: "stacked experts with bias", config: quantConfig(map[string]any{"group_size": 32, "bits": 3}), specs: []layerSpec{experts}, how: "fs",
			plain: []stfile.Tensor{floatTensor("model.layers.0.mlp.gate.weight", quant.BF16, 3, 64)}},
		{name: "false layer", config: quantConfig(map[string]any{"group_size": 32, "bits": 4, "lm_head": false}),
			specs: []layerSpec{qProj}, unquantized: []layerSpec{qProj.with("lm_head", affine(4, 32), quant.BF16)}},
		{name: "per-layer overrides under mxfp4",
			config: quantConfig(map[string]any{
				"mode": "mxfp4", "group_size": 32, "bits": 4,
				"model.layers.0.mlp.gate":         map[string]any{"group_size": 64, "bits": 8}, // no mode: affine
				"model.layers.0.self_attn.k_proj": map[string]any{"bits": 6},                   // affine, group size 64 by default
				"model.layers.0.self_attn.v_proj": map[string]any{"mode": "mxfp8"},             // 8/32
				"model.layers.0.self_attn.o_proj": map[string]any{"mode": "nvfp4", "group_size": 16, "bits": 4},
				"model.layers.0.self_attn.q_proj": true, // the global format
			}),
			specs: []layerSpec{
				qProj.with("", mxfp4, quant.U8),
				qProj.with("model.layers.0.mlp.gate", affine(8, 64), quant.BF16),
				qProj.with("model.layers.0.self_attn.k_proj", affine(6, 64), quant.F16),
				qProj.with("model.layers.0.self_attn.v_proj", quant.DefaultFormat(quant.MXFP8), quant.U8),
				qProj.with("model.layers.0.self_attn.o_proj", quant.DefaultFormat(quant.NVFP4), quant.U8),
				qProj.with("model.layers.1.self_attn.q_proj", mxfp4, quant.U8), // unnamed: global
			}},
		{name: "quantization_config", config: map[string]any{"quantization_config": map[string]any{"group_size": 64, "bits": 8}},
			specs: []layerSpec{qProj.with("", affine(8, 64), quant.BF16)}},
		{name: "text_config.quantization", config: map[string]any{"text_config": map[string]any{"quantization": map[string]any{"bits": 2}}},
			specs: []layerSpec{qProj.with("", affine(2, 64), quant.BF16)}},
		{name: "text_config.quantization_config", config: map[string]any{"text_config": map[string]any{"quantization_config": map[string]any{"group_size": 32}}},
			specs: []layerSpec{qProj.with("", affine(4, 32), quant.BF16)}},
		{name: "HF quant_method mxfp4", config: map[string]any{"quantization_config": map[string]any{"quant_method": "mxfp4", "modules_to_not_convert": []string{"lm_head"}}},
			specs: []layerSpec{qProj.with("", mxfp4, quant.U8)}},
		{name: "no quantization", config: map[string]any{"model_type": "llama"}, plain: []stfile.Tensor{norm, floatTensor("lm_head.weight", quant.BF16, 16, 64)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t) })
	}
}

func (c openCase) run(t *testing.T) {
	mats := map[string][]*quant.Matrix{}
	var all []stfile.Tensor
	for _, s := range slices.Concat(c.specs, c.unquantized) {
		ts, ms := s.build(t)
		all = append(all, ts...)
		mats[s.name] = ms
	}
	all = append(all, c.plain...)

	tm := testModel{config: c.config, files: map[string][]stfile.Tensor{}}
	if c.shards == 0 {
		tm.files["model.safetensors"] = all
	} else {
		weightMap := map[string]string{}
		for i, ts := range all {
			name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i%c.shards+1, c.shards)
			tm.files[name] = append(tm.files[name], ts)
			weightMap[ts.Name] = name
		}
		if c.index {
			tm.index = map[string]any{"metadata": map[string]any{"total_size": 0}, "weight_map": weightMap}
		}
	}

	var m *Model
	var err error
	switch c.how {
	case "", "dir":
		m, err = Open(tm.write(t), c.opts...)
	case "file":
		m, err = Open(filepath.Join(tm.write(t), "model.safetensors"), c.opts...)
	case "fs":
		m, err = OpenFS(tm.mapFS(t, "models/x"), "models/x", c.opts...)
	case "fs-file":
		m, err = OpenFS(tm.mapFS(t, "models/x"), "models/x/model.safetensors", c.opts...)
	}
	require.NoError(t, err)
	defer func() { require.NoError(t, m.Close()) }()

	require.Len(t, m.Layers(), len(c.specs))
	for _, s := range c.specs {
		l, err := m.Layer(s.name)
		require.NoError(t, err, s.name)
		assert.Equal(t, s.name, l.Name)
		assert.Equal(t, s.format, l.Format, s.name)
		assert.Equal(t, s.experts, l.Experts, s.name)
		assert.Equal(t, [2]int{s.out, s.in}, [2]int{l.Out, l.In}, s.name)
		assert.Equal(t, s.scaleType, l.Scales.DType, s.name)
		assert.Equal(t, s.format.HasBiases(), l.Biases != nil, s.name)
		if assert.Equal(t, s.bias, l.Bias != nil, s.name) && s.bias {
			assert.Equal(t, quant.BF16, l.Bias.DType)
		}
		for e, want := range mats[s.name] {
			got := l.Matrix(e)
			require.NoError(t, got.Check())
			assert.Equal(t, want, got, "%s expert %d", s.name, e)
		}
		n := max(s.experts, 1)
		assert.Panics(t, func() { l.Matrix(n) })
		assert.Panics(t, func() { l.Matrix(-1) })
		for _, tt := range []*Tensor{l.Weight, l.Scales, l.Biases, l.Bias} {
			if tt != nil {
				got, err := m.Tensor(tt.Name)
				require.NoError(t, err)
				assert.Same(t, tt, got)
			}
		}
	}
	for _, s := range c.unquantized {
		_, err := m.Layer(s.name)
		assert.ErrorIs(t, err, ErrNotFound)
		_, err = m.Tensor(s.name + ".scales")
		assert.NoError(t, err)
	}
	for _, p := range c.plain {
		got, err := m.Tensor(p.Name)
		require.NoError(t, err)
		assert.Equal(t, p.Data, got.Data)
		assert.Equal(t, p.Shape, got.Shape)
		assert.Equal(t, p.DType, got.DType.String())
	}
	assert.Len(t, m.TensorNames(), len(all))
	assert.Equal(t, map[string]string{"format": "mlx"}, m.Metadata())
	if c.shards > 0 {
		assert.Len(t, m.Files(), c.shards)
	} else {
		assert.Equal(t, []string{"model.safetensors"}, m.Files())
	}
}

// TestZeroCopyMisaligned checks that tensor views point into the file's
// mapping, unaligned, and hold the bytes written.
func TestZeroCopyMisaligned(t *testing.T) {
	ts := tensorsOf(t, []layerSpec{qProj, oProj}, norm)
	// Pad the metadata until the data section starts at an odd offset.
	md := map[string]string{"format": "mlx", "pad": ""}
	for {
		h, err := stfile.Header(ts, md)
		require.NoError(t, err)
		if (8+len(h))%4 == 1 {
			break
		}
		md["pad"] += "x"
	}
	dir := t.TempDir()
	require.NoError(t, stfile.WriteFile(filepath.Join(dir, "model.safetensors"), ts, md))
	m, err := Open(dir, WithFormat(affine(4, 32)))
	require.NoError(t, err)
	defer m.Close()

	f := m.files[0]
	if runtime.GOOS != "windows" && runtime.GOOS != "plan9" && runtime.GOOS != "js" && runtime.GOOS != "wasip1" {
		assert.NotNil(t, f.unmap, "the file should be memory-mapped")
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(f.data)))
	hi := lo + uintptr(len(f.data))
	misaligned := 0
	for _, want := range ts {
		got, err := m.Tensor(want.Name)
		require.NoError(t, err)
		require.Equal(t, want.Data, got.Data, want.Name)
		p := uintptr(unsafe.Pointer(unsafe.SliceData(got.Data)))
		assert.True(t, lo <= p && p+uintptr(len(got.Data)) <= hi, "%s: view is not inside the mapping", want.Name)
		assert.Equal(t, len(got.Data), cap(got.Data), "%s: view must not extend past its tensor", want.Name)
		if p%uintptr(got.DType.Size()) != 0 {
			misaligned++
		}
	}
	assert.Positive(t, misaligned, "no tensor is misaligned; the test does not test what it should")

	l, err := m.Layer(qProj.name)
	require.NoError(t, err)
	mat := l.Matrix(0)
	p := uintptr(unsafe.Pointer(unsafe.SliceData(mat.Weight)))
	assert.True(t, lo <= p && p < hi, "Matrix must view the mapping")
}

func TestClose(t *testing.T) {
	dir := testModel{config: quantConfig(map[string]any{"group_size": 32}), files: map[string][]stfile.Tensor{
		"model.safetensors": tensorsOf(t, []layerSpec{qProj}),
	}}.write(t)
	m, err := Open(dir)
	require.NoError(t, err)
	l := m.Layers()[0]
	require.NoError(t, m.Close())
	require.NoError(t, m.Close(), "a second Close")
	assert.Nil(t, l.Weight.Data, "views are dropped at Close")
}

func TestLayersNaturalOrder(t *testing.T) {
	var specs []layerSpec
	for _, i := range []int{10, 2, 1, 0, 11, 3} {
		specs = append(specs, qProj.with(fmt.Sprintf("model.layers.%d.mlp.up_proj", i), affine(4, 32), quant.BF16))
	}
	specs = append(specs, qProj.with("lm_head", affine(4, 32), quant.BF16), qProj.with("model.embed_tokens", affine(4, 32), quant.BF16))
	dir := testModel{config: quantConfig(map[string]any{"group_size": 32}), files: map[string][]stfile.Tensor{
		"model.safetensors": tensorsOf(t, specs),
	}}.write(t)
	m, err := Open(dir)
	require.NoError(t, err)
	defer m.Close()
	var names []string
	for _, l := range m.Layers() {
		names = append(names, l.Name)
	}
	assert.Equal(t, []string{
		"lm_head", "model.embed_tokens",
		"model.layers.0.mlp.up_proj", "model.layers.1.mlp.up_proj", "model.layers.2.mlp.up_proj",
		"model.layers.3.mlp.up_proj", "model.layers.10.mlp.up_proj", "model.layers.11.mlp.up_proj",
	}, names)
}

func TestCompareNames(t *testing.T) {
	sorted := []string{"", "a", "a.", "a.02", "a.2", "a.10", "a.b", "a.b.1", "a10", "a2", "b"}
	got := slices.Clone(sorted)
	slices.Reverse(got)
	slices.SortFunc(got, compareNames)
	assert.Equal(t, sorted, got)
	for _, a := range sorted {
		for _, b := range sorted {
			assert.Equal(t, a == b, compareNames(a, b) == 0, "%q %q", a, b)
			assert.Equal(t, compareNames(a, b), -compareNames(b, a), "%q %q", a, b)
		}
	}
}

func TestLookupErrors(t *testing.T) {
	dir := testModel{
		config: quantConfig(map[string]any{"group_size": 32}),
		files:  map[string][]stfile.Tensor{"model.safetensors": tensorsOf(t, []layerSpec{qProj, oProj, down2}, norm)},
	}.write(t)
	m, err := Open(dir)
	require.NoError(t, err)
	defer m.Close()

	cases := []struct {
		name, lookup string
		layer        bool
		want         []string
	}{
		{"typo", "model.layers.0.self_attn.q_prj", true, []string{"layer model.layers.0.self_attn.q_prj: not found; close names: model.layers.0.self_attn.q_proj, model.layers.0.self_attn.o_proj"}},
		{"plain tensor's module", "model.norm", true, []string{"layer model.norm: not quantized", "plain BF16"}},
		{"tensor typo", "model.norm.weigth", false, []string{"tensor model.norm.weigth: not found; close names: model.norm.weight"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.layer {
				_, err = m.Layer(c.lookup)
			} else {
				_, err = m.Tensor(c.lookup)
			}
			require.ErrorIs(t, err, ErrNotFound)
			for _, w := range c.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	specs := []layerSpec{qProj, oProj, down2.with("", affine(8, 32), quant.F32), qProj.with("lm_head", quant.DefaultFormat(quant.MXFP4), quant.U8)}
	config := quantConfig(map[string]any{"group_size": 32, "bits": 4,
		down2.name: map[string]any{"bits": 8, "group_size": 32}, "lm_head": map[string]any{"mode": "mxfp4"}})
	dir := testModel{config: config, files: map[string][]stfile.Tensor{"model.safetensors": tensorsOf(t, specs, norm)}}.write(t)
	m, err := Open(dir)
	require.NoError(t, err)
	defer m.Close()

	s := m.Summary()
	// Weight bytes: out*in*bits/8; scale bytes: out*in/gs*size (twice for affine).
	qw, qs := int64(16*64*4/8), int64(16*64/32*2*2)
	ow, os := int64(64*32*4/8), int64(64*32/32*2*2)
	dw, ds := int64(8*96*8/8), int64(8*96/32*4*2)
	lw, ls := int64(16*64*4/8), int64(16*64/32)
	assert.Equal(t, []FormatSummary{
		{Format: affine(4, 32), Layers: 2, WeightBytes: qw + ow, ScaleBytes: qs + os},
		{Format: affine(8, 32), Layers: 1, WeightBytes: dw, ScaleBytes: ds},
		{Format: quant.DefaultFormat(quant.MXFP4), Layers: 1, WeightBytes: lw, ScaleBytes: ls},
	}, s.Formats)
	assert.Equal(t, 4, s.Layers)
	assert.Equal(t, qw+ow+dw+lw, s.WeightBytes)
	assert.Equal(t, qs+os+ds+ls, s.ScaleBytes)
	assert.Equal(t, 2, s.PlainTensors) // norm and o_proj's bias
	assert.Equal(t, int64(64*2+64*2), s.PlainBytes)

	want := "" +
		"format                 layers  weights  scales+biases\n" +
		"affine 4-bit group 32       2  1.5 KiB          384 B\n" +
		"affine 8-bit group 32       1    768 B          192 B\n" +
		"mxfp4 4-bit group 32        1    512 B           32 B\n" +
		"total                       4  2.8 KiB          608 B\n" +
		"plain: 2 tensors, 256 B\n"
	assert.Equal(t, want, s.String())
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 3 << 20: "3.0 MiB", 5 << 30: "5.0 GiB"} {
		assert.Equal(t, want, formatBytes(n))
	}
}

func TestOpenNotFound(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "missing"))
	require.ErrorIs(t, err, ErrNotFound)
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, err = OpenFS(testModel{}.mapFS(t, "x"), "../x")
	assert.ErrorIs(t, err, ErrNotFound)
}

func TestTensorErrorFormat(t *testing.T) {
	e := &TensorError{File: "model.safetensors", Layer: "a.b", Tensor: "a.b.scales", Err: errorf(ErrShape, "shape [96 3], want [96 4] for group size 64")}
	assert.Equal(t, "model.safetensors: scales of a.b: shape [96 3], want [96 4] for group size 64", e.Error())
	assert.ErrorIs(t, e, ErrShape)
	var te *TensorError
	assert.True(t, errors.As(fmt.Errorf("open: %w", e), &te))
	e = &TensorError{File: "f", Tensor: "x", Err: errors.New("bad")}
	assert.Equal(t, "f: tensor x: bad", e.Error())
	e = &TensorError{Layer: "l", Err: errors.New("bad")}
	assert.Equal(t, "layer l: bad", e.Error())
}

func TestLayerString(t *testing.T) {
	l := &Layer{Name: "a", Format: affine(4, 64), Out: 8, In: 128}
	assert.Equal(t, "a: affine 4-bit group 64, [8 128]", l.String())
	l.Experts = 3
	assert.Equal(t, "a: affine 4-bit group 64, [3 8 128]", l.String())
}

func TestPathAndConfig(t *testing.T) {
	dir := testModel{config: quantConfig(map[string]any{"group_size": 32, "lm_head": false}), files: map[string][]stfile.Tensor{
		"model.safetensors": tensorsOf(t, []layerSpec{qProj}),
	}}.write(t)
	m, err := Open(dir)
	require.NoError(t, err)
	defer m.Close()
	assert.Equal(t, dir, m.Path())
	assert.Equal(t, &Config{Key: "quantization", Quantized: true, Format: affine(4, 32),
		Overrides: map[string]quant.Format{}, Unquantized: map[string]bool{"lm_head": true}}, m.Config())
}
