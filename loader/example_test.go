package loader_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/mlxq/mlxq/internal/stfile"
	"github.com/mlxq/mlxq/loader"
	"github.com/mlxq/mlxq/quant"
)

// ExampleOpen opens a model directory, walks its quantized layers and
// dequantizes a row of one of them.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "mlxq-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := writeExampleModel(dir); err != nil {
		log.Fatal(err)
	}

	m, err := loader.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	for _, l := range m.Layers() {
		fmt.Printf("%-32s %-22v out %3d in %3d  scales %v\n", l.Name, l.Format, l.Out, l.In, l.Scales.DType)
	}

	l, err := m.Layer("model.layers.0.mlp.down_proj")
	if err != nil {
		log.Fatal(err)
	}
	w := l.Matrix(0) // a quant.Matrix viewing the mapped file
	row := make([]float64, w.Cols)
	w.DequantizeRow(row, 0)
	fmt.Printf("%s row 0: %.3f ...\n", l.Name, row[:4])

	fmt.Print(m.Summary())
	// Output:
	// model.layers.0.mlp.down_proj     affine 8-bit group 64  out  64 in 128  scales BF16
	// model.layers.0.mlp.up_proj       affine 4-bit group 32  out 128 in  64  scales BF16
	// model.layers.0.self_attn.q_proj  affine 4-bit group 32  out  64 in  64  scales BF16
	// model.layers.0.mlp.down_proj row 0: [-0.109 -0.040 0.030 0.100] ...
	// format                 layers   weights  scales+biases
	// affine 4-bit group 32       2   6.0 KiB        1.5 KiB
	// affine 8-bit group 64       1   8.0 KiB          512 B
	// total                       3  14.0 KiB        2.0 KiB
	// plain: 1 tensor, 128 B
}

// writeExampleModel writes a small model the way mlx-lm does: config.json
// with a global format and one per-layer override, and model.safetensors.
func writeExampleModel(dir string) error {
	config := `{
  "model_type": "llama",
  "quantization": {
    "group_size": 32,
    "bits": 4,
    "mode": "affine",
    "model.layers.0.mlp.down_proj": {"group_size": 64, "bits": 8, "mode": "affine"}
  }
}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o644); err != nil {
		return err
	}
	var tensors []stfile.Tensor
	for _, l := range []struct {
		name    string
		format  quant.Format
		out, in int
	}{
		{"model.layers.0.self_attn.q_proj", quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}, 64, 64},
		{"model.layers.0.mlp.up_proj", quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}, 128, 64},
		{"model.layers.0.mlp.down_proj", quant.Format{Mode: quant.Affine, Bits: 8, GroupSize: 64}, 64, 128},
	} {
		w := make([]float32, l.out*l.in)
		for i := range w {
			w[i] = float32(i*7%23-11) / 100
		}
		m, err := quant.Quantize(w, l.out, l.in, l.format, quant.BF16)
		if err != nil {
			return err
		}
		groups := []int{l.out, l.in / l.format.GroupSize}
		tensors = append(tensors,
			stfile.Tensor{Name: l.name + ".weight", DType: "U32", Shape: []int{l.out, l.in * l.format.Bits / 32}, Data: m.Weight},
			stfile.Tensor{Name: l.name + ".scales", DType: "BF16", Shape: groups, Data: m.Scales},
			stfile.Tensor{Name: l.name + ".biases", DType: "BF16", Shape: groups, Data: m.Biases})
	}
	norm := make([]byte, 2*64)
	for i := range 64 {
		quant.BF16.Store(norm, i, 1)
	}
	tensors = append(tensors, stfile.Tensor{Name: "model.norm.weight", DType: "BF16", Shape: []int{64}, Data: norm})
	return stfile.WriteFile(filepath.Join(dir, "model.safetensors"), tensors, map[string]string{"format": "mlx"})
}
