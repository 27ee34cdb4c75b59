package eval

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/layers"
	"github.com/mlxq/mlxq/loader"
	"github.com/mlxq/mlxq/quant"
)

// Progress is told, before each case, how many cases are done out of how
// many, and which case runs next; after the last, it is called with done
// equal to the number of cases run and an empty name.
type Progress func(done, total int, name string)

// Run runs the batch's cases in order and returns the report. It checks
// ctx before each case: once ctx is done, it stops and returns the cases
// run so far, with Interrupted set. A case that cannot run is a failed
// case whose Error says why; Run itself does not fail. progress may be
// nil.
func (b *Batch) Run(ctx context.Context, progress Progress) *Report {
	if progress == nil {
		progress = func(int, int, string) {}
	}
	start := time.Now()
	r := &Report{
		Name: b.cfg.Name, Config: b.cfg, Started: start, GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		Total: b.cases, Skipped: b.skipped, Notes: b.Notes(),
	}
	for _, dev := range b.devices {
		d := Device{Backend: dev.Backend(), Name: dev.Name()}
		if b.cfg.CopyBandwidth {
			d.CopyGBps, _ = CopyBandwidth(dev)
		}
		r.Devices = append(r.Devices, d)
	}
	run := &runner{b: b, ctx: ctx, report: r, progress: progress}
	for _, t := range b.targets {
		if !run.target(t) {
			r.Interrupted = true
			break
		}
	}
	progress(len(r.Cases), b.cases, "")
	for _, c := range r.Cases {
		if c.Pass {
			r.Passed++
		} else {
			r.Failed++
		}
	}
	r.Seconds = time.Since(start).Seconds()
	return r
}

// runner holds the state of one run.
type runner struct {
	b        *Batch
	ctx      context.Context
	report   *Report
	progress Progress
}

// refKey identifies the x of a reference: its rows and dtype.
type refKey struct {
	m  int
	dt string
}

// refRows is the float64 reference for some rows of y.
type refRows struct {
	rows []int
	y    []float64
}

// target runs the cases of one layer and reports false if interrupted.
func (r *runner) target(t *target) bool {
	if r.ctx.Err() != nil {
		return false
	}
	cfg := r.b.cfg
	mat, bias, matErr := t.matrix(cfg.Input.Seed)
	refs := map[refKey]refRows{}
	maxSeqLen := slices.Max(cfg.SeqLens)
	for di, dev := range r.b.devices {
		for _, ch := range t.choices[di] {
			for _, name := range cfg.DTypes {
				dt, _ := engine.ParseActDType(name)
				var ok bool
				switch ch.kernel.Spec().Op {
				case engine.OpEmbed:
					ok = r.embedCases(t, di, dev, ch, dt, maxSeqLen)
				case engine.OpGather:
					ok = r.gatherCases(t, di, dev, ch, dt, maxSeqLen)
				default:
					for _, s := range r.b.shardings(di) {
						if ok = r.layerCases(t, di, dev, ch, dt, s, mat, bias, matErr, refs, maxSeqLen); !ok {
							break
						}
					}
				}
				if !ok {
					return false
				}
			}
		}
	}
	return true
}

// layerCases runs the cases of one layer built with one kernel choice,
// activation dtype and sharding (on device di, or split over the devices
// of its backend), one per M, and reports false if interrupted.
func (r *runner) layerCases(t *target, di int, dev *engine.Device, ch choice, dt quant.DType, s sharding, mat *quant.Matrix, bias []float32,
	err error, refs map[refKey]refRows, maxSeqLen int) bool {
	cfg := r.b.cfg
	var l linear
	if err == nil {
		opts := []layers.Option{layers.WithDType(dt)}
		if !ch.plan {
			opts = append(opts, layers.WithKernel(ch.kernel))
		}
		l, err = r.b.newLinear(di, dev, s, t.name, mat, bias, maxSeqLen, opts)
	}
	if l != nil {
		defer l.Close()
	}
	for _, m := range cfg.SeqLens {
		if r.ctx.Err() != nil {
			return false
		}
		c := r.startCase(t, di, dev, ch, m, dt, s)
		if err == nil && s.n > 1 {
			err = c.sharded(l.(sharded).ParallelLinear, ch, cfg)
		}
		if err != nil {
			c.Error = err.Error()
		} else {
			r.run(&c, t, l, dt, mat, bias, refs)
		}
		r.report.Cases = append(r.report.Cases, c)
	}
	return true
}

// linear is the layer of a matrix product case: on one device or split
// over several.
type linear interface {
	// measure times the layer as Measure does and returns y of m rows.
	measure(x []float32, m, warmup, repeat int) ([]float32, Timing, error)
	Bytes() int
	Close()
}

// single is a layer on one device.
type single struct{ *layers.QuantLinear }

func (l single) measure(x []float32, m, warmup, repeat int) ([]float32, Timing, error) {
	return Measure(l.QuantLinear, x, m, warmup, repeat)
}

// sharded is a layer split over several devices.
type sharded struct{ *layers.ParallelLinear }

func (p sharded) measure(x []float32, m, warmup, repeat int) ([]float32, Timing, error) {
	return MeasureParallel(p.ParallelLinear, x, m, warmup, repeat)
}

// newLinear builds the layer of a matrix product case: on dev, the
// batch's device di, or split over the devices of its collective of s.n
// shards.
func (b *Batch) newLinear(di int, dev *engine.Device, s sharding, name string, mat *quant.Matrix, bias []float32,
	maxSeqLen int, opts []layers.Option) (linear, error) {
	if s.n == 1 {
		l, err := layers.New(dev, name, mat, bias, maxSeqLen, opts...)
		if err != nil {
			return nil, err
		}
		return single{l}, nil
	}
	p, err := layers.NewParallel(b.groups[di][s.n], name, mat, bias, s.split, maxSeqLen, opts...)
	if err != nil {
		return nil, err
	}
	return sharded{p}, nil
}

// sharded describes a case of layer p split over several devices: the
// kernel its shards run (the plan's for a shard's shape, when the case
// runs the plan) and the precision that sets its tolerance.
func (c *Case) sharded(p *layers.ParallelLinear, ch choice, cfg *Config) error {
	plan, err := p.Plan(c.M)
	if err != nil {
		return err
	}
	prec, err := p.Precision(c.M)
	if err != nil {
		return err
	}
	if ch.plan {
		c.Kernel = plan.Kernel.String()
	}
	c.Planned = plan.Kernel.String() == c.Kernel
	c.Precision = prec.String()
	c.Tolerance = cfg.Tolerance.For(prec)
	return nil
}

// matrix returns the layer's quantized matrix and Linear bias: a view of
// the model's expert 0, or a synthetic layer's generated weights.
func (t *target) matrix(seed uint64) (*quant.Matrix, []float32, error) {
	if t.layer == nil {
		return generate(t.out, t.in, t.Format, t.scaleType, t.syn.Bias, seed^hash(t.name))
	}
	return t.layer.Matrix(0), t.layer.BiasValues(0), nil
}

// startCase describes a case before it runs and reports its start. s is
// the case's sharding: of one shard for lookups and gathered products.
func (r *runner) startCase(t *target, di int, dev *engine.Device, ch choice, m int, dt quant.DType, s sharding) Case {
	c := t.newCase(r.report.Devices[di], dev, ch, m, dt, r.b.cfg)
	c.Shards = s.n
	name := fmt.Sprintf("%s M=%d %s %s %s", t.name, m, c.DType, dev.Backend(), c.Kernel)
	if s.n > 1 {
		c.Split = s.split.String()
		name += fmt.Sprintf(" %d shards %s", s.n, c.Split)
	}
	r.progress(len(r.report.Cases), r.b.cases, name)
	return c
}

// newCase describes a case before it runs.
func (t *target) newCase(d Device, dev *engine.Device, ch choice, m int, dt quant.DType, cfg *Config) Case {
	c := Case{
		Model: t.model, Layer: t.caseName(ch.kernel), Kind: t.kind.String(), Mode: t.Mode.String(), Bits: t.Bits, GroupSize: t.GroupSize, ScaleDType: t.scaleType.String(),
		M: m, N: t.out, K: t.in, DType: strings.ToLower(dt.String()), Backend: d.Backend, Device: d.Name, Kernel: ch.kernel.String(), Planned: ch.plan,
		Warmup: cfg.Warmup, Repeat: cfg.Repeat,
	}
	op := ch.kernel.Spec().Op
	if op == engine.OpGather {
		c.TopK, c.Experts = cfg.TopK, t.experts
	}
	// A matrix product on stacked experts (expert 0) is never their plan.
	if t.kind != loader.SwitchLinear || op != engine.OpMatmul {
		if k, err := t.plan(dev, op, m, cfg.TopK, dt); err == nil {
			if ch.plan {
				c.Kernel = k.String()
			}
			c.Planned = k == ch.kernel || ch.plan
		}
	}
	k, _ := engine.ParseKernel(c.Kernel)
	prec := dev.Precision(engine.Variant{Kernel: k, Format: t.Format, Act: dt, Scale: t.scaleType})
	c.Precision = prec.String()
	c.Tolerance = cfg.Tolerance.For(prec)
	return c
}

// run times case c on layer l and checks it against the reference,
// computed once per M for all the layer's cases.
func (r *runner) run(c *Case, t *target, l linear, dt quant.DType, mat *quant.Matrix, bias []float32, refs map[refKey]refRows) {
	cfg := r.b.cfg
	x := inputRows(cfg.Input.Distribution, cfg.Input.Seed, t.model+"\x00"+t.name, c.M, t.in, allRows(c.M))
	for i, v := range x {
		x[i] = dt.Round(v)
	}
	y, tm, err := l.measure(x, c.M, cfg.Warmup, cfg.Repeat)
	if err != nil {
		c.Error = err.Error()
		return
	}
	key := refKey{c.M, c.DType}
	ref, ok := refs[key]
	if !ok {
		ref.rows = checkRows(c.M, cfg.CheckRows)
		ref.y = reference(gatherRows(x, ref.rows, t.in), len(ref.rows), mat, bias)
		refs[key] = ref
	}
	c.finish(tm, l.Bytes(), 2*float64(c.M)*float64(c.N)*float64(c.K), r.report.Devices)
	c.check(len(ref.rows), gatherRows(y, ref.rows, t.out), ref.y)
}

// gatherRows returns the given rows of a row-major matrix of cols columns.
func gatherRows(a []float32, rows []int, cols int) []float32 {
	out := make([]float32, 0, len(rows)*cols)
	for _, i := range rows {
		out = append(out, a[i*cols:(i+1)*cols]...)
	}
	return out
}
