// Package layers holds model layers resident on a compute device.
package layers

import (
	"errors"
	"fmt"
	"slices"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/loader"
	"github.com/mlxq/mlxq/quant"
)

// ErrSeqLen reports a forward pass longer than the layer's max_seq_len.
var ErrSeqLen = errors.New("sequence longer than max_seq_len")

// QuantLinear is a quantized Linear layer, y = x·dequant(W)^T + bias, with
// its weights on a device in the layout its plan needs, and x and y buffers
// of its activation dtype allocated once for MaxSeqLen rows.
type QuantLinear struct {
	Name string
	quant.Format
	// In and Out are the input (K) and output (N) features.
	In, Out int
	// MaxSeqLen is the most rows of x one forward pass takes.
	MaxSeqLen int
	// DType is the activation dtype, of x and y: F32 (the default), F16
	// or BF16. Kernels accumulate in float32 whatever it is.
	DType quant.DType

	dev    *engine.Device
	kernel *engine.Kernel // fixed by WithKernel, else planned per call
	layout engine.Layout
	bytes  int

	w, scales, biases, bias *engine.Buffer
	x, y                    *engine.Buffer
	// shared says the weight buffers belong to another layer (a tied
	// head of a QuantEmbedding), which frees them.
	shared bool
}

// An Option changes how a layer is built.
type Option func(*options)

// options are what the Options of a layer set.
type options struct {
	kernel *engine.Kernel
	dtype  quant.DType
}

// buildOptions applies opts to the defaults: the plan's kernels, F32
// activations.
func buildOptions(opts []Option) options {
	o := options{dtype: quant.F32}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// checkDType verifies that dt is an activation dtype.
func checkDType(name string, dt quant.DType) error {
	if !slices.Contains(engine.ActDTypes(), dt) {
		return fmt.Errorf("layer %s: %w: activation dtype %v, want F32, F16 or BF16", name, engine.ErrArgs, dt)
	}
	return nil
}

// WithKernel makes the layer run kernel k at every M instead of the one the
// plan picks; building fails if k does not take the layer's format, or
// does not compute the layer's operation (a matrix product kernel for a
// QuantLinear, a gathered product kernel for a SwitchLinear).
func WithKernel(k engine.Kernel) Option {
	return func(o *options) { o.kernel = &k }
}

// WithDType builds the layer for activations of dtype dt (F32, F16 or
// BF16): its x and y buffers hold dt, and Encode takes x of dt.
func WithDType(dt quant.DType) Option {
	return func(o *options) { o.dtype = dt }
}

// Load builds the layer from a loaded 2-D layer of a model.
func Load(dev *engine.Device, l *loader.Layer, maxSeqLen int, opts ...Option) (*QuantLinear, error) {
	if l.Experts > 0 {
		return nil, fmt.Errorf("layer %s stacks %d experts: use LoadExpert for one expert, or LoadSwitch for all", l.Name, l.Experts)
	}
	return LoadExpert(dev, l, 0, maxSeqLen, opts...)
}

// LoadExpert builds the layer from one expert of a loaded layer (expert 0
// of a 2-D layer).
func LoadExpert(dev *engine.Device, l *loader.Layer, expert, maxSeqLen int, opts ...Option) (*QuantLinear, error) {
	if n := max(l.Experts, 1); expert < 0 || expert >= n {
		return nil, fmt.Errorf("layer %s: expert %d, want 0 to %d", l.Name, expert, n-1)
	}
	name := l.Name
	if l.Experts > 0 {
		name = fmt.Sprintf("%s[%d]", l.Name, expert)
	}
	return New(dev, name, l.Matrix(expert), l.BiasValues(expert), maxSeqLen, opts...)
}

// New builds a layer named name from a quantized matrix (Rows = Out,
// Cols = In) and an optional Linear bias of Out values.
func New(dev *engine.Device, name string, m *quant.Matrix, bias []float32, maxSeqLen int, opts ...Option) (*QuantLinear, error) {
	if err := m.Check(); err != nil {
		return nil, fmt.Errorf("layer %s: %w", name, err)
	}
	if maxSeqLen <= 0 {
		return nil, fmt.Errorf("layer %s: max_seq_len %d, want > 0", name, maxSeqLen)
	}
	if bias != nil && len(bias) != m.Rows {
		return nil, fmt.Errorf("layer %s: bias of %d values, want %d", name, len(bias), m.Rows)
	}
	l, err := newLinear(dev, name, m.Format, m.Cols, m.Rows, maxSeqLen, opts)
	if err != nil {
		return nil, err
	}
	l.bytes = len(m.Weight) + len(m.Scales) + len(m.Biases)
	if err := l.upload(m, bias); err != nil {
		l.Close()
		return nil, fmt.Errorf("layer %s: %w", name, err)
	}
	return l, nil
}

// newLinear returns a layer of format f without its buffers, with the
// options applied and the layout of its weights fixed.
func newLinear(dev *engine.Device, name string, f quant.Format, in, out, maxSeqLen int, opts []Option) (*QuantLinear, error) {
	o := buildOptions(opts)
	l := &QuantLinear{Name: name, Format: f, In: in, Out: out, MaxSeqLen: maxSeqLen, DType: o.dtype, dev: dev, kernel: o.kernel}
	if err := checkDType(name, l.DType); err != nil {
		return nil, err
	}
	if l.kernel != nil {
		if err := checkKernel(dev, name, *l.kernel, engine.OpMatmul, f); err != nil {
			return nil, err
		}
		l.layout = l.kernel.Spec().Layout
		return l, nil
	}
	p, err := dev.Plan(l.params(1))
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", name, err)
	}
	l.layout = p.Layout
	return l, nil
}

// checkKernel verifies that kernel k computes op, takes format f and runs
// on dev.
func checkKernel(dev *engine.Device, name string, k engine.Kernel, op engine.Op, f quant.Format) error {
	if k.Spec().Op != op {
		return fmt.Errorf("layer %s: %w: kernel %s does not compute this layer's operation", name, engine.ErrArgs, k)
	}
	if err := k.Accepts(f); err != nil {
		return fmt.Errorf("layer %s: %w", name, err)
	}
	if !dev.Supports(k) {
		return fmt.Errorf("layer %s: %w: kernel %s on %s", name, engine.ErrUnsupported, k, dev.Backend())
	}
	return nil
}

// upload puts the weights on the device in the layer's layout, unpacking
// the codes there when the layout calls for it, and allocates x and y.
func (l *QuantLinear) upload(m *quant.Matrix, bias []float32) error {
	var err error
	ng := m.Groups()
	if l.scales, err = allocOn(l.dev, m.ScaleType, m.Scales, m.Rows, ng); err != nil {
		return err
	}
	if m.Biases != nil {
		if l.biases, err = allocOn(l.dev, m.ScaleType, m.Biases, m.Rows, ng); err != nil {
			return err
		}
	}
	if bias != nil {
		if l.bias, err = allocOn(l.dev, quant.F32, engine.Float32Bytes(bias), m.Rows); err != nil {
			return err
		}
	}
	if l.x, err = allocOn(l.dev, l.DType, nil, l.MaxSeqLen, l.In); err != nil {
		return err
	}
	if l.y, err = allocOn(l.dev, l.DType, nil, l.MaxSeqLen, l.Out); err != nil {
		return err
	}
	packed, err := allocOn(l.dev, quant.U32, m.Weight, m.Rows, m.RowBytes()/4)
	if err != nil {
		return err
	}
	if l.layout == engine.Packed {
		l.w = packed
		return nil
	}
	defer packed.Free()
	if l.w, err = allocOn(l.dev, quant.U8, nil, m.Rows, m.Cols); err != nil {
		return err
	}
	e := l.dev.NewEncoder()
	if err := e.Unpack(&engine.UnpackArgs{Rows: m.Rows, Cols: m.Cols, Bits: m.Bits, W: packed, Codes: l.w}); err != nil {
		return err
	}
	return e.Commit()
}

// params returns the parameters of the layer's product at m rows.
func (l *QuantLinear) params(m int) engine.Params {
	return engine.Params{M: m, N: l.Out, K: l.In, Format: l.Format, Act: l.DType}
}

// Plan returns the kernel the layer runs at m rows, with its layout.
func (l *QuantLinear) Plan(m int) (engine.Plan, error) {
	if l.kernel != nil {
		return engine.Plan{Kernel: *l.kernel, Layout: l.layout}, nil
	}
	p, err := l.dev.Plan(l.params(m))
	if err != nil {
		return p, err
	}
	if p.Layout != l.layout {
		return p, fmt.Errorf("layer %s: plan %v at M=%d needs the %v layout, weights are %v", l.Name, p, m, p.Layout, l.layout)
	}
	return p, nil
}

// Bytes returns the size of the layer's quantized weights as stored on disk
// (codes, scales and biases), the bytes a forward pass must read at least.
func (l *QuantLinear) Bytes() int { return l.bytes }

// DeviceBytes returns the size of the device buffers holding the layer's
// quantized weights (codes in the plan's layout, scales and biases): Bytes
// with the packed kernels, more where codes are unpacked at load.
func (l *QuantLinear) DeviceBytes() int {
	n := l.w.Bytes() + l.scales.Bytes()
	if l.biases != nil {
		n += l.biases.Bytes()
	}
	return n
}

// Precision returns the arithmetic the layer's kernel computes in at m
// rows, which sets the accuracy it is held to.
func (l *QuantLinear) Precision(m int) (engine.Precision, error) {
	p, err := l.Plan(m)
	if err != nil {
		return 0, err
	}
	st := l.scales.DType()
	return l.dev.Precision(engine.Variant{Kernel: p.Kernel, Format: l.Format, Act: l.DType, Scale: st}), nil
}

// Device returns the device the layer lives on.
func (l *QuantLinear) Device() *engine.Device { return l.dev }

// Input returns the layer's x buffer, [MaxSeqLen, In] of DType.
func (l *QuantLinear) Input() *engine.Buffer { return l.x }

// Output returns the layer's y buffer, [MaxSeqLen, Out] of DType; Encode
// writes its first rows.
func (l *QuantLinear) Output() *engine.Buffer { return l.y }

// Encode records the layer's product for the first m rows of x (of DType,
// at least m·In values, on the layer's device) into the layer's output
// buffer, which it returns; the values are there once e is committed.
// Chaining layers this way keeps the data on the device.
func (l *QuantLinear) Encode(e *engine.Encoder, x *engine.Buffer, m int) (*engine.Buffer, error) {
	if m <= 0 || m > l.MaxSeqLen {
		return nil, fmt.Errorf("layer %s: %w: M = %d, max_seq_len %d", l.Name, ErrSeqLen, m, l.MaxSeqLen)
	}
	p, err := l.Plan(m)
	if err != nil {
		return nil, err
	}
	return l.y, l.encode(e, p.Kernel, x, m)
}

// EncodeKernel is Encode with kernel k instead of the planned one, for
// benchmarks and comparisons: k must take the layer's format and read its
// weights' layout (qmv and qmm both read the packed words).
func (l *QuantLinear) EncodeKernel(e *engine.Encoder, k engine.Kernel, x *engine.Buffer, m int) error {
	if m <= 0 || m > l.MaxSeqLen {
		return fmt.Errorf("layer %s: %w: M = %d, max_seq_len %d", l.Name, ErrSeqLen, m, l.MaxSeqLen)
	}
	if k.Spec().Layout != l.layout {
		return fmt.Errorf("layer %s: %w: kernel %s reads the %v layout, weights are %v", l.Name, engine.ErrArgs, k, k.Spec().Layout, l.layout)
	}
	return l.encode(e, k, x, m)
}

func (l *QuantLinear) encode(e *engine.Encoder, k engine.Kernel, x *engine.Buffer, m int) error {
	err := e.Matmul(k, &engine.MatmulArgs{
		Params: l.params(m),
		X:      x, W: l.w, Scales: l.scales, Biases: l.biases, Bias: l.bias, Y: l.y,
	})
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Name, err)
	}
	return nil
}

// Forward computes y = x·dequant(W)^T + bias for m rows of x (m·In values,
// row-major) and returns the m·Out values of y. x is rounded to the
// layer's DType on the way in (to nearest even), y widened exactly on the
// way out.
func (l *QuantLinear) Forward(x []float32, m int) ([]float32, error) {
	if err := l.checkRows(len(x), m); err != nil {
		return nil, err
	}
	raw, err := l.forward(l.DType.Bytes(x), m)
	if err != nil {
		return nil, err
	}
	y := make([]float32, m*l.Out)
	l.DType.Decode(y, raw)
	return y, nil
}

// ForwardRaw is Forward on raw data: x holds m·In little-endian elements
// of the layer's DType (float32, or the bits of float16 or bfloat16
// values) and the result m·Out of them, with no conversion on the host.
func (l *QuantLinear) ForwardRaw(x []byte, m int) ([]byte, error) {
	size := l.DType.Size()
	if len(x)%size != 0 {
		return nil, fmt.Errorf("layer %s: x has %d bytes, not whole %v elements", l.Name, len(x), l.DType)
	}
	if err := l.checkRows(len(x)/size, m); err != nil {
		return nil, err
	}
	return l.forward(x, m)
}

func (l *QuantLinear) checkRows(n, m int) error {
	if m <= 0 || m > l.MaxSeqLen {
		return fmt.Errorf("layer %s: %w: M = %d, max_seq_len %d", l.Name, ErrSeqLen, m, l.MaxSeqLen)
	}
	if n != m*l.In {
		return fmt.Errorf("layer %s: x has %d values, want M·In = %d·%d = %d", l.Name, n, m, l.In, m*l.In)
	}
	return nil
}

// forward runs the layer on m rows of raw x and returns raw y.
func (l *QuantLinear) forward(x []byte, m int) ([]byte, error) {
	if err := l.dev.Upload(l.x, x); err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.Name, err)
	}
	e := l.dev.NewEncoder()
	if _, err := l.Encode(e, l.x, m); err != nil {
		return nil, err
	}
	if err := e.Commit(); err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.Name, err)
	}
	y := make([]byte, m*l.Out*l.DType.Size())
	if err := l.dev.Download(y, l.y); err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.Name, err)
	}
	return y, nil
}

// Close frees the layer's device buffers; a tied head (QuantEmbedding's
// AsLinear) frees its x and y only, the weights being the embedding's.
func (l *QuantLinear) Close() {
	l.x.Free()
	l.y.Free()
	if l.shared {
		return
	}
	for _, b := range []*engine.Buffer{l.w, l.scales, l.biases, l.bias} {
		b.Free()
	}
}
