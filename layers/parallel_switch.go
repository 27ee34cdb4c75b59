package layers

import (
	"errors"
	"fmt"
	"sync"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/loader"
	"github.com/mlxq/mlxq/quant"
)

// ParallelSwitch is a SwitchLinear split by experts over the devices of a
// collective (expert parallelism): shard r holds a contiguous range of
// the experts, their packed words, scales and biases as stored, and a
// forward pass sends each row's TopK slots to the shards holding their
// experts, routed on the host. Every shard writes all of y [M, TopK, N],
// zero in the slots whose experts it does not hold, and an all-reduce sum
// joins them.
//
// A shard sends the slots of other shards' experts to a zero expert of
// its own (all codes, scales and biases zero; two or more when the shard
// holds fewer than TopK - 1 experts), whose output is exactly zero for a
// finite x, so that the sum is exact in every activation dtype. Those
// slots cost the shard their arithmetic but only one expert's weights.
type ParallelSwitch struct {
	Name string
	quant.Format
	// Experts is the number of experts of the whole layer; In and Out are
	// the input (K) and output (N) features of each.
	Experts, In, Out int
	// TopK is the number of experts each row of x goes through.
	TopK int
	// MaxSeqLen is the most rows of x one forward pass takes.
	MaxSeqLen int
	// DType is the activation dtype, of x and y.
	DType quant.DType

	coll   *engine.Collective
	shards []*SwitchLinear
	first  []int // shard r holds experts first[r] to first[r+1]-1
	bytes  int
}

// LoadParallelSwitch builds the layer from a loaded layer of stacked
// experts, one shard on each device of c.
func LoadParallelSwitch(c *engine.Collective, l *loader.Layer, topK, maxSeqLen int, opts ...Option) (*ParallelSwitch, error) {
	if l.Experts == 0 {
		return nil, fmt.Errorf("layer %s: %w: a 2-D weight, not stacked experts", l.Name, ErrSplit)
	}
	experts := make([]*quant.Matrix, l.Experts)
	var bias [][]float32
	for e := range experts {
		experts[e] = l.Matrix(e)
		if l.Bias != nil {
			bias = append(bias, l.BiasValues(e))
		}
	}
	return NewParallelSwitch(c, l.Name, experts, bias, topK, maxSeqLen, opts...)
}

// NewParallelSwitch builds a layer named name from its experts' quantized
// matrices and optional Linear biases, as NewSwitch takes them, split
// over the c.Size() devices of c: shard r holds experts r·E/S to
// (r+1)·E/S - 1, so that the shards' experts differ in number by at most
// one when S does not divide E. Every shard holds at least one expert.
// opts apply to every shard.
func NewParallelSwitch(c *engine.Collective, name string, experts []*quant.Matrix, bias [][]float32, topK, maxSeqLen int, opts ...Option) (*ParallelSwitch, error) {
	n, e := c.Size(), len(experts)
	if e == 0 {
		return nil, fmt.Errorf("layer %s: no experts", name)
	}
	if n > e {
		return nil, fmt.Errorf("layer %s: %w: %d experts do not split into %d shards of at least one", name, ErrSplit, e, n)
	}
	if bias != nil && len(bias) != e {
		return nil, fmt.Errorf("layer %s: biases of %d experts, want %d", name, len(bias), e)
	}
	if topK < 1 || topK > e {
		return nil, fmt.Errorf("layer %s: top %d of %d experts, want 1 to %d", name, topK, e, e)
	}
	m := experts[0]
	p := &ParallelSwitch{Name: name, Format: m.Format, Experts: e, In: m.Cols, Out: m.Rows, TopK: topK, MaxSeqLen: maxSeqLen, coll: c}
	for r := range n + 1 {
		p.first = append(p.first, r*e/n)
	}
	for r, dev := range c.Devices() {
		local := experts[p.first[r]:p.first[r+1]]
		mats := append([]*quant.Matrix(nil), local...)
		var b [][]float32
		if bias != nil {
			b = append(b, bias[p.first[r]:p.first[r+1]]...)
		}
		for range max(1, topK-len(local)) {
			mats = append(mats, zeroExpert(m))
			if bias != nil {
				b = append(b, make([]float32, m.Rows))
			}
		}
		shardName := fmt.Sprintf("%s (experts %d to %d, shard %d of %d)", name, p.first[r], p.first[r+1]-1, r, n)
		l, err := NewSwitch(dev, shardName, mats, b, topK, maxSeqLen, opts...)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.shards = append(p.shards, l)
		p.bytes += len(local) * l.ExpertBytes()
	}
	p.DType = p.shards[0].DType
	return p, nil
}

// zeroExpert returns an expert shaped like m whose codes, scales and
// biases are all zero: its dequantized weights are zero in every format.
func zeroExpert(m *quant.Matrix) *quant.Matrix {
	z := *m
	z.Weight = make([]byte, len(m.Weight))
	z.Scales = make([]byte, len(m.Scales))
	if m.Biases != nil {
		z.Biases = make([]byte, len(m.Biases))
	}
	return &z
}

// Collective returns the collective the layer runs over.
func (p *ParallelSwitch) Collective() *engine.Collective { return p.coll }

// Shards returns the shards, shard r on device r of the collective.
func (p *ParallelSwitch) Shards() []*SwitchLinear { return append([]*SwitchLinear(nil), p.shards...) }

// ShardExperts returns the experts shard r holds: first to first+n-1.
func (p *ParallelSwitch) ShardExperts(r int) (first, n int) {
	return p.first[r], p.first[r+1] - p.first[r]
}

// Bytes returns the size of all the experts' quantized weights as stored
// on disk, the sum over the shards of the experts they hold.
func (p *ParallelSwitch) Bytes() int { return p.bytes }

// ExpertBytes returns the size of one expert's quantized weights as
// stored.
func (p *ParallelSwitch) ExpertBytes() int { return p.bytes / p.Experts }

// DeviceBytes returns the size of the shards' weight buffers on all the
// devices, their zero experts included.
func (p *ParallelSwitch) DeviceBytes() int {
	n := 0
	for _, l := range p.shards {
		n += l.DeviceBytes()
	}
	return n
}

// Plan returns the gathered product kernel shard 0 runs at m rows.
func (p *ParallelSwitch) Plan(m int) (engine.Kernel, error) { return p.shards[0].Plan(m) }

// Precision returns the least exact arithmetic the shards compute in at m
// rows, which sets the accuracy the layer is held to.
func (p *ParallelSwitch) Precision(m int) (engine.Precision, error) {
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

// Inputs returns the shards' x buffers, [MaxSeqLen, In] each, buffer r on
// device r.
func (p *ParallelSwitch) Inputs() []*engine.Buffer {
	xs := make([]*engine.Buffer, len(p.shards))
	for r, l := range p.shards {
		xs[r] = l.Input()
	}
	return xs
}

// route returns the local expert indices of shard r for the layer's
// indices: an expert of the shard by its place among them, any other the
// shard's first zero expert.
func (p *ParallelSwitch) route(r int, indices []int32) []int32 {
	lo, hi := int32(p.first[r]), int32(p.first[r+1])
	local := make([]int32, len(indices))
	for i, e := range indices {
		if e >= lo && e < hi {
			local[i] = e - lo
		} else {
			local[i] = hi - lo
		}
	}
	return local
}

// Run runs the layer on the first m rows of xs, xs[r] on device r holding
// all of x, of DType, row i going through experts indices[i·TopK :
// (i+1)·TopK] (of the whole layer): every shard's gathered product, on
// all the devices at once, then the all-reduce. It returns the shards'
// y buffers, one per device, each holding the whole y [m, TopK, Out]. An
// index outside [0, Experts) is an error naming it; nothing runs then.
func (p *ParallelSwitch) Run(xs []*engine.Buffer, indices []int32, m int) ([]*engine.Buffer, error) {
	n := len(p.shards)
	if len(xs) != n {
		return nil, fmt.Errorf("layer %s: %w: %d inputs for %d shards", p.Name, engine.ErrArgs, len(xs), n)
	}
	if m <= 0 || m > p.MaxSeqLen {
		return nil, fmt.Errorf("layer %s: %w: M = %d, max_seq_len %d", p.Name, ErrSeqLen, m, p.MaxSeqLen)
	}
	if len(indices) != m*p.TopK {
		return nil, fmt.Errorf("layer %s: %w: %d expert indices, want M·TopK = %d·%d = %d", p.Name, engine.ErrArgs, len(indices), m, p.TopK, m*p.TopK)
	}
	for i, e := range indices {
		if e < 0 || int(e) >= p.Experts {
			return nil, fmt.Errorf("layer %s: %w: expert index %d (row %d, slot %d) out of range: the layer has %d experts",
				p.Name, engine.ErrArgs, e, i/p.TopK, i%p.TopK, p.Experts)
		}
	}
	errs := make([]error, n)
	ys := make([]*engine.Buffer, n)
	var wg sync.WaitGroup
	for r, l := range p.shards {
		wg.Go(func() {
			e := l.Device().NewEncoder()
			y, err := l.Encode(e, xs[r], p.route(r, indices), m)
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
	if err := p.coll.AllReduce(ys, m*p.TopK*p.Out); err != nil {
		return nil, fmt.Errorf("layer %s: %w", p.Name, err)
	}
	return ys, nil
}

// Forward computes the layer for m rows of x (m·In values, row-major),
// row i going through experts indices[i·TopK : (i+1)·TopK], over the
// shards and returns y [m, TopK, Out], as SwitchLinear.Forward does on
// one device.
func (p *ParallelSwitch) Forward(x []float32, indices []int32, m int) ([]float32, error) {
	if m <= 0 || m > p.MaxSeqLen {
		return nil, fmt.Errorf("layer %s: %w: M = %d, max_seq_len %d", p.Name, ErrSeqLen, m, p.MaxSeqLen)
	}
	if len(x) != m*p.In {
		return nil, fmt.Errorf("layer %s: x has %d values, want M·In = %d·%d = %d", p.Name, len(x), m, p.In, m*p.In)
	}
	for _, l := range p.shards {
		if err := l.Device().UploadFloat32(l.Input(), x); err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Name, err)
		}
	}
	ys, err := p.Run(p.Inputs(), indices, m)
	if err != nil {
		return nil, err
	}
	y := make([]float32, m*p.TopK*p.Out)
	if err := p.coll.Devices()[0].DownloadFloat32(y, ys[0]); err != nil {
		return nil, fmt.Errorf("layer %s: %w", p.Name, err)
	}
	return y, nil
}

// Close frees the shards; the collective and its devices stay open.
func (p *ParallelSwitch) Close() {
	for _, l := range p.shards {
		l.Close()
	}
}
