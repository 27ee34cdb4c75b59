package loader

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/internal/stfile"
	"github.com/mlxq/mlxq/quant"
)

// A layerSpec describes a quantized layer to build for a test.
type layerSpec struct {
	name      string
	format    quant.Format
	experts   int // 0 for a 2-D weight
	out, in   int
	scaleType quant.DType
	bias      bool // write a Linear bias
}

// rng returns a generator seeded from name, so that tests are repeatable.
func rng(name string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(name))
	return rand.New(rand.NewPCG(h.Sum64(), 1))
}

// build quantizes random weights for s and returns its tensors (weight,
// scales, biases, bias) and the matrix of each expert.
func (s layerSpec) build(t testing.TB) ([]stfile.Tensor, []*quant.Matrix) {
	t.Helper()
	r := rng(s.name)
	n := max(s.experts, 1)
	var w, sc, bi []byte
	mats := make([]*quant.Matrix, n)
	for e := range n {
		vals := make([]float32, s.out*s.in)
		for i := range vals {
			vals[i] = float32(r.NormFloat64() * 0.02)
		}
		m, err := quant.Quantize(vals, s.out, s.in, s.format, s.scaleType)
		require.NoError(t, err)
		mats[e] = m
		w = append(w, m.Weight...)
		sc = append(sc, m.Scales...)
		bi = append(bi, m.Biases...)
	}
	lead := []int{}
	if s.experts > 0 {
		lead = []int{s.experts}
	}
	shape := func(dims ...int) []int { return append(append([]int{}, lead...), dims...) }
	ts := []stfile.Tensor{
		{Name: s.name + ".weight", DType: "U32", Shape: shape(s.out, s.in*s.format.Bits/32), Data: w},
		{Name: s.name + ".scales", DType: s.scaleType.String(), Shape: shape(s.out, s.in/s.format.GroupSize), Data: sc},
	}
	if s.format.HasBiases() {
		ts = append(ts, stfile.Tensor{Name: s.name + ".biases", DType: s.scaleType.String(), Shape: shape(s.out, s.in/s.format.GroupSize), Data: bi})
	}
	if s.bias {
		ts = append(ts, floatTensor(s.name+".bias", quant.BF16, shape(s.out)...))
	}
	return ts, mats
}

// floatTensor returns a tensor of random values of a float dtype.
func floatTensor(name string, dt quant.DType, shape ...int) stfile.Tensor {
	r := rng(name)
	n := 1
	for _, d := range shape {
		n *= d
	}
	data := make([]byte, n*dt.Size())
	for i := range n {
		dt.Store(data, i, float32(r.NormFloat64()))
	}
	return stfile.Tensor{Name: name, DType: dt.String(), Shape: shape, Data: data}
}

// A testModel is a model directory to write: config.json (nil: none;
// a string or []byte: written as is; anything else: marshaled as JSON),
// safetensors files, raw files and an optional index.
type testModel struct {
	config any
	files  map[string][]stfile.Tensor
	raw    map[string][]byte
	index  any
}

// encode returns the model's files as name → contents.
func (tm testModel) encode(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if tm.config != nil {
		out[configFile] = jsonBytes(t, tm.config)
	}
	if tm.index != nil {
		out[indexFile] = jsonBytes(t, tm.index)
	}
	for name, ts := range tm.files {
		out[name] = fileBytes(t, ts, map[string]string{"format": "mlx"})
	}
	for name, data := range tm.raw {
		out[name] = data
	}
	return out
}

// write writes the model into a new temporary directory and returns it.
func (tm testModel) write(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range tm.encode(t) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
	}
	return dir
}

// mapFS returns the model's files in an fstest.MapFS, under dir.
func (tm testModel) mapFS(t testing.TB, dir string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, data := range tm.encode(t) {
		fsys[dir+"/"+name] = &fstest.MapFile{Data: data}
	}
	return fsys
}

func jsonBytes(t testing.TB, v any) []byte {
	switch v := v.(type) {
	case string:
		return []byte(v)
	case []byte:
		return v
	}
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// fileBytes encodes tensors as a safetensors file, the way MLX does.
func fileBytes(t testing.TB, tensors []stfile.Tensor, metadata map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, stfile.Write(&b, tensors, metadata))
	return b.Bytes()
}

// rawFile returns a safetensors file with the given header and data.
func rawFile(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

// quantConfig returns a config.json with the given quantization section.
func quantConfig(q map[string]any) map[string]any {
	return map[string]any{"model_type": "llama", "quantization": q}
}

// tensorsOf concatenates the tensors of layers and plain tensors.
func tensorsOf(t testing.TB, specs []layerSpec, plain ...stfile.Tensor) []stfile.Tensor {
	var ts []stfile.Tensor
	for _, s := range specs {
		l, _ := s.build(t)
		ts = append(ts, l...)
	}
	return append(ts, plain...)
}
