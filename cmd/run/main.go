// Command run runs the quantized layers of MLX-format models.
//
// Usage:
//
//	run [flags]                  forward pass of one layer (the embedded default model without --model)
//	run inspect --model PATH     list the quantized layers and the kernel planned for each
//	run eval --config FILE       batch evaluation driven by a YAML config
//
// Run "run -h", "run inspect -h" or "run eval -h" for the flags.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	_ "github.com/mlxq/mlxq/cpu"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks errors already reported by a flag set.
var errUsage = errors.New("usage")

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
	case len(args) > 0 && args[0] == "inspect":
		err = inspect(args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "eval":
		return evalCommand(args[1:], stdout, stderr)
	case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
		err = fmt.Errorf("unknown command %q, want inspect, eval or flags of the forward pass", args[0])
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
