package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/eval"
	"github.com/mlxq/mlxq/layers"
	"github.com/mlxq/mlxq/loader"
	"github.com/mlxq/mlxq/quant"
)

// runMode returns how the forward pass runs layer l, given the flags set:
// an embedding's lookup, stacked experts' gathered product, or a Linear
// (every 2-D layer; an embedding as the tied head with --input or a matrix
// product --kernel; one expert of stacked experts with --expert or a
// matrix product --kernel).
func (f *forwardFlags) runMode(l *loader.Layer, set map[string]bool) (loader.Kind, error) {
	matmul := false
	if f.kernel != "" {
		k, err := engine.ParseKernel(f.kernel)
		if err != nil {
			return 0, fmt.Errorf("--kernel: %w", err)
		}
		matmul = k.Spec().Op == engine.OpMatmul
	}
	routing := set["route"] || set["top-k"]
	switch kind := l.Kind(); {
	case kind == loader.Embedding && (set["input"] || matmul):
		if set["ids"] {
			return 0, fmt.Errorf("--ids: with --input or a matrix product --kernel, layer %s runs as the tied head, on x", l.Name)
		}
	case kind == loader.Embedding:
		if routing {
			return 0, fmt.Errorf("--route/--top-k: layer %s is an embedding, not stacked experts", l.Name)
		}
		return kind, nil
	case kind == loader.SwitchLinear && (set["expert"] || matmul):
		if routing {
			return 0, fmt.Errorf("--route/--top-k: with --expert or a matrix product --kernel, one expert of %s runs alone", l.Name)
		}
	case kind == loader.SwitchLinear:
		return kind, nil
	}
	switch {
	case set["ids"]:
		return 0, fmt.Errorf("--ids: layer %s is not an embedding (kind %s)", l.Name, l.Kind())
	case routing:
		return 0, fmt.Errorf("--route/--top-k: layer %s is not stacked experts (kind %s)", l.Name, l.Kind())
	}
	return loader.Linear, nil
}

// routed runs an embedding's lookup or stacked experts' gathered product
// and prints its report.
func (f *forwardFlags) routed(stdout io.Writer, mode loader.Kind, name string, ll *loader.Layer, dtype quant.DType) error {
	dev, err := engine.Open(f.backend)
	if err != nil {
		return err
	}
	defer dev.Close()
	opts := []layers.Option{layers.WithDType(dtype)}
	if f.kernel != "" {
		k, _ := engine.ParseKernel(f.kernel)
		opts = append(opts, layers.WithKernel(k))
	}
	r := report{
		Model: name, Layer: ll.Name, Kind: mode.String(), Mode: ll.Mode.String(), Bits: ll.Bits, GroupSize: ll.GroupSize,
		ScaleDType: ll.Scales.DType.String(), DType: strings.ToLower(dtype.String()), Backend: dev.Backend(), Device: dev.Name(), Repeat: f.repeat,
	}
	if mode == loader.Embedding {
		return f.lookup(stdout, r, dev, ll, dtype, opts)
	}
	return f.gathered(stdout, r, dev, ll, dtype, opts)
}

// rowsFor returns the rows a layer's buffers hold for m rows.
func (f *forwardFlags) rowsFor(m int, what string) (int, error) {
	if f.maxSeqLen == 0 {
		return m, nil
	}
	if m > f.maxSeqLen {
		return 0, fmt.Errorf("%d %s exceed --max-seq-len %d", m, what, f.maxSeqLen)
	}
	return f.maxSeqLen, nil
}

// lookup runs the embedding's lookup of --ids, or of --seq-len random ids.
func (f *forwardFlags) lookup(stdout io.Writer, r report, dev *engine.Device, ll *loader.Layer, dtype quant.DType, opts []layers.Option) error {
	ids, err := f.lookupIDs(ll)
	if err != nil {
		return err
	}
	rows, err := f.rowsFor(len(ids), "ids")
	if err != nil {
		return err
	}
	e, err := layers.LoadEmbedding(dev, ll, rows, opts...)
	if err != nil {
		return err
	}
	defer e.Close()
	y, timing, err := eval.MeasureEmbedding(e, ids, 1, f.repeat)
	if err != nil {
		return err
	}
	ref := make([]float64, len(ids)*e.Dims)
	mat := ll.Matrix(0)
	for i, id := range ids {
		mat.DequantizeRow(ref[i*e.Dims:(i+1)*e.Dims], int(id))
	}
	sec := timing.Median.Seconds()
	prec := e.Precision()
	r.Kernel, r.M, r.N, r.K, r.IDs = engine.Embed.String(), len(ids), e.Vocab, e.Dims, ids
	r.MedianUS, r.Bytes, r.DeviceBytes, r.ReadBytes = sec*1e6, e.Bytes(), e.DeviceBytes(), len(ids)*e.RowBytes()
	r.GBps = float64(r.ReadBytes) / sec / 1e9
	r.RelErr, r.Precision, r.Tolerance = quant.RelErr(y, ref), prec.String(), prec.Tolerance()
	return f.finish(stdout, r, dtype, []int{len(ids), e.Dims}, y)
}

// lookupIDs returns the ids of --ids, or --seq-len random ones.
func (f *forwardFlags) lookupIDs(l *loader.Layer) ([]int32, error) {
	if f.ids == "" {
		if f.seqLen < 1 {
			return nil, fmt.Errorf("--seq-len %d, want at least 1", f.seqLen)
		}
		rng := rand.New(rand.NewPCG(f.seed, f.seed^0x9e3779b97f4a7c15))
		ids := make([]int32, f.seqLen)
		for i := range ids {
			ids[i] = int32(rng.IntN(l.Out))
		}
		return ids, nil
	}
	ids, err := parseInts(f.ids)
	if err != nil {
		return nil, fmt.Errorf("--ids: %w", err)
	}
	return ids, nil
}

// gathered runs the m rows of x through the experts of --route, or of
// --top-k random ones per row.
func (f *forwardFlags) gathered(stdout io.Writer, r report, dev *engine.Device, ll *loader.Layer, dtype quant.DType, opts []layers.Option) error {
	x, m, err := f.inputFor(ll)
	if err != nil {
		return err
	}
	for i, v := range x {
		x[i] = dtype.Round(v)
	}
	route, topK, err := f.routing(ll, m)
	if err != nil {
		return err
	}
	rows, err := f.rowsFor(m, "rows")
	if err != nil {
		return err
	}
	l, err := layers.LoadSwitch(dev, ll, topK, rows, opts...)
	if err != nil {
		return err
	}
	defer l.Close()
	y, timing, err := eval.MeasureSwitch(l, x, route, m, 1, f.repeat)
	if err != nil {
		return err
	}
	k, err := l.Plan(m)
	if err != nil {
		return err
	}
	prec, err := l.Precision(m)
	if err != nil {
		return err
	}
	var ref []float64
	used := map[int32]bool{}
	for p, e := range route {
		row := p / topK
		ref = append(ref, quant.Reference(x[row*l.In:(row+1)*l.In], 1, ll.Matrix(int(e)), ll.BiasValues(int(e)))...)
		used[e] = true
	}
	sec := timing.Median.Seconds()
	r.Kernel, r.M, r.N, r.K, r.TopK, r.Experts, r.Route = k.String(), m, l.Out, l.In, topK, l.Experts, route
	r.MedianUS, r.Bytes, r.DeviceBytes, r.ReadBytes = sec*1e6, l.Bytes(), l.DeviceBytes(), len(used)*l.ExpertBytes()
	r.GBps = float64(r.ReadBytes) / sec / 1e9
	r.GFLOPs = 2 * float64(m*topK) * float64(l.Out) * float64(l.In) / sec / 1e9
	r.RelErr, r.Precision, r.Tolerance = quant.RelErr(y, ref), prec.String(), prec.Tolerance()
	return f.finish(stdout, r, dtype, []int{m, topK, l.Out}, y)
}

// routing returns the experts of each of the m rows of x, row-major, and
// how many each row has: those of --route, or --top-k distinct experts
// per row drawn with --seed.
func (f *forwardFlags) routing(l *loader.Layer, m int) ([]int32, int, error) {
	if f.route == "" {
		if f.topK < 1 || f.topK > l.Experts {
			return nil, 0, fmt.Errorf("--top-k %d, want 1 to %d (the experts of %s)", f.topK, l.Experts, l.Name)
		}
		rng := rand.New(rand.NewPCG(f.seed, f.seed^0x7f4a7c159e3779b9))
		route := make([]int32, 0, m*f.topK)
		for range m {
			for _, e := range rng.Perm(l.Experts)[:f.topK] {
				route = append(route, int32(e))
			}
		}
		return route, f.topK, nil
	}
	rows := strings.Split(f.route, "/")
	if len(rows) != m {
		return nil, 0, fmt.Errorf("--route gives %d rows of experts, x has %d rows", len(rows), m)
	}
	var route []int32
	topK := 0
	for i, row := range rows {
		experts, err := parseInts(row)
		if err != nil {
			return nil, 0, fmt.Errorf("--route row %d: %w", i, err)
		}
		if i == 0 {
			topK = len(experts)
		}
		if len(experts) != topK {
			return nil, 0, fmt.Errorf("--route row %d has %d experts, row 0 has %d", i, len(experts), topK)
		}
		route = append(route, experts...)
	}
	return route, topK, nil
}

// parseInts parses comma-separated int32s.
func parseInts(s string) ([]int32, error) {
	var out []int32
	for item := range strings.SplitSeq(s, ",") {
		v, err := strconv.ParseInt(strings.TrimSpace(item), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", item)
		}
		out = append(out, int32(v))
	}
	return out, nil
}

// joinInts formats v joined by sep.
func joinInts(v []int32, sep string) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.Itoa(int(x))
	}
	return strings.Join(parts, sep)
}

// formatRoute formats a routing as --route takes it, the first rows only
// when it is long.
func formatRoute(route []int32, topK int) string {
	var rows []string
	for i := 0; i < len(route) && i < 8*topK; i += topK {
		rows = append(rows, joinInts(route[i:i+topK], ","))
	}
	s := strings.Join(rows, "/")
	if len(route) > 8*topK {
		s += fmt.Sprintf("/... (%d rows)", len(route)/topK)
	}
	return s
}
