package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/term"

	"github.com/mlxq/mlxq/eval"
)

// Exit statuses of eval besides 0 (every case passed) and 1 (a case
// failed its tolerance or could not run).
const (
	exitConfig      = 2   // bad config or command line
	exitInterrupted = 130 // stopped by Ctrl-C (128 + SIGINT)
)

// evalOverrides maps eval's override flags to the config keys they set.
var evalOverrides = []struct{ flag, key, usage string }{
	{"backends", "backends", "comma-separated backends (auto, cpu, ...)"},
	{"seq-lens", "seq_lens", "comma-separated sequence lengths M"},
	{"dtypes", "dtypes", "comma-separated activation dtypes: f32, f16, bf16"},
	{"shards", "shards", "comma-separated numbers of devices each matrix product is split over (1: one device)"},
	{"split", "split", "how the cases of several shards split a layer: column, row or both"},
	{"kernels", "kernels", "comma-separated kernels: plan, all, or catalog names"},
	{"top-k", "top_k", "experts per row of x of the gathered cases (stacked experts)"},
	{"warmup", "warmup", "untimed runs per case"},
	{"repeat", "repeat", "timed runs per case"},
	{"check-rows", "check_rows", "most rows of y checked against the reference per case (0: all)"},
	{"output-dir", "output.dir", "directory of the report files"},
	{"formats", "output.formats", "comma-separated report files: json, csv, markdown, svg, png"},
}

// evalCommand runs a batch evaluation described by a YAML config (see
// docs/eval.md). Exit status: 0 when every case passes, 1 when a case
// fails its tolerance or cannot run, 2 for a bad config or command line,
// 130 when interrupted (the report of the cases run is still written).
// The first Ctrl-C stops after the current case; a second one kills.
func evalCommand(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	return evalRun(ctx, args, stdout, stderr, isTerminal(stderr))
}

// evalRun is evalCommand with its context and whether stderr is a
// terminal, where the progress bar goes.
func evalRun(ctx context.Context, args []string, stdout, stderr io.Writer, terminal bool) int {
	fs := flag.NewFlagSet("run eval", flag.ContinueOnError)
	config := fs.String("config", "", "YAML config `file` (required)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	values := map[string]*string{}
	for _, o := range evalOverrides {
		values[o.flag] = fs.String(o.flag, "", o.usage+" (overrides the config and "+eval.EnvVar(o.key)+")")
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: run eval --config FILE [flags]\n\n"+
			"Runs the layers, sequence lengths, backends and kernels of a YAML config, checks each case\n"+
			"against the float64 reference, times it, and writes the reports (docs/eval.md).\n"+
			"Environment variables %s_KEY override the config's keys; flags override both.\n"+
			"Exit status: 0 all cases pass, 1 a case fails, 2 bad config, 130 interrupted.\n\n", eval.EnvPrefix)
		fs.PrintDefaults()
	}
	switch err := parse(fs, args, stderr); {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		return exitConfig
	}
	if *config == "" {
		fmt.Fprintln(stderr, "error: --config is required")
		return exitConfig
	}
	overrides := map[string]string{}
	fs.Visit(func(f *flag.Flag) {
		for _, o := range evalOverrides {
			if o.flag == f.Name {
				overrides[o.key] = f.Value.String()
			}
		}
	})

	cfg, err := eval.Load(*config, overrides)
	if err != nil {
		fmt.Fprintf(stderr, "error: %s\n", oneLine(err))
		return exitConfig
	}
	b, err := eval.Open(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "error: %s\n", oneLine(err))
		return exitConfig
	}
	defer b.Close()
	var progress eval.Progress
	if terminal && !*quiet {
		progress = eval.NewBar(stderr).Update
	}
	r := b.Run(ctx, progress)
	if err := r.WriteSummary(stdout); err != nil {
		fmt.Fprintf(stderr, "error: %s\n", oneLine(err))
		return 1
	}
	files, err := r.Write()
	if len(files) > 0 {
		fmt.Fprintf(stdout, "reports: %s\n", strings.Join(files, ", "))
	}
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "error: %s\n", oneLine(err))
		return 1
	case r.Interrupted:
		fmt.Fprintf(stderr, "interrupted after %d of %d cases\n", len(r.Cases), r.Total)
		return exitInterrupted
	case r.Failed > 0:
		return 1
	}
	return 0
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
