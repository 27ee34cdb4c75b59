// Command run runs the quantized layers of MLX-format models.
//
// Usage:
//
//	run [flags]                  forward pass of one layer (the embedded default model without --model)
//	run inspect --model PATH     list the quantized layers and the kernel planned for each
//	run eval --config FILE       batch evaluation driven by a YAML config
//
// Run "run help", "run help inspect" or "run help eval" for the flags.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	_ "github.com/mlxq/mlxq/cpu"
	_ "github.com/mlxq/mlxq/cuda"
	_ "github.com/mlxq/mlxq/metal"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks errors already reported by a flag set.
var errUsage = errors.New("usage")

// usage introduces the command and its subcommands.
const usage = `usage: run [flags]                   forward pass of one quantized layer, timed and checked
       run inspect [--model PATH]     list the quantized layers, their bytes and planned kernels
       run eval --config FILE         batch evaluation driven by a YAML config (docs/eval.md)
       run help [inspect|eval]        this text, or the flags of a subcommand

The forward pass runs one layer of a model (the embedded tiny model without
--model) and reports its kernel, speed and error against a float64 reference.
`

// run executes the command line and returns the exit status. Failures print
// one line "error: ..." on stderr.
func run(args []string, stdout, stderr io.Writer) (status int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "error: internal: %v\n", r)
			status = 1
		}
	}()
	var err error
	switch {
	case len(args) > 0 && args[0] == "help":
		err = help(args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "inspect":
		err = inspect(args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "eval":
		return evalCommand(args[1:], stdout, stderr)
	case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
		err = fmt.Errorf("unknown command %q, want inspect, eval, help or flags of the forward pass", args[0])
	default:
		err = forward(args, stdout, stderr)
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "error: %v\n", oneLine(err))
		return 1
	}
	return 0
}

// help prints the usage of the command, or of one subcommand, on stdout.
func help(args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) == 0:
		return forward([]string{"-h"}, stdout, stdout)
	case len(args) == 1 && args[0] == "inspect":
		return inspect([]string{"-h"}, stdout, stdout)
	case len(args) == 1 && args[0] == "eval":
		evalCommand([]string{"-h"}, stdout, stdout)
		return flag.ErrHelp
	}
	return fmt.Errorf("help %s: want run help, run help inspect or run help eval", strings.Join(args, " "))
}

// oneLine joins a multi-line error message into one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// parse parses flags of fs, reporting usage problems on stderr.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "error: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	return nil
}
