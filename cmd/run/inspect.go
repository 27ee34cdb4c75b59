package main

import (
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/loader"
)

func inspect(args []string, stdout, stderr io.Writer) error {
	var mf modelFlags
	fs := flag.NewFlagSet("run inspect", flag.ContinueOnError)
	mf.register(fs)
	seqLen := fs.Int("seq-len", 1, "rows M the plan is made for")
	backend := fs.String("backend", engine.Auto, "backend whose kernels the plan picks from: "+backendChoices())
	dtypeName := fs.String("dtype", "f32", "activation dtype the plan is made for: f32, f16 or bf16")
	topK := fs.Int("top-k", 2, "experts per row of x the plan of stacked experts is made for")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: run inspect [--model PATH] [flags]\n\n"+
			"Lists the model's quantized layers: kind (linear, embedding, switch_linear), shape, format,\n"+
			"bytes on disk and on the device with the plan, the kernel planned at M rows (an embedding's\n"+
			"lookup of M ids, stacked experts' gathered product of M rows through --top-k experts each),\n"+
			"and for a linear layer the crossover M up to which the device runs the packed\n"+
			"matrix-vector kernel (qmv) before the matrix-matrix one (qmm).\n\n")
		fs.PrintDefaults()
	}
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *seqLen < 1 {
		return fmt.Errorf("--seq-len %d, want at least 1", *seqLen)
	}
	if *topK < 1 {
		return fmt.Errorf("--top-k %d, want at least 1", *topK)
	}
	dtype, err := engine.ParseActDType(*dtypeName)
	if err != nil {
		return fmt.Errorf("--dtype: %w", err)
	}
	model, name, err := mf.open()
	if err != nil {
		return err
	}
	defer model.Close()
	dev, err := engine.Open(*backend)
	if err != nil {
		return err
	}
	defer dev.Close()

	fmt.Fprintf(stdout, "model %s, backend %s (%s), M = %d, %v activations\n\n", name, dev.Backend(), dev.Name(), *seqLen, dtype)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYER\tKIND\tSHAPE\tMODE\tBITS\tGROUP\tSCALES\tBYTES\tDEVICE\tKERNEL\tCROSSOVER")
	var disk, device int
	for _, l := range model.Layers() {
		shape := fmt.Sprintf("%dx%d", l.Out, l.In)
		if l.Experts > 0 {
			shape = fmt.Sprintf("%dx%s", l.Experts, shape)
		}
		p := engine.Params{M: *seqLen, N: l.Out, K: l.In, Format: l.Format, Act: dtype}
		bytes := len(l.Weight.Data) + len(l.Scales.Data)
		if l.Biases != nil {
			bytes += len(l.Biases.Data)
		}
		kernel, devBytes, cross := "", "-", "-"
		if plan, err := planOf(dev, l, p, *topK); err == nil {
			kernel = plan.String()
			n := bytes - len(l.Weight.Data) + plan.Layout.CodeBytes(max(l.Experts, 1)*l.Out, l.In, l.Bits)
			devBytes = fmt.Sprint(n)
			device += n
		} else {
			kernel = "none: " + err.Error()
		}
		if c := dev.Crossover(p); c > 0 && l.Kind() == loader.Linear {
			cross = fmt.Sprintf("qmv to M=%d", c)
		}
		disk += bytes
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%d\t%s\t%s\t%s\n", l.Name, l.Kind(), shape, l.Mode, l.Bits, l.GroupSize, l.Scales.DType, bytes, devBytes, kernel, cross)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\nquantized weights: %d bytes on disk, %d on the device\n", disk, device)
	fmt.Fprintf(stdout, "\n%s", model.Summary())
	return nil
}

// planOf returns the plan of layer l at the M rows of p: an embedding's
// lookup and stacked experts' gathered product (each row through topK
// experts) read the packed words; a Linear's is the engine's plan.
func planOf(dev *engine.Device, l *loader.Layer, p engine.Params, topK int) (engine.Plan, error) {
	switch l.Kind() {
	case loader.Embedding:
		if !dev.Supports(engine.Embed) {
			return engine.Plan{}, fmt.Errorf("%w: kernel embed on %s", engine.ErrUnsupported, dev.Backend())
		}
		return engine.Plan{Kernel: engine.Embed, Layout: engine.Packed}, nil
	case loader.SwitchLinear:
		k, err := dev.PlanGather(p.M, min(topK, l.Experts), l.Experts)
		return engine.Plan{Kernel: k, Layout: engine.Packed}, err
	}
	return dev.Plan(p)
}
