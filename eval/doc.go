// Package eval runs batches of quantized layers described by a YAML config
// and reports their accuracy against the float64 reference and their
// speed. It is what "run eval --config FILE" does; docs/eval.md documents
// the config keys.
//
// A case is one layer (of a model, or synthetic: random weights quantized
// with quant.Quantize) at one sequence length M, on one backend, with one
// kernel; a matrix product also on one number of shards, split over that
// many devices of the backend (layers.ParallelLinear). Each case runs warm-up passes, then timed passes (Encode and
// Commit, x on the device), and its y is compared with quant.Reference on
// the same x: ‖y − ref‖ / ‖ref‖ must not exceed the tolerance of the
// kernel's precision, and NaN never passes.
//
// Load reads and validates a config (file, then EnvPrefix environment
// variables, then command-line overrides), Open opens its models and
// devices and lists its cases, Batch.Run runs them, and Report.Write and
// Report.WriteSummary report them:
//
//	cfg, err := eval.Load("configs/smoke.yaml", nil)
//	...
//	b, err := eval.Open(cfg)
//	...
//	defer b.Close()
//	r := b.Run(ctx, nil)
//	files, err := r.Write()
//	r.WriteSummary(os.Stdout)
//
// Backends must be registered with the engine first (import _
// "github.com/mlxq/mlxq/cpu").
package eval
