package layers

import (
	"errors"
	"fmt"
	"sync"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/loader"
	"github.com/mlxq/mlxq/quant"
)

// ParallelLinear is a QuantLinear split over the devices of a collective
// (tensor parallelism, Megatron-style): one shard per device, each a
// QuantLinear on its slice of the layer's packed words, scales and biases
// as stored, and a collective that joins the shards' outputs, an
// all-gather for ColumnParallel and an all-reduce for RowParallel.
type ParallelLinear struct {
	Name string
	quant.Format
	// In and Out are the input (K) and output (N) features of the whole
	// layer.
	In, Out int
	// MaxSeqLen is the most rows of x one forward pass takes.
	MaxSeqLen int
	// DType is the activation dtype, of x and y.
	DType quant.DType
	// Split says which features are cut.
	Split Split

	coll     *engine.Collective
	shards   []*QuantLinear
	gathered []*engine.Buffer // ColumnParallel: [Size, MaxSeqLen, Out/Size] per device
}

// LoadParallel builds the layer from a loaded 2-D layer, one shard on
// each device of c.
func LoadParallel(c *engine.Collective, l *loader.Layer, split Split, maxSeqLen int, opts ...Option) (*ParallelLinear, error) {
	if l.Experts > 0 {
		return nil, fmt.Errorf("layer %s stacks %d experts: %w: split a 2-D layer", l.Name, l.Experts, ErrSplit)
	}
	return NewParallel(c, l.Name, l.Matrix(0), l.BiasValues(0), split, maxSeqLen, opts...)
}

// NewParallel builds a layer named name from a quantized matrix (Rows =
// Out, Cols = In) and an optional Linear bias of Out values, split into
// c.Size() equal shards: Out must divide by it for ColumnParallel, and
// the groups of a row (In/GroupSize) for RowParallel. opts apply to every
// shard.
func NewParallel(c *engine.Collective, name string, m *quant.Matrix, bias []float32, split Split, maxSeqLen int, opts ...Option) (*ParallelLinear, error) {
	if err := m.Check(); err != nil {
		return nil, fmt.Errorf("layer %s: %w", name, err)
	}
	if bias != nil && len(bias) != m.Rows {
		return nil, fmt.Errorf("layer %s: bias of %d values, want %d", name, len(bias), m.Rows)
	}
	n := c.Size()
	if err := CheckSplit(name, m.Format, m.Rows, m.Cols, split, n); err != nil {
		return nil, err
	}
	parts, err := splitMatrix(name, m, split, n)
	if err != nil {
		return nil, err
	}
	p := &ParallelLinear{Name: name, Format: m.Format, In: m.Cols, Out: m.Rows, MaxSeqLen: maxSeqLen, Split: split, coll: c}
	for r, dev := range c.Devices() {
		shardName := fmt.Sprintf("%s (%s shard %d of %d)", name, split, r, n)
		l, err := New(dev, shardName, parts[r], shardBias(bias, split, r, n), maxSeqLen, opts...)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.shards = append(p.shards, l)
		if split == ColumnParallel {
			g, err := dev.Alloc(l.DType, n*maxSeqLen*l.Out)
			if err != nil {
				p.Close()
				return nil, fmt.Errorf("layer %s: %w", shardName, err)
			}
			p.gathered = append(p.gathered, g)
		}
	}
	p.DType = p.shards[0].DType
	return p, nil
}

// CheckSplit returns the error NewParallel gives a layer named name, of
// format f with out output and in input features, that does not split
// into shards equal shards along split, and nil if it does.
func CheckSplit(name string, f quant.Format, out, in int, split Split, shards int) error {
	switch {
	case shards < 1:
		return fmt.Errorf("layer %s: %w: %d shards", name, ErrSplit, shards)
	case split == ColumnParallel:
		if out%shards != 0 {
			return fmt.Errorf("layer %s: %w: %d output features do not divide into %d equal shards", name, ErrSplit, out, shards)
		}
	case split == RowParallel:
		if groups := in / f.GroupSize; groups%shards != 0 {
			return fmt.Errorf("layer %s: %w: %d input features are %d groups of %d, which do not divide into %d shards of whole groups",
				name, ErrSplit, in, groups, f.GroupSize, shards)
		}
		if cols := in / shards; cols*f.Bits%32 != 0 {
			return fmt.Errorf("layer %s: %w: shards of %d %d-bit codes do not end on a 32-bit word", name, ErrSplit, cols, f.Bits)
		}
	default:
		return fmt.Errorf("layer %s: %w: %v", name, ErrSplit, split)
	}
	return nil
}

// shardBias returns the part of the Linear bias shard r of n adds.
func shardBias(bias []float32, split Split, r, n int) []float32 {
	switch {
	case bias == nil:
		return nil
	case split == ColumnParallel:
		per := len(bias) / n
		return bias[r*per : (r+1)*per]
	case r == 0:
		return bias
	}
	return nil
}

// Collective returns the collective the layer runs over.
func (p *ParallelLinear) Collective() *engine.Collective { return p.coll }

// Shards returns the shards, shard r on device r of the collective.
func (p *ParallelLinear) Shards() []*QuantLinear { return append([]*QuantLinear(nil), p.shards...) }

// Bytes returns the size of the layer's quantized weights as stored on
// disk, the sum over the shards.
func (p *ParallelLinear) Bytes() int {
	n := 0
	for _, l := range p.shards {
		n += l.Bytes()
	}
	return n
}

// DeviceBytes returns the size of the shards' weight buffers on all the
// devices.
func (p *ParallelLinear) DeviceBytes() int {
	n := 0
	for _, l := range p.shards {
		n += l.DeviceBytes()
	}
	return n
}

// Plan returns the kernel shard 0 runs at m rows.
func (p *ParallelLinear) Plan(m int) (engine.Plan, error) { return p.shards[0].Plan(m) }

// Precision returns the least exact arithmetic the shards compute in at m
// rows, which sets the accuracy the layer is held to.
func (p *ParallelLinear) Precision(m int) (engine.Precision, error) {
	var worst engine.Precision
	for _, l := range p.shards {
		pr, err := l.Precision(m)
		if err != nil {
			return 0, err
		}
		worst = max(worst, pr)
	}
	return worst, nil
}

// Inputs returns the shards' x buffers, [MaxSeqLen, In] for ColumnParallel
// and [MaxSeqLen, In/Size] for RowParallel, buffer r on device r.
func (p *ParallelLinear) Inputs() []*engine.Buffer {
	xs := make([]*engine.Buffer, len(p.shards))
	for r, l := range p.shards {
		xs[r] = l.Input()
	}
	return xs
}

// Run runs the layer on the first m rows of xs, xs[r] on device r holding
// shard r's input (all of x for ColumnParallel, its In/Size columns for
// RowParallel), of DType: every shard's product, on all the devices at
// once, then the collective. It returns one buffer per device, each
// holding the whole result: for RowParallel, y [m, Out] (the shards' y
// buffers, summed); for ColumnParallel, the shards' pieces one after the
// other, [Size, m, Out/Size].
func (p *ParallelLinear) Run(xs []*engine.Buffer, m int) ([]*engine.Buffer, error) {
	n := len(p.shards)
	if len(xs) != n {
		return nil, fmt.Errorf("layer %s: %w: %d inputs for %d shards", p.Name, engine.ErrArgs, len(xs), n)
	}
	if m <= 0 || m > p.MaxSeqLen {
		return nil, fmt.Errorf("layer %s: %w: M = %d, max_seq_len %d", p.Name, ErrSeqLen, m, p.MaxSeqLen)
	}
	errs := make([]error, n)
	ys := make([]*engine.Buffer, n)
	var wg sync.WaitGroup
	for r, l := range p.shards {
		wg.Go(func() {
			e := l.Device().NewEncoder()
			y, err := l.Encode(e, xs[r], m)
			if err == nil {
				err = e.Commit()
			}
			ys[r], errs[r] = y, err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if p.Split == RowParallel {
		if err := p.coll.AllReduce(ys, m*p.Out); err != nil {
			return nil, fmt.Errorf("layer %s: %w", p.Name, err)
		}
		return ys, nil
	}
	if err := p.coll.AllGather(p.gathered, ys, m*p.Out/n); err != nil {
		return nil, fmt.Errorf("layer %s: %w", p.Name, err)
	}
	return append([]*engine.Buffer(nil), p.gathered...), nil
}

// Forward computes y = x·dequant(W)^T + bias for m rows of x (m·In values,
// row-major) over the shards and returns the m·Out values of y, as
// QuantLinear.Forward does on one device.
func (p *ParallelLinear) Forward(x []float32, m int) ([]float32, error) {
	if m <= 0 || m > p.MaxSeqLen {
		return nil, fmt.Errorf("layer %s: %w: M = %d, max_seq_len %d", p.Name, ErrSeqLen, m, p.MaxSeqLen)
	}
	if len(x) != m*p.In {
		return nil, fmt.Errorf("layer %s: x has %d values, want M·In = %d·%d = %d", p.Name, len(x), m, p.In, m*p.In)
	}
	if err := p.upload(x, m); err != nil {
		return nil, err
	}
	out, err := p.Run(p.Inputs(), m)
	if err != nil {
		return nil, err
	}
	got := make([]float32, m*p.Out)
	dev := p.coll.Devices()[0]
	if err := dev.DownloadFloat32(got, out[0]); err != nil {
		return nil, fmt.Errorf("layer %s: %w", p.Name, err)
	}
	if p.Split == RowParallel {
		return got, nil
	}
	// [Size, m, Out/Size] to [m, Out].
	per := p.Out / len(p.shards)
	y := make([]float32, m*p.Out)
	for r := range p.shards {
		for i := range m {
			copy(y[i*p.Out+r*per:i*p.Out+(r+1)*per], got[(r*m+i)*per:(r*m+i+1)*per])
		}
	}
	return y, nil
}

// upload puts m rows of x, rounded to DType, into every shard's input:
// all of it for ColumnParallel, the shard's columns for RowParallel.
func (p *ParallelLinear) upload(x []float32, m int) error {
	for r, l := range p.shards {
		part := x
		if p.Split == RowParallel {
			cols := l.In
			part = make([]float32, 0, m*cols)
			for i := range m {
				part = append(part, x[i*p.In+r*cols:i*p.In+(r+1)*cols]...)
			}
		}
		if err := l.Device().UploadFloat32(l.Input(), part); err != nil {
			return fmt.Errorf("layer %s: %w", l.Name, err)
		}
	}
	return nil
}

// Close frees the shards and the gathered buffers; the collective and its
// devices stay open.
func (p *ParallelLinear) Close() {
	for _, l := range p.shards {
		l.Close()
	}
	for _, g := range p.gathered {
		g.Free()
	}
}
