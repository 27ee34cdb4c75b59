package quant_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mlxq/mlxq/internal/golden"
	"github.com/mlxq/mlxq/internal/npy"
	"github.com/mlxq/mlxq/quant"
)

// The models written by testdata/gen.
var testdataModels = []string{"tiny", "mixed", "sharded"}

// repoRoot returns the directory holding go.mod, searching up from the
// test's working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// stTensor is one tensor read back from a safetensors file.
type stTensor struct {
	DType string
	Shape []int
	Data  []byte
}

// readSafetensors parses a safetensors file with encoding/json.
func readSafetensors(path string) (map[string]stTensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 8 {
		return nil, fmt.Errorf("%s: %d bytes, too short", path, len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(len(b)-8) {
		return nil, fmt.Errorf("%s: header of %d bytes in a %d-byte file", path, n, len(b))
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &header); err != nil {
		return nil, fmt.Errorf("%s: header: %w", path, err)
	}
	data := b[8+n:]
	out := map[string]stTensor{}
	for name, raw := range header {
		if name == "__metadata__" {
			var meta map[string]string
			if err := json.Unmarshal(raw, &meta); err != nil || meta["format"] != "mlx" {
				return nil, fmt.Errorf("%s: metadata %s, want {\"format\": \"mlx\"}", path, raw)
			}
			continue
		}
		var e struct {
			DType   string `json:"dtype"`
			Shape   []int  `json:"shape"`
			Offsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %w", path, name, err)
		}
		if e.Offsets[0] < 0 || e.Offsets[0] > e.Offsets[1] || e.Offsets[1] > len(data) {
			return nil, fmt.Errorf("%s: tensor %s: offsets %v outside %d data bytes", path, name, e.Offsets, len(data))
		}
		dt, err := quant.ParseDType(e.DType)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %w", path, name, err)
		}
		elems := 1
		for _, d := range e.Shape {
			elems *= d
		}
		if elems*dt.Size() != e.Offsets[1]-e.Offsets[0] {
			return nil, fmt.Errorf("%s: tensor %s: %v %s is %d bytes, offsets say %d", path, name, e.Shape, e.DType, elems*dt.Size(), e.Offsets[1]-e.Offsets[0])
		}
		out[name] = stTensor{e.DType, e.Shape, data[e.Offsets[0]:e.Offsets[1]]}
	}
	return out, nil
}

// readModelTensors merges the tensors of every model*.safetensors in dir,
// as mlx-lm does, and checks model.safetensors.index.json when present.
func readModelTensors(t *testing.T, dir string) map[string]stTensor {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "model*.safetensors"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no model*.safetensors (%v)", dir, err)
	}
	all := map[string]stTensor{}
	where := map[string]string{}
	total := 0
	for _, f := range files {
		ts, err := readSafetensors(f)
		if err != nil {
			t.Fatal(err)
		}
		for name, ts := range ts {
			if _, dup := all[name]; dup {
				t.Fatalf("%s: tensor %s is also in %s", f, name, where[name])
			}
			all[name], where[name] = ts, filepath.Base(f)
			total += len(ts.Data)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json")); err == nil {
		var index struct {
			Metadata struct {
				TotalSize int `json:"total_size"`
			} `json:"metadata"`
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(b, &index); err != nil {
			t.Fatalf("%s: index: %v", dir, err)
		}
		if index.Metadata.TotalSize != total {
			t.Errorf("%s: index total_size %d, tensors hold %d bytes", dir, index.Metadata.TotalSize, total)
		}
		if len(index.WeightMap) != len(where) {
			t.Errorf("%s: index maps %d tensors, files hold %d", dir, len(index.WeightMap), len(where))
		}
		for name, f := range index.WeightMap {
			if where[name] != f {
				t.Errorf("%s: index puts %s in %s, found in %q", dir, name, f, where[name])
			}
		}
	}
	return all
}

// configFormats returns, from config.json's "quantization" object, the
// global format and the per-layer entries (a format, or nil for false).
func configFormats(t *testing.T, dir string) (quant.Format, map[string]*quant.Format) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: config.json: %v", dir, err)
	}
	if !bytes.Equal(cfg["quantization"], cfg["quantization_config"]) {
		t.Errorf("%s: quantization and quantization_config differ", dir)
	}
	var q map[string]json.RawMessage
	if err := json.Unmarshal(cfg["quantization"], &q); err != nil {
		t.Fatalf("%s: quantization: %v", dir, err)
	}
	type entry struct {
		GroupSize *int   `json:"group_size"`
		Bits      *int   `json:"bits"`
		Mode      string `json:"mode"`
	}
	parse := func(raw []byte) quant.Format {
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("%s: quantization entry %s: %v", dir, raw, err)
		}
		if e.Mode == "" {
			e.Mode = "affine"
		}
		m, err := quant.ParseMode(e.Mode)
		if err != nil {
			t.Fatal(err)
		}
		f := quant.DefaultFormat(m)
		if e.GroupSize != nil {
			f.GroupSize = *e.GroupSize
		}
		if e.Bits != nil {
			f.Bits = *e.Bits
		}
		return f
	}
	var global quant.Format
	{
		var g struct {
			GroupSize int    `json:"group_size"`
			Bits      int    `json:"bits"`
			Mode      string `json:"mode"`
		}
		if err := json.Unmarshal(cfg["quantization"], &g); err != nil {
			t.Fatal(err)
		}
		m, err := quant.ParseMode(g.Mode)
		if err != nil {
			t.Fatal(err)
		}
		global = quant.Format{Mode: m, Bits: g.Bits, GroupSize: g.GroupSize}
	}
	layers := map[string]*quant.Format{}
	for k, raw := range q {
		switch k {
		case "group_size", "bits", "mode":
			continue
		}
		if string(raw) == "false" {
			layers[k] = nil
			continue
		}
		f := parse(raw)
		layers[k] = &f
	}
	return global, layers
}

// TestTestdataGoldens recomputes every golden output of testdata/ from the
// golden input and the layer's tensors as stored, and requires the same
// float64 bits: the checked-in goldens match the checked-in weights.
func TestTestdataGoldens(t *testing.T) {
	root := repoRoot(t)
	for _, name := range testdataModels {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(root, "testdata", name)
			man, err := golden.Read(dir)
			if err != nil {
				t.Fatal(err)
			}
			tensors := readModelTensors(t, dir)
			global, cfgLayers := configFormats(t, dir)
			if g, err := man.Global.Quant(); err != nil || g != global {
				t.Errorf("config global format %v, manifest %+v", global, man.Global)
			}

			listed := map[string]bool{}
			for _, l := range man.Layers {
				listed[l.Name] = true
				f, err := l.Format.Quant()
				if err != nil {
					t.Fatal(err)
				}
				// The config must give the layer this format.
				cf, named := cfgLayers[l.Name]
				switch {
				case named && cf == nil:
					t.Errorf("%s: config says false, manifest lists it quantized", l.Name)
				case named && *cf != f:
					t.Errorf("%s: config format %v, manifest %v", l.Name, *cf, f)
				case !named && global != f:
					t.Errorf("%s: not named in config, so %v, but manifest says %v", l.Name, global, f)
				case named != (l.Config != "unnamed"):
					t.Errorf("%s: manifest config %q, named in config.json: %v", l.Name, l.Config, named)
				}
				checkGoldenLayer(t, dir, tensors, man.Rows, f, l)
			}
			// Every layer with scales is listed, and every false layer has none.
			for tn := range tensors {
				if p, ok := strings.CutSuffix(tn, ".scales"); ok && !listed[p] {
					t.Errorf("%s has scales but is not in the manifest", p)
				}
			}
			for p, f := range cfgLayers {
				if f == nil {
					if _, ok := tensors[p+".scales"]; ok {
						t.Errorf("%s: false in config but has scales", p)
					}
				}
			}
			for _, u := range man.Unquantized {
				ts, ok := tensors[u.Name]
				if !ok || ts.DType != u.DType || !slices.Equal(ts.Shape, u.Shape) {
					t.Errorf("unquantized %s: found %s %v (present %v), manifest %s %v", u.Name, ts.DType, ts.Shape, ok, u.DType, u.Shape)
				}
			}
		})
	}
}

func checkGoldenLayer(t *testing.T, dir string, tensors map[string]stTensor, rows int, f quant.Format, l golden.Layer) {
	t.Helper()
	name, scaleDType, out, in, experts, xFile, yFile := l.Name, l.ScaleDType, l.Out, l.In, l.Experts, l.X, l.Y
	st, err := quant.ParseDType(scaleDType)
	if err != nil {
		t.Fatal(err)
	}
	lead := []int{}
	if experts > 0 {
		lead = []int{experts}
	}
	shape := func(dims ...int) []int { return append(slices.Clone(lead), dims...) }
	get := func(suffix, dtype string, want []int) []byte {
		ts, ok := tensors[name+suffix]
		if !ok {
			t.Errorf("%s%s missing", name, suffix)
			return nil
		}
		if ts.DType != dtype || !slices.Equal(ts.Shape, want) {
			t.Errorf("%s%s: %s %v, want %s %v", name, suffix, ts.DType, ts.Shape, dtype, want)
			return nil
		}
		return ts.Data
	}
	w := get(".weight", "U32", shape(out, in*f.Bits/32))
	s := get(".scales", scaleDType, shape(out, in/f.GroupSize))
	var bs []byte
	if f.HasBiases() {
		bs = get(".biases", scaleDType, shape(out, in/f.GroupSize))
	} else if _, ok := tensors[name+".biases"]; ok {
		t.Errorf("%s: %v layer has biases", name, f.Mode)
	}
	var bias []float32
	if l.HasBias {
		if d := get(".bias", "BF16", shape(out)); d != nil {
			bias = quant.BF16.Floats(d, out*max(1, experts))
		}
	} else if _, ok := tensors[name+".bias"]; ok {
		t.Errorf("%s: has a bias the manifest does not list", name)
	}
	if t.Failed() {
		return
	}
	x, err := npy.ReadFile(filepath.Join(dir, xFile))
	if err != nil {
		t.Fatal(err)
	}
	y, err := npy.ReadFile(filepath.Join(dir, yFile))
	if err != nil {
		t.Fatal(err)
	}
	if x.Descr != "<f4" || !slices.Equal(x.Shape, []int{rows, in}) {
		t.Fatalf("%s: x is %s %v, want <f4 [%d %d]", xFile, x.Descr, x.Shape, rows, in)
	}
	if y.Descr != "<f8" || !slices.Equal(y.Shape, shape(rows, out)) {
		t.Fatalf("%s: y is %s %v, want <f8 %v", yFile, y.Descr, y.Shape, shape(rows, out))
	}
	xs := x.Float32()
	n := max(1, experts)
	wb, sb := len(w)/n, len(s)/n
	var nonzero bool
	var mats []*quant.Matrix
	biasOf := func(e int) []float32 {
		if bias == nil {
			return nil
		}
		return bias[e*out : (e+1)*out]
	}
	for e := range n {
		m := &quant.Matrix{Format: f, Rows: out, Cols: in, ScaleType: st,
			Weight: w[e*wb : (e+1)*wb], Scales: s[e*sb : (e+1)*sb]}
		if bs != nil {
			m.Biases = bs[e*sb : (e+1)*sb]
		}
		if err := m.Check(); err != nil {
			t.Fatalf("%s expert %d: %v", name, e, err)
		}
		mats = append(mats, m)
		ref := quant.Reference(xs, rows, m, biasOf(e))
		got := y.Values[e*rows*out : (e+1)*rows*out]
		for i, v := range ref {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("%s expert %d: reference y[%d] = %v", name, e, i, v)
			}
			if math.Float64bits(v) != math.Float64bits(got[i]) {
				t.Fatalf("%s expert %d: y[%d] = %v in %s, recomputed %v", name, e, i, got[i], yFile, v)
			}
			nonzero = nonzero || v != 0
		}
	}
	if !nonzero {
		t.Errorf("%s: golden y is all zeros", name)
	}
	switch {
	case experts > 0:
		checkGather(t, dir, rows, l, xs, mats, biasOf)
	case l.Kind == "embedding":
		checkLookup(t, dir, l, mats[0])
	case l.Kind != "linear" || l.IDs != nil || l.Indices != nil:
		t.Errorf("%s: a 2-D layer of kind %q with ids %v and indices %v", name, l.Kind, l.IDs, l.Indices)
	}
}

// readGolden reads a golden float64 file of the given shape.
func readGolden(t *testing.T, dir, file string, shape ...int) []float64 {
	t.Helper()
	a, err := npy.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	if a.Descr != "<f8" || !slices.Equal(a.Shape, shape) {
		t.Fatalf("%s: %s %v, want <f8 %v", file, a.Descr, a.Shape, shape)
	}
	return a.Values
}

// sameBits fails unless got and want hold the same float64 bits.
func sameBits(t *testing.T, what string, got, want []float64) {
	t.Helper()
	for i, v := range want {
		if math.Float64bits(v) != math.Float64bits(got[i]) {
			t.Fatalf("%s: element %d = %v, recomputed %v", what, i, got[i], v)
		}
	}
}

// checkLookup recomputes an embedding's golden rows from its tensors.
func checkLookup(t *testing.T, dir string, l golden.Layer, m *quant.Matrix) {
	t.Helper()
	if len(l.IDs) == 0 || !slices.Contains(l.IDs, 0) || !slices.Contains(l.IDs, int32(l.Out-1)) {
		t.Fatalf("%s: ids %v, want the first and last rows among them", l.Name, l.IDs)
	}
	got := readGolden(t, dir, l.Rows, len(l.IDs), l.In)
	want := make([]float64, len(l.IDs)*l.In)
	for i, id := range l.IDs {
		m.DequantizeRow(want[i*l.In:(i+1)*l.In], int(id))
	}
	sameBits(t, l.Rows, got, want)
}

// checkGather recomputes stacked experts' golden gather_qmm from their
// tensors: each row of x through its top_k distinct experts.
func checkGather(t *testing.T, dir string, rows int, l golden.Layer, x []float32, mats []*quant.Matrix, biasOf func(int) []float32) {
	t.Helper()
	if l.Kind != "switch_linear" || l.TopK < 1 || len(l.Indices) != rows*l.TopK {
		t.Fatalf("%s: kind %q, top %d, %d indices for %d rows", l.Name, l.Kind, l.TopK, len(l.Indices), rows)
	}
	got := readGolden(t, dir, l.Gather, rows, l.TopK, l.Out)
	var want []float64
	for p, e := range l.Indices {
		r := p / l.TopK
		if e < 0 || int(e) >= l.Experts || slices.Contains(l.Indices[r*l.TopK:p], e) {
			t.Fatalf("%s: index %d of row %d: %d, want distinct experts of %d", l.Name, p%l.TopK, r, e, l.Experts)
		}
		want = append(want, quant.Reference(x[r*l.In:(r+1)*l.In], 1, mats[e], biasOf(int(e)))...)
	}
	sameBits(t, l.Gather, got, want)
}

// TestTestdataGeneratorDeterministic runs testdata/gen into a temporary
// directory and requires every file it writes to equal the checked-in one
// byte for byte, and every checked-in model file to be written.
func TestTestdataGeneratorDeterministic(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the generator with go run; skipped with -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH:", err)
	}
	root := repoRoot(t)
	tmp := t.TempDir()
	cmd := exec.Command(goBin, "run", "./testdata/gen", "-out", tmp)
	cmd.Dir = root
	if outb, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run ./testdata/gen -out %s: %v\n%s", tmp, err, outb)
	}
	want := filepath.Join(root, "testdata")
	walk := func(base string) map[string]bool {
		files := map[string]bool{}
		for _, sub := range append(slices.Clone(testdataModels), "README.md") {
			filepath.WalkDir(filepath.Join(base, sub), func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					t.Errorf("%v", err)
					return nil
				}
				if !d.IsDir() {
					rel, _ := filepath.Rel(base, p)
					files[rel] = true
				}
				return nil
			})
		}
		return files
	}
	gen, checked := walk(tmp), walk(want)
	if len(gen) == 0 {
		t.Fatal("generator wrote nothing")
	}
	for rel := range gen {
		a, err := os.ReadFile(filepath.Join(tmp, rel))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(want, rel))
		if err != nil {
			t.Errorf("testdata/%s: generated but not checked in (%v); run go run ./testdata/gen", rel, err)
			continue
		}
		if !bytes.Equal(a, b) {
			t.Errorf("testdata/%s differs from the generator's output (%d vs %d bytes); run go run ./testdata/gen", rel, len(b), len(a))
		}
	}
	for rel := range checked {
		if !gen[rel] {
			t.Errorf("testdata/%s is not written by the generator", rel)
		}
	}
}
