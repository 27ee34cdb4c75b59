package eval

import (
	"math/rand/v2"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/layers"
	"github.com/mlxq/mlxq/quant"
)

// randomIDs returns m token ids in [0, vocab), the same for every case of
// a layer at m rows.
func randomIDs(seed uint64, key string, m, vocab int) []int32 {
	rng := rand.New(rand.NewPCG(seed, hash(key)^uint64(m)<<40^0x1d))
	ids := make([]int32, m)
	for i := range ids {
		ids[i] = int32(rng.IntN(vocab))
	}
	return ids
}

// randomRouting returns m rows of topK distinct expert indices of
// experts, as a router's top-k picks them, the same for every case of a
// layer at m rows.
func randomRouting(seed uint64, key string, m, topK, experts int) []int32 {
	rng := rand.New(rand.NewPCG(seed, hash(key)^uint64(m)<<40^0x7e))
	out := make([]int32, 0, m*topK)
	for range m {
		for _, e := range rng.Perm(experts)[:topK] {
			out = append(out, int32(e))
		}
	}
	return out
}

// embedCases runs the lookup cases of an embedding with one activation
// dtype, one per M (M random ids), checked against the dequantized rows,
// and reports false if interrupted.
func (r *runner) embedCases(t *target, di int, dev *engine.Device, ch choice, dt quant.DType, maxSeqLen int) bool {
	cfg := r.b.cfg
	e, err := layers.LoadEmbedding(dev, t.layer, maxSeqLen, layers.WithDType(dt))
	if err == nil {
		defer e.Close()
	}
	mat := t.layer.Matrix(0)
	for _, m := range cfg.SeqLens {
		if r.ctx.Err() != nil {
			return false
		}
		c := r.startCase(t, di, dev, ch, m, dt, sharding{n: 1})
		if err != nil {
			c.Error = err.Error()
			r.report.Cases = append(r.report.Cases, c)
			continue
		}
		ids := randomIDs(cfg.Input.Seed, t.model+"\x00"+t.name, m, t.out)
		y, tm, err := MeasureEmbedding(e, ids, cfg.Warmup, cfg.Repeat)
		if err != nil {
			c.Error = err.Error()
			r.report.Cases = append(r.report.Cases, c)
			continue
		}
		rows := checkRows(m, cfg.CheckRows)
		ref := make([]float64, len(rows)*t.in)
		for i, row := range rows {
			mat.DequantizeRow(ref[i*t.in:(i+1)*t.in], int(ids[row]))
		}
		c.finish(tm, m*e.RowBytes(), 0, r.report.Devices)
		c.check(len(rows), gatherRows(y, rows, t.in), ref)
		r.report.Cases = append(r.report.Cases, c)
	}
	return true
}

// gatherCases runs the gathered product cases of stacked experts with one
// activation dtype, one per M (each row of a random x routed to TopK
// random experts), checked against the float64 reference of each checked
// row through its experts, and reports false if interrupted.
func (r *runner) gatherCases(t *target, di int, dev *engine.Device, ch choice, dt quant.DType, maxSeqLen int) bool {
	cfg := r.b.cfg
	opts := []layers.Option{layers.WithDType(dt)}
	if !ch.plan {
		opts = append(opts, layers.WithKernel(ch.kernel))
	}
	l, err := layers.LoadSwitch(dev, t.layer, cfg.TopK, maxSeqLen, opts...)
	if err == nil {
		defer l.Close()
	}
	for _, m := range cfg.SeqLens {
		if r.ctx.Err() != nil {
			return false
		}
		c := r.startCase(t, di, dev, ch, m, dt, sharding{n: 1})
		if err != nil {
			c.Error = err.Error()
			r.report.Cases = append(r.report.Cases, c)
			continue
		}
		key := t.model + "\x00" + t.name
		x := inputRows(cfg.Input.Distribution, cfg.Input.Seed, key, m, t.in, allRows(m))
		for i, v := range x {
			x[i] = dt.Round(v)
		}
		indices := randomRouting(cfg.Input.Seed, key, m, cfg.TopK, t.experts)
		y, tm, err := MeasureSwitch(l, x, indices, m, cfg.Warmup, cfg.Repeat)
		if err != nil {
			c.Error = err.Error()
			r.report.Cases = append(r.report.Cases, c)
			continue
		}
		rows := checkRows(m, cfg.CheckRows)
		var ref []float64
		for _, row := range rows {
			for _, e := range indices[row*cfg.TopK : (row+1)*cfg.TopK] {
				ref = append(ref, quant.Reference(x[row*t.in:(row+1)*t.in], 1, t.layer.Matrix(int(e)), t.layer.BiasValues(int(e)))...)
			}
		}
		used := map[int32]bool{}
		for _, e := range indices {
			used[e] = true
		}
		c.finish(tm, len(used)*l.ExpertBytes(), 2*float64(m*cfg.TopK)*float64(t.out)*float64(t.in), r.report.Devices)
		c.check(len(rows), gatherRows(y, rows, cfg.TopK*t.out), ref)
		r.report.Cases = append(r.report.Cases, c)
	}
	return true
}

// finish records a case's timing, with the bytes its weights take and the
// floating-point operations of one run.
func (c *Case) finish(tm Timing, bytes int, flops float64, devices []Device) {
	sec := tm.Median.Seconds()
	c.MedianUS, c.MinUS, c.MaxUS = sec*1e6, tm.Min.Seconds()*1e6, tm.Max.Seconds()*1e6
	c.Bytes = bytes
	c.GBps = float64(bytes) / sec / 1e9
	c.GFLOPs = flops / sec / 1e9
	for _, d := range devices {
		if d.Backend == c.Backend && d.CopyGBps > 0 {
			c.CopyFraction = c.GBps / d.CopyGBps
		}
	}
}

// check records a case's error against the reference of its rows checked.
func (c *Case) check(rows int, y []float32, ref []float64) {
	c.CheckedRows = rows
	c.RelErr = Float(quant.RelErr(y, ref))
	c.Pass = float64(c.RelErr) <= c.Tolerance
}
