package layers

import (
	"fmt"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/loader"
	"github.com/mlxq/mlxq/quant"
)

// SwitchLinear is a layer of stacked quantized experts, MLX's
// QuantizedSwitchLinear (the switch_mlp projections of Mixtral, Qwen3-MoE
// and DeepSeek-style models): Experts matrices [Out, In] uploaded once,
// packed as stored, and a forward pass that sends each row of x through
// its TopK experts, y[m, j] = x[m]·W[indices[m, j]]ᵀ (+ that expert's
// bias), MLX's gather_qmm. The x, y and routing buffers are allocated once
// for MaxSeqLen rows.
type SwitchLinear struct {
	Name string
	quant.Format
	// Experts is the number of stacked matrices; In and Out are the input
	// (K) and output (N) features of each.
	Experts, In, Out int
	// TopK is the number of experts each row of x goes through.
	TopK int
	// MaxSeqLen is the most rows of x one forward pass takes.
	MaxSeqLen int
	// DType is the activation dtype, of x and y.
	DType quant.DType

	dev    *engine.Device
	kernel *engine.Kernel // fixed by WithKernel, else planned per call
	bytes  int

	w, scales, biases, bias *engine.Buffer
	x, y, routing           *engine.Buffer
}

// LoadSwitch builds the layer from a loaded layer of stacked experts.
func LoadSwitch(dev *engine.Device, l *loader.Layer, topK, maxSeqLen int, opts ...Option) (*SwitchLinear, error) {
	if l.Experts == 0 {
		return nil, fmt.Errorf("layer %s: a 2-D weight, not stacked experts: use Load", l.Name)
	}
	var bias []float32
	if l.Bias != nil {
		for e := range l.Experts {
			bias = append(bias, l.BiasValues(e)...)
		}
	}
	var biases []byte
	if l.Biases != nil {
		biases = l.Biases.Data
	}
	return newSwitch(dev, l.Name, l.Matrix(0), l.Experts, l.Weight.Data, l.Scales.Data, biases, bias, topK, maxSeqLen, opts)
}

// NewSwitch builds a layer named name from its experts' quantized
// matrices (all of one format, scale dtype and shape: Rows = Out,
// Cols = In) and optional Linear biases (one slice of Out values per
// expert, or nil).
func NewSwitch(dev *engine.Device, name string, experts []*quant.Matrix, bias [][]float32, topK, maxSeqLen int, opts ...Option) (*SwitchLinear, error) {
	if len(experts) == 0 {
		return nil, fmt.Errorf("layer %s: no experts", name)
	}
	if bias != nil && len(bias) != len(experts) {
		return nil, fmt.Errorf("layer %s: biases of %d experts, want %d", name, len(bias), len(experts))
	}
	first := experts[0]
	var w, s, b []byte
	var flat []float32
	for e, m := range experts {
		if m.Format != first.Format || m.Rows != first.Rows || m.Cols != first.Cols || m.ScaleType != first.ScaleType {
			return nil, fmt.Errorf("layer %s: expert %d is %v %dx%d with %v scales, expert 0 %v %dx%d with %v scales",
				name, e, m.Format, m.Rows, m.Cols, m.ScaleType, first.Format, first.Rows, first.Cols, first.ScaleType)
		}
		if err := m.Check(); err != nil {
			return nil, fmt.Errorf("layer %s: expert %d: %w", name, e, err)
		}
		w, s, b = append(w, m.Weight...), append(s, m.Scales...), append(b, m.Biases...)
		if bias != nil {
			if len(bias[e]) != m.Rows {
				return nil, fmt.Errorf("layer %s: bias of expert %d has %d values, want %d", name, e, len(bias[e]), m.Rows)
			}
			flat = append(flat, bias[e]...)
		}
	}
	if first.Biases == nil {
		b = nil
	}
	return newSwitch(dev, name, first, len(experts), w, s, b, flat, topK, maxSeqLen, opts)
}

// newSwitch builds the layer from the stacked tensors of experts
// matrices shaped like m.
func newSwitch(dev *engine.Device, name string, m *quant.Matrix, experts int, w, scales, biases []byte, bias []float32,
	topK, maxSeqLen int, opts []Option) (*SwitchLinear, error) {
	if err := m.Check(); err != nil {
		return nil, fmt.Errorf("layer %s: %w", name, err)
	}
	if len(w) != experts*len(m.Weight) || len(scales) != experts*len(m.Scales) || len(biases) != experts*len(m.Biases) {
		return nil, fmt.Errorf("layer %s: %w: stacked tensors of %d, %d and %d bytes for %d experts of %d, %d and %d",
			name, quant.ErrShape, len(w), len(scales), len(biases), experts, len(m.Weight), len(m.Scales), len(m.Biases))
	}
	if topK < 1 || topK > experts {
		return nil, fmt.Errorf("layer %s: top %d of %d experts, want 1 to %d", name, topK, experts, experts)
	}
	if maxSeqLen <= 0 {
		return nil, fmt.Errorf("layer %s: max_seq_len %d, want > 0", name, maxSeqLen)
	}
	o := buildOptions(opts)
	if err := checkDType(name, o.dtype); err != nil {
		return nil, err
	}
	l := &SwitchLinear{Name: name, Format: m.Format, Experts: experts, In: m.Cols, Out: m.Rows, TopK: topK, MaxSeqLen: maxSeqLen,
		DType: o.dtype, dev: dev, kernel: o.kernel, bytes: len(w) + len(scales) + len(biases)}
	if l.kernel != nil {
		if err := checkKernel(dev, name, *l.kernel, engine.OpGather, m.Format); err != nil {
			return nil, err
		}
	} else if _, err := l.Plan(1); err != nil {
		return nil, err
	}
	if err := l.upload(m, w, scales, biases, bias); err != nil {
		l.Close()
		return nil, fmt.Errorf("layer %s: %w", name, err)
	}
	return l, nil
}

func (l *SwitchLinear) upload(m *quant.Matrix, w, scales, biases []byte, bias []float32) error {
	var err error
	e, ng := l.Experts, m.Groups()
	if l.w, err = allocOn(l.dev, quant.U32, w, e, m.Rows, m.RowBytes()/4); err != nil {
		return err
	}
	if l.scales, err = allocOn(l.dev, m.ScaleType, scales, e, m.Rows, ng); err != nil {
		return err
	}
	if biases != nil {
		if l.biases, err = allocOn(l.dev, m.ScaleType, biases, e, m.Rows, ng); err != nil {
			return err
		}
	}
	if bias != nil {
		if l.bias, err = allocOn(l.dev, quant.F32, engine.Float32Bytes(bias), e, m.Rows); err != nil {
			return err
		}
	}
	if l.x, err = allocOn(l.dev, l.DType, nil, l.MaxSeqLen, l.In); err != nil {
		return err
	}
	if l.y, err = allocOn(l.dev, l.DType, nil, l.MaxSeqLen*l.TopK, l.Out); err != nil {
		return err
	}
	l.routing, err = allocOn(l.dev, quant.I32, nil, engine.RoutingWords(l.MaxSeqLen*l.TopK))
	return err
}

// Plan returns the gathered product kernel the layer runs at m rows.
func (l *SwitchLinear) Plan(m int) (engine.Kernel, error) {
	if l.kernel != nil {
		return *l.kernel, nil
	}
	k, err := l.dev.PlanGather(m, l.TopK, l.Experts)
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", l.Name, err)
	}
	if err := k.Accepts(l.Format); err != nil {
		return 0, fmt.Errorf("layer %s: %w", l.Name, err)
	}
	return k, nil
}

// Precision returns the arithmetic the layer's kernel computes in at m
// rows, which sets the accuracy it is held to.
func (l *SwitchLinear) Precision(m int) (engine.Precision, error) {
	k, err := l.Plan(m)
	if err != nil {
		return 0, err
	}
	return l.dev.Precision(engine.Variant{Kernel: k, Format: l.Format, Act: l.DType, Scale: l.scales.DType()}), nil
}

// Device returns the device the layer lives on.
func (l *SwitchLinear) Device() *engine.Device { return l.dev }

// Bytes returns the size of all the experts' quantized weights as stored
// on disk (codes, scales and biases).
func (l *SwitchLinear) Bytes() int { return l.bytes }

// ExpertBytes returns the size of one expert's quantized weights as
// stored: what a product reads per expert some row picks.
func (l *SwitchLinear) ExpertBytes() int { return l.bytes / l.Experts }

// DeviceBytes returns the size of the device buffers holding the experts'
// quantized weights: Bytes, the words being packed as stored.
func (l *SwitchLinear) DeviceBytes() int {
	n := l.w.Bytes() + l.scales.Bytes()
	if l.biases != nil {
		n += l.biases.Bytes()
	}
	return n
}

// Input returns the layer's x buffer, [MaxSeqLen, In] of DType.
func (l *SwitchLinear) Input() *engine.Buffer { return l.x }

// Output returns the layer's y buffer, [MaxSeqLen·TopK, Out] of DType:
// row m·TopK + j is row m of x through its j-th expert.
func (l *SwitchLinear) Output() *engine.Buffer { return l.y }

// Encode records the layer's product for the first m rows of x (of DType,
// at least m·In values, on the layer's device), row i going through
// experts indices[i·TopK : (i+1)·TopK], into the layer's output buffer,
// which it returns. An index outside [0, Experts) is an error naming it
// and the number of experts; nothing is recorded then.
func (l *SwitchLinear) Encode(e *engine.Encoder, x *engine.Buffer, indices []int32, m int) (*engine.Buffer, error) {
	k, err := l.Plan(max(m, 1))
	if err != nil {
		return nil, err
	}
	return l.y, l.EncodeKernel(e, k, x, indices, m)
}

// EncodeKernel is Encode with gathered product kernel k instead of the
// planned one, for benchmarks and comparisons.
func (l *SwitchLinear) EncodeKernel(e *engine.Encoder, k engine.Kernel, x *engine.Buffer, indices []int32, m int) error {
	if m <= 0 || m > l.MaxSeqLen {
		return fmt.Errorf("layer %s: %w: M = %d, max_seq_len %d", l.Name, ErrSeqLen, m, l.MaxSeqLen)
	}
	err := e.GatherMatmul(k, &engine.GatherArgs{
		Params:  engine.Params{M: m, N: l.Out, K: l.In, Format: l.Format, Act: l.DType},
		Experts: l.Experts, TopK: l.TopK, Indices: indices,
		X: x, W: l.w, Scales: l.scales, Biases: l.biases, Bias: l.bias, Y: l.y, Routing: l.routing,
	})
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Name, err)
	}
	return nil
}

// Forward computes the layer for m rows of x (m·In values, row-major),
// row i going through experts indices[i·TopK : (i+1)·TopK], and returns
// y [m, TopK, Out]. x is rounded to DType on the way in, y widened exactly
// on the way out.
func (l *SwitchLinear) Forward(x []float32, indices []int32, m int) ([]float32, error) {
	if m <= 0 || m > l.MaxSeqLen {
		return nil, fmt.Errorf("layer %s: %w: M = %d, max_seq_len %d", l.Name, ErrSeqLen, m, l.MaxSeqLen)
	}
	if len(x) != m*l.In {
		return nil, fmt.Errorf("layer %s: x has %d values, want M·In = %d·%d = %d", l.Name, len(x), m, l.In, m*l.In)
	}
	if err := l.dev.UploadFloat32(l.x, x); err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.Name, err)
	}
	e := l.dev.NewEncoder()
	if _, err := l.Encode(e, l.x, indices, m); err != nil {
		return nil, err
	}
	if err := e.Commit(); err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.Name, err)
	}
	y := make([]float32, m*l.TopK*l.Out)
	if err := l.dev.DownloadFloat32(y, l.y); err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.Name, err)
	}
	return y, nil
}

// Close frees the layer's device buffers.
func (l *SwitchLinear) Close() {
	for _, b := range []*engine.Buffer{l.w, l.scales, l.biases, l.bias, l.x, l.y, l.routing} {
		b.Free()
	}
}
