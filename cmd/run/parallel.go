package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/eval"
	"github.com/mlxq/mlxq/layers"
	"github.com/mlxq/mlxq/loader"
	"github.com/mlxq/mlxq/quant"
)

// parallel runs the forward pass of a Linear split over --devices, as
// --split says, and reports it like a forward pass on one device, with
// the shards and the time of every shard's product and the collective.
func (f *forwardFlags) parallel(stdout io.Writer, name string, ll *loader.Layer, x []float32, m, maxSeqLen int, opts []layers.Option) error {
	split, err := layers.ParseSplit(f.split)
	if err != nil {
		return fmt.Errorf("--split: %w", err)
	}
	devs, err := engine.OpenDevices(f.devices)
	if err != nil {
		return fmt.Errorf("--devices: %w", err)
	}
	defer func() {
		for _, d := range devs {
			d.Close()
		}
	}()
	c, err := engine.NewCollective(devs...)
	if err != nil {
		return fmt.Errorf("--devices %s: %w", f.devices, err)
	}
	defer c.Close()
	if f.expert != 0 {
		return fmt.Errorf("--expert with --devices: split a 2-D layer")
	}
	p, err := layers.LoadParallel(c, ll, split, maxSeqLen, opts...)
	if err != nil {
		return err
	}
	defer p.Close()
	y, timing, err := eval.MeasureParallel(p, x, m, 1, f.repeat)
	if err != nil {
		return err
	}
	plan, err := p.Plan(m)
	if err != nil {
		return err
	}
	prec, err := p.Precision(m)
	if err != nil {
		return err
	}
	mat := ll.Matrix(0)
	median := timing.Median
	names := make([]string, len(devs))
	for i, d := range devs {
		names[i] = d.Name()
	}
	r := report{
		Model: name, Layer: p.Name, Kind: ll.Kind().String(), Mode: p.Mode.String(), Bits: p.Bits, GroupSize: p.GroupSize,
		ScaleDType: mat.ScaleType.String(), DType: strings.ToLower(p.DType.String()), Kernel: plan.Kernel.String(),
		Backend: c.Backend(), Device: strings.Join(names, "; "), Shards: c.Size(), Split: split.String(), Devices: f.devices,
		M: m, N: p.Out, K: p.In, Repeat: f.repeat, MedianUS: median.Seconds() * 1e6,
		GBps:   float64(p.Bytes()) / median.Seconds() / 1e9,
		GFLOPs: 2 * float64(m) * float64(p.Out) * float64(p.In) / median.Seconds() / 1e9,
		Bytes:  p.Bytes(), DeviceBytes: p.DeviceBytes(), ReadBytes: p.Bytes(),
		RelErr:    quant.RelErr(y, quant.Reference(x, m, mat, ll.BiasValues(0))),
		Precision: prec.String(), Tolerance: prec.Tolerance(),
	}
	return f.finish(stdout, r, p.DType, []int{m, p.Out}, y)
}
