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
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: run inspect [--model PATH] [flags]\n\nLists the model's quantized layers and the kernel planned for each at M rows.\n\n")
		fs.PrintDefaults()
	}
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *seqLen < 1 {
		return fmt.Errorf("--seq-len %d, want at least 1", *seqLen)
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

	fmt.Fprintf(stdout, "model %s, backend %s (%s), M = %d\n\n", name, dev.Backend(), dev.Name(), *seqLen)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYER\tSHAPE\tMODE\tBITS\tGROUP\tSCALES\tBYTES\tKERNEL")
	for _, l := range model.Layers() {
		shape := fmt.Sprintf("%dx%d", l.Out, l.In)
		if l.Experts > 0 {
			shape = fmt.Sprintf("%dx%s", l.Experts, shape)
		}
		kernel := "-"
		if p, err := dev.Plan(l.Format, *seqLen); err == nil {
			kernel = p.String()
		} else {
			kernel = "none: " + err.Error()
		}
		bytes := len(l.Weight.Data) + len(l.Scales.Data)
		if l.Biases != nil {
			bytes += len(l.Biases.Data)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%d\t%s\n", l.Name, shape, l.Mode, l.Bits, l.GroupSize, l.Scales.DType, bytes, kernel)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\n%s", model.Summary())
	return nil
}
