package loader

import (
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/mlxq/mlxq/quant"
)

// findLayers finds the quantized layers, as MLX does: the module paths that
// the config names with a format, and those that have a scales tensor and
// that the config does not mark false. Each is validated. hint says why
// there is no global format, for models that lack one.
func (m *Model) findLayers(hint string) error {
	cfg := m.config
	found := map[string]bool{}
	for name := range cfg.Overrides {
		found[name] = true
	}
	for _, t := range m.names {
		if name, ok := strings.CutSuffix(t, ".scales"); ok && name != "" && !cfg.Unquantized[name] {
			found[name] = true
		}
	}
	for _, name := range slices.SortedFunc(maps.Keys(found), compareNames) {
		f, named := cfg.Overrides[name]
		if !named {
			if !cfg.Quantized {
				s := m.tensors[name+".scales"]
				return &TensorError{File: s.File, Layer: name, Tensor: s.Name, Err: errorf(ErrConfig, "found, but %s", hint)}
			}
			f = cfg.Format
		}
		l, err := m.newLayer(name, f, named)
		if err != nil {
			return err
		}
		m.layers[name] = l
		m.order = append(m.order, l)
	}
	return nil
}

// newLayer validates the tensors of the quantized layer name, of format f.
// named reports whether the config names the layer.
func (m *Model) newLayer(name string, f quant.Format, named bool) (*Layer, error) {
	fail := func(t *Tensor, tensor string, kind error, format string, args ...any) error {
		e := &TensorError{Layer: name, Tensor: tensor, Err: errorf(kind, format, args...)}
		if t != nil {
			e.File = t.File
		}
		return e
	}
	if err := f.Validate(); err != nil {
		return nil, &TensorError{Layer: name, Err: err}
	}

	w := m.tensors[name+".weight"]
	switch {
	case w == nil && named:
		return nil, fail(nil, name+".weight", ErrNotFound, "not found, but %s quantizes the layer as %v", configFile, f)
	case w == nil:
		return nil, fail(nil, name+".weight", ErrNotFound, "not found, but the model has %s.scales", name)
	case w.DType != quant.U32:
		return nil, fail(w, w.Name, ErrDType, "dtype %v, want U32 (packed %d-bit codes)", w.DType, f.Bits)
	case len(w.Shape) != 2 && len(w.Shape) != 3:
		return nil, fail(w, w.Name, ErrShape, "shape %v, want [out in*bits/32] or [experts out in*bits/32]", w.Shape)
	case slices.Contains(w.Shape, 0):
		return nil, fail(w, w.Name, ErrShape, "shape %v has a zero dimension", w.Shape)
	}
	lead := w.Shape[:len(w.Shape)-2]
	out, words := w.Shape[len(w.Shape)-2], w.Shape[len(w.Shape)-1]
	if words > math.MaxInt/32 {
		return nil, fail(w, w.Name, ErrShape, "shape %v: rows too long", w.Shape)
	}
	if words*32%f.Bits != 0 {
		return nil, fail(w, w.Name, ErrShape, "shape %v: %d words per row do not hold a whole number of %d-bit codes",
			w.Shape, words, f.Bits)
	}
	in := words * 32 / f.Bits
	if in%f.GroupSize != 0 {
		return nil, fail(w, w.Name, ErrShape, "shape %v holds %d %d-bit codes per row, not a multiple of group size %d",
			w.Shape, in, f.Bits, f.GroupSize)
	}
	l := &Layer{Name: name, Format: f, Out: out, In: in, Weight: w}
	if len(lead) == 1 {
		l.Experts = lead[0]
	}

	scaleTypes := "F32, F16 or BF16"
	if !f.HasBiases() {
		scaleTypes = "U8"
	}
	want := append(slices.Clone(lead), out, in/f.GroupSize)
	s := m.tensors[name+".scales"]
	switch {
	case s == nil:
		return nil, fail(w, name+".scales", ErrNotFound, "not found, want %s %v for %v", scaleTypes, want, f)
	case !f.ScaleDTypeOK(s.DType):
		return nil, fail(s, s.Name, ErrDType, "dtype %v, want %s for %v", s.DType, scaleTypes, f.Mode)
	case !slices.Equal(s.Shape, want):
		return nil, fail(s, s.Name, ErrShape, "shape %v, want %v for group size %d", s.Shape, want, f.GroupSize)
	}
	l.Scales = s

	b := m.tensors[name+".biases"]
	switch {
	case !f.HasBiases() && b != nil:
		return nil, fail(b, b.Name, ErrShape, "present, but %v layers have no biases", f.Mode)
	case !f.HasBiases():
	case b == nil:
		return nil, fail(w, name+".biases", ErrNotFound, "not found, want %v %v for %v", s.DType, want, f)
	case b.DType != s.DType:
		return nil, fail(b, b.Name, ErrDType, "dtype %v, want %v like the scales", b.DType, s.DType)
	case !slices.Equal(b.Shape, want):
		return nil, fail(b, b.Name, ErrShape, "shape %v, want %v like the scales", b.Shape, want)
	default:
		l.Biases = b
	}

	if t := m.tensors[name+".bias"]; t != nil {
		want := append(slices.Clone(lead), out)
		switch {
		case !t.DType.IsFloat():
			return nil, fail(t, t.Name, ErrDType, "dtype %v, want F32, F16 or BF16", t.DType)
		case !slices.Equal(t.Shape, want):
			return nil, fail(t, t.Name, ErrShape, "shape %v, want %v", t.Shape, want)
		}
		l.Bias = t
	}
	return l, nil
}
