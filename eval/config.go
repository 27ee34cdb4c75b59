package eval

import (
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/layers"
)

// Config is one evaluation: which layers to run, at which sizes, on which
// backends and kernels, how to check and time them, and where to write the
// reports. Its fields carry the keys of the YAML file; docs/eval.md
// documents each one. Load fills a Config and validates it.
type Config struct {
	// Name titles the reports; it defaults to the config file's base name.
	Name string `mapstructure:"name" json:"name"`
	// Models are model directories or files, each with its selected layers.
	Models []Model `mapstructure:"models" json:"models,omitempty"`
	// Synthetic are layers generated from random weights with the
	// project's quantizer, so that large shapes need no files.
	Synthetic []Synthetic `mapstructure:"synthetic" json:"synthetic,omitempty"`
	// SeqLens are the rows M of x each layer runs with.
	SeqLens []int `mapstructure:"seq_lens" json:"seq_lens"`
	// DTypes are the activation dtypes (of x and y) each layer runs with:
	// f32, f16 or bf16.
	DTypes []string `mapstructure:"dtypes" json:"dtypes"`
	// Shards are the numbers of devices each matrix product case is
	// split over (layers.ParallelLinear): 1 runs it on the backend's
	// device, n > 1 on the backend's devices 0 to n-1 through a
	// collective.
	Shards []int `mapstructure:"shards" json:"shards"`
	// Split is how the cases of more than one shard cut the layer:
	// "column", "row" or "both" (a case of each).
	Split string `mapstructure:"split" json:"split"`
	// Backends are engine backend names, or "auto".
	Backends []string `mapstructure:"backends" json:"backends"`
	// Kernels are catalog kernel names, "plan" for the kernel the plan
	// picks, or "all" alone for every kernel that accepts the layer. A
	// matrix product kernel runs a layer as a Linear (expert 0 of stacked
	// experts, an embedding as the tied output head); embed runs an
	// embedding's lookup, and the gathered products stacked experts.
	Kernels []string `mapstructure:"kernels" json:"kernels"`
	// TopK is the number of experts each row of x goes through in the
	// gathered cases of stacked experts, routed at random.
	TopK int `mapstructure:"top_k" json:"top_k"`
	// Warmup is the number of untimed runs before the timed ones.
	Warmup int `mapstructure:"warmup" json:"warmup"`
	// Repeat is the number of timed runs; the reports give their median.
	Repeat int `mapstructure:"repeat" json:"repeat"`
	// CheckRows is the most rows of y checked against the float64
	// reference per case, spread evenly over the M rows; 0 checks all.
	CheckRows int `mapstructure:"check_rows" json:"check_rows"`
	// CopyBandwidth measures each device's streaming copy bandwidth once,
	// as the ceiling the GB/s of the cases are compared with.
	CopyBandwidth bool `mapstructure:"copy_bandwidth" json:"copy_bandwidth"`
	// Input describes the random x.
	Input Input `mapstructure:"input" json:"input"`
	// Tolerance is the largest relative error that passes, per precision.
	Tolerance Tolerance `mapstructure:"tolerance" json:"tolerance"`
	// Output says which report files to write, and where.
	Output Output `mapstructure:"output" json:"output"`

	// File is the config file the values were read from.
	File string `mapstructure:"-" json:"file"`
}

// Model selects layers of a model.
type Model struct {
	// Path is a model directory or .safetensors file, relative to the
	// config file's directory; "embedded" or empty is the embedded
	// default model.
	Path string `mapstructure:"path" json:"path"`
	// Layers select layers by exact name, glob ("model.layers.*.mlp.*")
	// or regular expression between slashes ("/q_proj$/"); empty selects
	// every quantized layer. Each entry must match at least one layer.
	Layers []string `mapstructure:"layers" json:"layers,omitempty"`
	// Bits, GroupSize and Mode give the format of a bare .safetensors
	// file (or replace the global format of config.json); zero values
	// take the mode's defaults.
	Bits      int    `mapstructure:"bits" json:"bits,omitempty"`
	GroupSize int    `mapstructure:"group_size" json:"group_size,omitempty"`
	Mode      string `mapstructure:"mode" json:"mode,omitempty"`
}

// Synthetic is a layer generated on the fly: weights drawn from
// N(0, 0.02²) and quantized with quant.Quantize.
type Synthetic struct {
	// Name names the layer in the reports; it defaults to a description
	// of its shape and format, such as "4096x4096 affine4 g32 BF16".
	Name string `mapstructure:"name" json:"name,omitempty"`
	// Rows is N, the output features; Cols is K, the input features.
	Rows int `mapstructure:"rows" json:"rows"`
	Cols int `mapstructure:"cols" json:"cols"`
	// Mode is affine (default), mxfp4, mxfp8 or nvfp4.
	Mode string `mapstructure:"mode" json:"mode,omitempty"`
	// Bits and GroupSize default to the mode's defaults.
	Bits      int `mapstructure:"bits" json:"bits,omitempty"`
	GroupSize int `mapstructure:"group_size" json:"group_size,omitempty"`
	// ScaleDType is the scales' type: bf16 (default), f16 or f32 for
	// affine; the floating-point modes take u8 only.
	ScaleDType string `mapstructure:"scale_dtype" json:"scale_dtype,omitempty"`
	// Bias adds a Linear bias of N values.
	Bias bool `mapstructure:"bias" json:"bias,omitempty"`
}

// Input describes the random x of every case.
type Input struct {
	// Distribution is "normal" (N(0, 1), the default) or "uniform"
	// (U(-1, 1)).
	Distribution string `mapstructure:"distribution" json:"distribution"`
	// Seed seeds x and the synthetic weights. Every case of one layer
	// and M gets the same x, whatever its backend and kernel.
	Seed uint64 `mapstructure:"seed" json:"seed"`
}

// Tolerance is the largest ‖y − ref‖ / ‖ref‖ that passes, for each
// precision a kernel may compute in.
type Tolerance struct {
	Float32  float64 `mapstructure:"float32" json:"float32"`
	TF32     float64 `mapstructure:"tf32" json:"tf32"`
	Float16  float64 `mapstructure:"float16" json:"float16"`
	BFloat16 float64 `mapstructure:"bfloat16" json:"bfloat16"`
}

// For returns the tolerance of precision p.
func (t Tolerance) For(p engine.Precision) float64 {
	switch p {
	case engine.TF32:
		return t.TF32
	case engine.Float16:
		return t.Float16
	case engine.BFloat16:
		return t.BFloat16
	}
	return t.Float32
}

// Output says which report files to write, and where.
type Output struct {
	// Dir is the directory the files go to, relative to the working
	// directory; it defaults to eval-out/NAME and is created if needed.
	Dir string `mapstructure:"dir" json:"dir"`
	// Formats are the files to write: json (report.json), csv
	// (report.csv), markdown or md (report.md), svg (chart.svg) and png
	// (chart.png). Empty writes none.
	Formats []string `mapstructure:"formats" json:"formats"`
	// Chart is the quantity the chart plots: "gbps" (weight bytes read per
	// second, the default) or "tflops".
	Chart string `mapstructure:"chart" json:"chart"`
}

// defaults are the values of the keys a file leaves out.
var defaults = map[string]any{
	"seq_lens":           []int{1},
	"dtypes":             []string{"f32"},
	"shards":             []int{1},
	"split":              SplitBoth,
	"backends":           []string{"auto"},
	"kernels":            []string{KernelsPlan},
	"top_k":              2,
	"warmup":             1,
	"repeat":             10,
	"check_rows":         8,
	"copy_bandwidth":     true,
	"input.distribution": "normal",
	"input.seed":         1,
	"tolerance.float32":  engine.Float32.Tolerance(),
	"tolerance.tf32":     engine.TF32.Tolerance(),
	"tolerance.float16":  engine.Float16.Tolerance(),
	"tolerance.bfloat16": engine.BFloat16.Tolerance(),
	"output.dir":         "",
	"output.formats":     []string{"json", "csv", "markdown", "svg"},
	"output.chart":       "gbps",
}

// SplitBoth runs the cases of more than one shard both column- and
// row-parallel.
const SplitBoth = "both"

// splits returns the splits the config's cases of more than one shard
// run with.
func (c *Config) splits() []layers.Split {
	if c.Split == SplitBoth {
		return []layers.Split{layers.ColumnParallel, layers.RowParallel}
	}
	s, _ := layers.ParseSplit(c.Split)
	return []layers.Split{s}
}

// Kernel list entries with a special meaning.
const (
	// KernelsPlan runs the kernel the engine's plan picks for the layer.
	KernelsPlan = "plan"
	// KernelsAll runs every kernel of the catalog that accepts the layer
	// and the device implements.
	KernelsAll = "all"
)
