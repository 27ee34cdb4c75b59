package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/eval"
	"github.com/mlxq/mlxq/internal/npy"
	"github.com/mlxq/mlxq/layers"
	"github.com/mlxq/mlxq/loader"
	"github.com/mlxq/mlxq/quant"
)

// report is what a forward pass prints.
type report struct {
	Model      string  `json:"model"`
	Layer      string  `json:"layer"`
	Mode       string  `json:"mode"`
	Bits       int     `json:"bits"`
	GroupSize  int     `json:"group_size"`
	ScaleDType string  `json:"scale_dtype"`
	DType      string  `json:"dtype"`
	Kernel     string  `json:"kernel"`
	Backend    string  `json:"backend"`
	Device     string  `json:"device"`
	M          int     `json:"m"`
	N          int     `json:"n"`
	K          int     `json:"k"`
	Repeat     int     `json:"repeat"`
	MedianUS   float64 `json:"median_us"`
	GBps       float64 `json:"gb_per_s"`
	GFLOPs     float64 `json:"gflop_per_s"`
	// Bytes is the layer's codes, scales and biases as stored on disk,
	// DeviceBytes what their device buffers take.
	Bytes       int     `json:"bytes"`
	DeviceBytes int     `json:"device_bytes"`
	RelErr      float64 `json:"rel_err"`
	Precision   string  `json:"precision"`
	Tolerance   float64 `json:"tolerance"`
	Output      string  `json:"output,omitempty"`
}

type forwardFlags struct {
	model     modelFlags
	layer     string
	expert    int
	input     string
	seqLen    int
	seed      uint64
	output    string
	backend   string
	kernel    string
	dtype     string
	maxSeqLen int
	repeat    int
	json      bool
}

func forward(args []string, stdout, stderr io.Writer) error {
	var f forwardFlags
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	f.model.register(fs)
	fs.StringVar(&f.layer, "layer", "", "quantized layer to run (default: the first)")
	fs.IntVar(&f.expert, "expert", 0, "expert of a stacked-experts layer")
	fs.StringVar(&f.input, "input", "", "input x as .npy, [M, K] float32, float64 or float16 (default: random)")
	fs.IntVar(&f.seqLen, "seq-len", 1, "rows M of the random input")
	fs.Uint64Var(&f.seed, "seed", 1, "seed of the random input")
	fs.StringVar(&f.output, "output", "", "write y as .npy [M, N]: float32, or float16 with --dtype f16 (bf16 runs write float32, which holds bfloat16 values exactly)")
	fs.StringVar(&f.backend, "backend", engine.Auto, "backend: "+backendChoices())
	fs.StringVar(&f.kernel, "kernel", "", "kernel to run instead of the planned one ("+kernelChoices()+")")
	fs.StringVar(&f.dtype, "dtype", "f32", "activation dtype of x and y: f32, f16 or bf16 (x is rounded to it)")
	fs.IntVar(&f.maxSeqLen, "max-seq-len", 0, "rows the layer's buffers hold (default: M)")
	fs.IntVar(&f.repeat, "repeat", 20, "timed runs; the report gives the median")
	fs.BoolVar(&f.json, "json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage+"\nFlags of the forward pass:\n")
		fs.PrintDefaults()
	}
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if f.repeat < 1 {
		return fmt.Errorf("--repeat %d, want at least 1", f.repeat)
	}
	dtype, err := engine.ParseActDType(f.dtype)
	if err != nil {
		return fmt.Errorf("--dtype: %w", err)
	}

	model, name, err := f.model.open()
	if err != nil {
		return err
	}
	defer model.Close()
	ll, err := pickLayer(model, f.layer)
	if err != nil {
		return err
	}
	x, m, err := f.inputFor(ll)
	if err != nil {
		return err
	}
	for i, v := range x {
		x[i] = dtype.Round(v)
	}
	maxSeqLen := f.maxSeqLen
	if maxSeqLen == 0 {
		maxSeqLen = m
	}
	if m > maxSeqLen {
		return fmt.Errorf("M = %d rows exceed --max-seq-len %d", m, maxSeqLen)
	}
	dev, err := engine.Open(f.backend)
	if err != nil {
		return err
	}
	defer dev.Close()
	opts := []layers.Option{layers.WithDType(dtype)}
	if f.kernel != "" {
		k, err := engine.ParseKernel(f.kernel)
		if err != nil {
			return fmt.Errorf("--kernel: %w", err)
		}
		opts = append(opts, layers.WithKernel(k))
	}
	l, err := layers.LoadExpert(dev, ll, f.expert, maxSeqLen, opts...)
	if err != nil {
		return err
	}
	defer l.Close()

	y, timing, err := eval.Measure(l, x, m, 1, f.repeat)
	if err != nil {
		return err
	}
	median := timing.Median
	plan, err := l.Plan(m)
	if err != nil {
		return err
	}
	prec, err := l.Precision(m)
	if err != nil {
		return err
	}
	mat := ll.Matrix(f.expert)
	r := report{
		Model: name, Layer: l.Name, Mode: l.Mode.String(), Bits: l.Bits, GroupSize: l.GroupSize,
		ScaleDType: mat.ScaleType.String(), DType: strings.ToLower(dtype.String()), Kernel: plan.Kernel.String(),
		Backend: dev.Backend(), Device: dev.Name(),
		M: m, N: l.Out, K: l.In, Repeat: f.repeat, MedianUS: median.Seconds() * 1e6,
		GBps:   float64(l.Bytes()) / median.Seconds() / 1e9,
		GFLOPs: 2 * float64(m) * float64(l.Out) * float64(l.In) / median.Seconds() / 1e9,
		Bytes:  l.Bytes(), DeviceBytes: l.DeviceBytes(),
		RelErr:    quant.RelErr(y, quant.Reference(x, m, mat, ll.BiasValues(f.expert))),
		Precision: prec.String(), Tolerance: prec.Tolerance(),
	}
	if f.output != "" {
		if err := writeNPY(f.output, dtype, []int{m, l.Out}, y); err != nil {
			return err
		}
		r.Output = f.output
	}
	if f.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	printReport(stdout, r)
	return nil
}

// pickLayer returns the named layer, or the model's first.
func pickLayer(model *loader.Model, name string) (*loader.Layer, error) {
	if name != "" {
		return model.Layer(name)
	}
	all := model.Layers()
	if len(all) == 0 {
		return nil, fmt.Errorf("model %s has no quantized layers", model.Path())
	}
	return all[0], nil
}

// inputFor returns x and its row count M: read from --input, or random.
func (f *forwardFlags) inputFor(l *loader.Layer) ([]float32, int, error) {
	if f.input == "" {
		if f.seqLen < 1 {
			return nil, 0, fmt.Errorf("--seq-len %d, want at least 1", f.seqLen)
		}
		rng := rand.New(rand.NewPCG(f.seed, f.seed^0x9e3779b97f4a7c15))
		x := make([]float32, f.seqLen*l.In)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x, f.seqLen, nil
	}
	a, err := npy.ReadFile(f.input)
	if err != nil {
		return nil, 0, fmt.Errorf("--input: %w", err)
	}
	switch {
	case len(a.Shape) == 1 && a.Shape[0] == l.In:
		return a.Float32(), 1, nil
	case len(a.Shape) == 2 && a.Shape[1] == l.In && a.Shape[0] > 0:
		return a.Float32(), a.Shape[0], nil
	}
	return nil, 0, fmt.Errorf("--input %s: shape %v, want [M %d] for layer %s", f.input, a.Shape, l.In, l.Name)
}

// writeNPY writes y as float16 for an f16 run and as float32 otherwise:
// numpy has no bfloat16, and float32 holds bfloat16 values exactly.
func writeNPY(path string, dtype quant.DType, shape []int, y []float32) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	write := npy.WriteFloat32
	if dtype == quant.F16 {
		write = npy.WriteFloat16
	}
	if err := write(f, shape, y); err != nil {
		f.Close()
		return fmt.Errorf("--output %s: %w", path, err)
	}
	return f.Close()
}

func printReport(w io.Writer, r report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "model\t%s\n", r.Model)
	fmt.Fprintf(tw, "layer\t%s\n", r.Layer)
	fmt.Fprintf(tw, "format\t%s %d-bit group %d, %s scales\n", r.Mode, r.Bits, r.GroupSize, r.ScaleDType)
	fmt.Fprintf(tw, "activations\t%s\n", r.DType)
	fmt.Fprintf(tw, "kernel\t%s\n", r.Kernel)
	fmt.Fprintf(tw, "backend\t%s (%s)\n", r.Backend, r.Device)
	fmt.Fprintf(tw, "M, N, K\t%d, %d, %d\n", r.M, r.N, r.K)
	fmt.Fprintf(tw, "time\t%.1f µs (median of %d)\n", r.MedianUS, r.Repeat)
	fmt.Fprintf(tw, "speed\t%.2f GB/s of weights, %.2f GFLOP/s\n", r.GBps, r.GFLOPs)
	fmt.Fprintf(tw, "weights\t%d bytes on disk, %d on the device\n", r.Bytes, r.DeviceBytes)
	fmt.Fprintf(tw, "error\t%.2e (‖y − ref‖ / ‖ref‖, float64 reference; %s tolerance %.0e)\n", r.RelErr, r.Precision, r.Tolerance)
	if r.Output != "" {
		fmt.Fprintf(tw, "output\t%s\n", r.Output)
	}
	tw.Flush()
}
