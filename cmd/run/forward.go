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
	Model string `json:"model"`
	Layer string `json:"layer"`
	// Kind is the layer's kind: linear, embedding or switch_linear (the
	// kernel says whether it ran as a Linear).
	Kind       string `json:"kind"`
	Mode       string `json:"mode"`
	Bits       int    `json:"bits"`
	GroupSize  int    `json:"group_size"`
	ScaleDType string `json:"scale_dtype"`
	DType      string `json:"dtype"`
	Kernel     string `json:"kernel"`
	Backend    string `json:"backend"`
	Device     string `json:"device"`
	// Devices, Shards and Split describe a layer split over several
	// devices (--devices): their specs, their number and the split.
	Devices string `json:"devices,omitempty"`
	Shards  int    `json:"shards,omitempty"`
	Split   string `json:"split,omitempty"`
	M       int    `json:"m"`
	N       int    `json:"n"`
	K       int    `json:"k"`
	// IDs are a lookup's token ids; TopK, Experts and Route a gathered
	// product's experts per row of x, its number of experts and the
	// experts of each row (row-major [M, TopK]).
	IDs      []int32 `json:"ids,omitempty"`
	TopK     int     `json:"top_k,omitempty"`
	Experts  int     `json:"experts,omitempty"`
	Route    []int32 `json:"route,omitempty"`
	Repeat   int     `json:"repeat"`
	MedianUS float64 `json:"median_us"`
	GBps     float64 `json:"gb_per_s"`
	GFLOPs   float64 `json:"gflop_per_s"`
	// Bytes is the layer's codes, scales and biases as stored on disk,
	// DeviceBytes what their device buffers take, ReadBytes what one run
	// reads of them (Bytes for a Linear, the rows looked up, the experts
	// some row picks), by which GBps is counted.
	Bytes       int     `json:"bytes"`
	DeviceBytes int     `json:"device_bytes"`
	ReadBytes   int     `json:"read_bytes"`
	RelErr      float64 `json:"rel_err"`
	Precision   string  `json:"precision"`
	Tolerance   float64 `json:"tolerance"`
	Output      string  `json:"output,omitempty"`
}

type forwardFlags struct {
	model     modelFlags
	layer     string
	expert    int
	ids       string
	topK      int
	route     string
	input     string
	seqLen    int
	seed      uint64
	output    string
	backend   string
	devices   string
	split     string
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
	fs.StringVar(&f.layer, "layer", "", "quantized layer to run (default: the first linear one)")
	fs.IntVar(&f.expert, "expert", 0, "run this expert of a stacked-experts layer alone, as a Linear")
	fs.StringVar(&f.ids, "ids", "", "token ids of an embedding's lookup, comma-separated (default: --seq-len random ids)")
	fs.IntVar(&f.topK, "top-k", 2, "experts per row of x of a stacked-experts layer, routed at random without --route")
	fs.StringVar(&f.route, "route", "", "experts of each row of x of a stacked-experts layer: rows separated by /, experts by commas (0,3/1,2)")
	fs.StringVar(&f.input, "input", "", "input x as .npy, [M, K] float32, float64 or float16 (default: random)")
	fs.IntVar(&f.seqLen, "seq-len", 1, "rows M of the random input")
	fs.Uint64Var(&f.seed, "seed", 1, "seed of the random input")
	fs.StringVar(&f.output, "output", "", "write y as .npy [M, N]: float32, or float16 with --dtype f16 (bf16 runs write float32, which holds bfloat16 values exactly)")
	fs.StringVar(&f.backend, "backend", engine.Auto, "backend: "+backendChoices())
	fs.StringVar(&f.devices, "devices", "", "split a Linear over these devices, comma-separated backend:ordinal (cuda:0,cuda:1; cpu:0,cpu:1 in process)")
	fs.StringVar(&f.split, "split", "row", "how --devices splits the layer: row (input features, then an all-reduce) or column (output features, then an all-gather)")
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
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	mode, err := f.runMode(ll, set)
	if err != nil {
		return err
	}
	if mode != loader.Linear && f.devices != "" {
		return fmt.Errorf("--devices splits a Linear; layer %s runs as %v", ll.Name, mode)
	}
	if mode != loader.Linear {
		return f.routed(stdout, mode, name, ll, dtype)
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
	opts := []layers.Option{layers.WithDType(dtype)}
	if f.kernel != "" {
		k, err := engine.ParseKernel(f.kernel)
		if err != nil {
			return fmt.Errorf("--kernel: %w", err)
		}
		opts = append(opts, layers.WithKernel(k))
	}
	if f.devices != "" {
		if set["backend"] {
			return fmt.Errorf("--backend with --devices: the devices name their backend")
		}
		return f.parallel(stdout, name, ll, x, m, maxSeqLen, opts)
	}
	dev, err := engine.Open(f.backend)
	if err != nil {
		return err
	}
	defer dev.Close()
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
		Model: name, Layer: l.Name, Kind: ll.Kind().String(), Mode: l.Mode.String(), Bits: l.Bits, GroupSize: l.GroupSize,
		ScaleDType: mat.ScaleType.String(), DType: strings.ToLower(dtype.String()), Kernel: plan.Kernel.String(),
		Backend: dev.Backend(), Device: dev.Name(),
		M: m, N: l.Out, K: l.In, Repeat: f.repeat, MedianUS: median.Seconds() * 1e6,
		GBps:   float64(l.Bytes()) / median.Seconds() / 1e9,
		GFLOPs: 2 * float64(m) * float64(l.Out) * float64(l.In) / median.Seconds() / 1e9,
		Bytes:  l.Bytes(), DeviceBytes: l.DeviceBytes(), ReadBytes: l.Bytes(),
		RelErr:    quant.RelErr(y, quant.Reference(x, m, mat, ll.BiasValues(f.expert))),
		Precision: prec.String(), Tolerance: prec.Tolerance(),
	}
	return f.finish(stdout, r, dtype, []int{m, l.Out}, y)
}

// finish writes y to --output, if given, and prints the report.
func (f *forwardFlags) finish(stdout io.Writer, r report, dtype quant.DType, shape []int, y []float32) error {
	if f.output != "" {
		if err := writeNPY(f.output, dtype, shape, y); err != nil {
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

// pickLayer returns the named layer, or the model's first Linear (its
// first layer if it has none).
func pickLayer(model *loader.Model, name string) (*loader.Layer, error) {
	if name != "" {
		return model.Layer(name)
	}
	all := model.Layers()
	if len(all) == 0 {
		return nil, fmt.Errorf("model %s has no quantized layers", model.Path())
	}
	for _, l := range all {
		if l.Kind() == loader.Linear {
			return l, nil
		}
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
	fmt.Fprintf(tw, "layer\t%s (%s)\n", r.Layer, r.Kind)
	fmt.Fprintf(tw, "format\t%s %d-bit group %d, %s scales\n", r.Mode, r.Bits, r.GroupSize, r.ScaleDType)
	fmt.Fprintf(tw, "activations\t%s\n", r.DType)
	fmt.Fprintf(tw, "kernel\t%s\n", r.Kernel)
	fmt.Fprintf(tw, "backend\t%s (%s)\n", r.Backend, r.Device)
	if r.Shards > 0 {
		fmt.Fprintf(tw, "shards\t%d, %s-parallel over %s\n", r.Shards, r.Split, r.Devices)
	}
	fmt.Fprintf(tw, "M, N, K\t%d, %d, %d\n", r.M, r.N, r.K)
	if r.IDs != nil {
		fmt.Fprintf(tw, "ids\t%s (vocabulary %d, %d features)\n", joinInts(r.IDs, ","), r.N, r.K)
	}
	if r.Route != nil {
		fmt.Fprintf(tw, "experts\t%d of %d per row: %s\n", r.TopK, r.Experts, formatRoute(r.Route, r.TopK))
	}
	fmt.Fprintf(tw, "time\t%.1f µs (median of %d)\n", r.MedianUS, r.Repeat)
	fmt.Fprintf(tw, "speed\t%.2f GB/s of weights, %.2f GFLOP/s\n", r.GBps, r.GFLOPs)
	fmt.Fprintf(tw, "weights\t%d bytes on disk, %d on the device", r.Bytes, r.DeviceBytes)
	if r.ReadBytes != r.Bytes {
		fmt.Fprintf(tw, ", %d read per run", r.ReadBytes)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "error\t%.2e (‖y − ref‖ / ‖ref‖, float64 reference; %s tolerance %.0e)\n", r.RelErr, r.Precision, r.Tolerance)
	if r.Output != "" {
		fmt.Fprintf(tw, "output\t%s\n", r.Output)
	}
	tw.Flush()
}
