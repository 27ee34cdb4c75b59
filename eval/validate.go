package eval

import (
	"errors"
	"fmt"
	"math"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/layers"
	"github.com/mlxq/mlxq/quant"
)

// The input distributions.
const (
	Normal  = "normal"
	Uniform = "uniform"
)

// The report files of Output.Formats, and the file each writes.
var formatFiles = map[string]string{
	"json":     "report.json",
	"csv":      "report.csv",
	"markdown": "report.md",
	"md":       "report.md",
	"svg":      "chart.svg",
	"png":      "chart.png",
}

// The quantities a chart plots.
const (
	ChartGBps   = "gbps"
	ChartTFLOPs = "tflops"
)

// Validate checks the values of c, all of them, and returns an error
// wrapping ErrConfig for each problem. It does not open models or
// devices; Open does.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &ConfigError{File: c.File, Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if len(c.Models) == 0 && len(c.Synthetic) == 0 {
		bad("", "no models and no synthetic layers: nothing to run")
	}
	for i, m := range c.Models {
		key := fmt.Sprintf("models[%d]", i)
		if _, _, err := m.format(); err != nil {
			bad(key, "%v", err)
		}
		for j, sel := range m.Layers {
			if _, err := parseSelector(sel); err != nil {
				bad(fmt.Sprintf("%s.layers[%d]", key, j), "%v", err)
			}
		}
	}
	names := map[string]bool{}
	for i, s := range c.Synthetic {
		key := fmt.Sprintf("synthetic[%d]", i)
		if s.Rows < 1 || s.Cols < 1 {
			bad(key, "shape %dx%d (rows x cols), want both at least 1", s.Rows, s.Cols)
			continue
		}
		f, st, err := s.format()
		if err != nil {
			bad(key, "%v", err)
			continue
		}
		if s.Cols%f.GroupSize != 0 {
			bad(key+".cols", "%d, want a multiple of the group size %d", s.Cols, f.GroupSize)
		}
		if s.Cols*f.Bits%32 != 0 {
			bad(key+".cols", "%d, want cols·bits a multiple of 32", s.Cols)
		}
		name := s.name(f, st)
		if names[name] {
			bad(key+".name", "%q names two synthetic layers", name)
		}
		names[name] = true
	}
	if len(c.SeqLens) == 0 {
		bad("seq_lens", "empty, want at least one sequence length")
	}
	for i, m := range c.SeqLens {
		if m < 1 {
			bad(fmt.Sprintf("seq_lens[%d]", i), "%d, want at least 1", m)
		}
	}
	if len(c.DTypes) == 0 {
		bad("dtypes", "empty, want at least one of f32, f16 and bf16")
	}
	for i, d := range c.DTypes {
		if _, err := engine.ParseActDType(d); err != nil {
			bad(fmt.Sprintf("dtypes[%d]", i), "unknown activation dtype %q, want f32, f16 or bf16", d)
		}
	}
	if len(c.Shards) == 0 {
		bad("shards", "empty, want at least one number of shards")
	}
	for i, n := range c.Shards {
		switch {
		case n < 1:
			bad(fmt.Sprintf("shards[%d]", i), "%d, want at least 1", n)
		case slices.Contains(c.Shards[:i], n):
			bad(fmt.Sprintf("shards[%d]", i), "%d is listed twice", n)
		}
	}
	if _, err := layers.ParseSplit(c.Split); err != nil && c.Split != SplitBoth {
		bad("split", "unknown split %q, want column, row or %s", c.Split, SplitBoth)
	}
	if len(c.Backends) == 0 {
		bad("backends", "empty, want at least one backend")
	}
	known := append(engine.Backends(), engine.Auto)
	for i, b := range c.Backends {
		if !slices.Contains(known, b) {
			bad(fmt.Sprintf("backends[%d]", i), "unknown backend %q, want one of %s", b, strings.Join(known, ", "))
		}
	}
	if len(c.Kernels) == 0 {
		bad("kernels", "empty, want plan, all or kernel names")
	}
	for i, k := range c.Kernels {
		key := fmt.Sprintf("kernels[%d]", i)
		switch k {
		case KernelsPlan:
		case KernelsAll:
			if len(c.Kernels) > 1 {
				bad(key, "%q runs every kernel: list it alone", KernelsAll)
			}
		default:
			if kk, err := engine.ParseKernel(k); err != nil || kk.Spec().Op == engine.OpUnpack {
				bad(key, "unknown kernel %q, want plan, all or one of %s", k, engine.KernelNames(RunKernels()))
			}
		}
	}
	if c.TopK < 1 {
		bad("top_k", "%d, want at least 1", c.TopK)
	}
	if c.Warmup < 0 {
		bad("warmup", "%d, want at least 0", c.Warmup)
	}
	if c.Repeat < 1 {
		bad("repeat", "%d, want at least 1", c.Repeat)
	}
	if c.CheckRows < 0 {
		bad("check_rows", "%d, want at least 0 (0 checks every row)", c.CheckRows)
	}
	if c.Input.Distribution != Normal && c.Input.Distribution != Uniform {
		bad("input.distribution", "unknown distribution %q, want %s or %s", c.Input.Distribution, Normal, Uniform)
	}
	for _, t := range []struct {
		key string
		v   float64
	}{{"float32", c.Tolerance.Float32}, {"tf32", c.Tolerance.TF32}, {"float16", c.Tolerance.Float16}, {"bfloat16", c.Tolerance.BFloat16}} {
		if !(t.v > 0) || math.IsInf(t.v, 0) {
			bad("tolerance."+t.key, "%v, want a finite number > 0", t.v)
		}
	}
	for i, f := range c.Output.Formats {
		if _, ok := formatFiles[f]; !ok {
			bad(fmt.Sprintf("output.formats[%d]", i), "unknown format %q, want json, csv, markdown (or md), svg or png", f)
		}
	}
	if c.Output.Chart != ChartGBps && c.Output.Chart != ChartTFLOPs {
		bad("output.chart", "unknown quantity %q, want %s or %s", c.Output.Chart, ChartGBps, ChartTFLOPs)
	}
	return errors.Join(errs...)
}

// RunKernels returns the catalog kernels a case can run: the matrix
// products, the embedding lookup and the gathered products (all but
// unpack).
func RunKernels() []engine.Kernel {
	return slices.DeleteFunc(engine.Kernels(), func(k engine.Kernel) bool { return k.Spec().Op == engine.OpUnpack })
}

// format returns the format a model entry gives its file, and whether it
// gives one at all.
func (m Model) format() (quant.Format, bool, error) {
	if m.Bits == 0 && m.GroupSize == 0 && m.Mode == "" {
		return quant.Format{}, false, nil
	}
	f, err := quant.ParseFormat(m.Mode, m.Bits, m.GroupSize)
	return f, true, err
}

// format returns the format and scale type of a synthetic layer.
func (s Synthetic) format() (quant.Format, quant.DType, error) {
	f, err := quant.ParseFormat(s.Mode, s.Bits, s.GroupSize)
	if err != nil {
		return f, 0, err
	}
	st := quant.BF16
	if f.Mode != quant.Affine {
		st = quant.U8
	}
	if s.ScaleDType != "" {
		d, err := quant.ParseDType(strings.ToUpper(s.ScaleDType))
		if err != nil || !f.ScaleDTypeOK(d) {
			want := "bf16, f16 or f32"
			if f.Mode != quant.Affine {
				want = "u8"
			}
			return f, 0, fmt.Errorf("scale_dtype %q, want %s for %s", s.ScaleDType, want, f.Mode)
		}
		st = d
	}
	return f, st, nil
}

// name returns the layer's name: its own, or one made of its shape and
// format.
func (s Synthetic) name(f quant.Format, st quant.DType) string {
	if s.Name != "" {
		return s.Name
	}
	if f.Mode != quant.Affine {
		return fmt.Sprintf("%dx%d %s", s.Rows, s.Cols, f.Mode)
	}
	return fmt.Sprintf("%dx%d affine%d g%d %s", s.Rows, s.Cols, f.Bits, f.GroupSize, st)
}

// A selector picks layers by name: exactly, by glob, or by a regular
// expression written between slashes.
type selector struct {
	text string
	re   *regexp.Regexp
}

func parseSelector(s string) (selector, error) {
	switch {
	case s == "":
		return selector{}, errors.New("empty layer selector")
	case len(s) > 1 && strings.HasPrefix(s, "/") && strings.HasSuffix(s, "/"):
		re, err := regexp.Compile(s[1 : len(s)-1])
		if err != nil {
			return selector{}, fmt.Errorf("regular expression %s: %w", s, err)
		}
		return selector{text: s, re: re}, nil
	case isGlob(s):
		if _, err := path.Match(s, ""); err != nil {
			return selector{}, fmt.Errorf("glob %q: %w", s, err)
		}
	}
	return selector{text: s}, nil
}

func isGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// match reports whether the layer name matches.
func (s selector) match(name string) bool {
	switch {
	case s.re != nil:
		return s.re.MatchString(name)
	case isGlob(s.text):
		ok, _ := path.Match(s.text, name)
		return ok
	}
	return s.text == name
}
