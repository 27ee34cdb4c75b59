package main

import (
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/mlxq/mlxq/engine"
)

func inspect(args []string, stdout, stderr io.Writer) error {
	var mf modelFlags
	fs := flag.NewFlagSet("run inspect", flag.ContinueOnError)
	mf.register(fs)
	seqLen := fs.Int("seq-len", 1, "rows M the plan is made for")
	backend := fs.String("backend", engine.Auto, "backend whose kernels the plan picks from: "+backendChoices())
	dtypeName := fs.String("dtype", "f32", "activation dtype the plan is made for: f32, f16 or bf16")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: run inspect [--model PATH] [flags]\n\n"+
			"Lists the model's quantized layers: shape, format, bytes on disk and on the device with the\n"+
			"plan, the kernel planned at M rows, and the crossover M up to which the device runs the\n"+
			"packed matrix-vector kernel (qmv) before the matrix-matrix one (qmm).\n\n")
		fs.PrintDefaults()
	}
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *seqLen < 1 {
		return fmt.Errorf("--seq-len %d, want at least 1", *seqLen)
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
	fmt.Fprintln(tw, "LAYER\tSHAPE\tMODE\tBITS\tGROUP\tSCALES\tBYTES\tDEVICE\tKERNEL\tCROSSOVER")
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
		if plan, err := dev.Plan(p); err == nil {
			kernel = plan.String()
			n := bytes - len(l.Weight.Data) + plan.Layout.CodeBytes(max(l.Experts, 1)*l.Out, l.In, l.Bits)
			devBytes = fmt.Sprint(n)
			device += n
		} else {
			kernel = "none: " + err.Error()
		}
		if c := dev.Crossover(p); c > 0 {
			cross = fmt.Sprintf("qmv to M=%d", c)
		}
		disk += bytes
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%d\t%s\t%s\t%s\n", l.Name, shape, l.Mode, l.Bits, l.GroupSize, l.Scales.DType, bytes, devBytes, kernel, cross)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\nquantized weights: %d bytes on disk, %d on the device\n", disk, device)
	fmt.Fprintf(stdout, "\n%s", model.Summary())
	return nil
}
