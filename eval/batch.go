package eval

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mlxq/mlxq"
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/layers"
	"github.com/mlxq/mlxq/loader"
	"github.com/mlxq/mlxq/quant"
)

// A Batch is a config made ready to run: its models and devices open and
// its cases listed. A case is one layer at one sequence length and one
// activation dtype on one backend with one kernel. Close releases what
// Open opened.
type Batch struct {
	cfg     *Config
	models  []*loader.Model
	devices []*engine.Device
	// groups holds, per device of the batch, the collectives of the
	// cases split over several of its backend's devices, by the number
	// of shards; groupDevs are their devices.
	groups    []map[int]*engine.Collective
	groupDevs []*engine.Device
	// notes say which shard counts could not run, and why.
	notes   []string
	targets []*target
	cases   int
	skipped int
}

// sharding is how a matrix product case runs: on the batch's device when
// n is 1, else split over n devices along split.
type sharding struct {
	n     int
	split layers.Split
}

// target is a layer to evaluate: a layer of a model or a synthetic one
// (a Linear).
type target struct {
	model, name string
	quant.Format
	scaleType quant.DType
	out, in   int
	kind      loader.Kind
	experts   int // of stacked experts, else 0

	layer *loader.Layer // nil for a synthetic layer
	syn   Synthetic

	// choices lists the kernels to run, per device of the batch.
	choices [][]choice
}

// choice is a kernel to run a layer with.
type choice struct {
	kernel engine.Kernel
	// plan builds the layer without a fixed kernel: the plan picks one at
	// each M.
	plan bool
}

// EmbeddedModel is the model path that names the embedded default model
// (mlxq.DefaultModel), as does an empty path.
const EmbeddedModel = "embedded"

// Open validates the config, opens its models and devices, selects its
// layers and lists its cases. Every error wraps ErrConfig: besides invalid
// values, a model that does not open, a selection that matches no layer,
// a backend unavailable here, or a listed kernel that does not take a
// selected layer.
func Open(cfg *Config) (*Batch, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Batch{cfg: cfg}
	if err := b.open(); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func (b *Batch) open() error {
	cfg := b.cfg
	bad := func(key string, err error) error {
		return &ConfigError{File: cfg.File, Key: key, Msg: err.Error()}
	}
	for i, name := range cfg.Backends {
		dev, err := engine.Open(name)
		if err != nil {
			return bad(fmt.Sprintf("backends[%d]", i), err)
		}
		if slices.ContainsFunc(b.devices, func(d *engine.Device) bool { return d.Backend() == dev.Backend() }) {
			dev.Close()
			continue
		}
		b.devices = append(b.devices, dev)
	}
	for _, dev := range b.devices {
		b.groups = append(b.groups, b.openGroups(dev))
	}
	for i, mc := range cfg.Models {
		key := fmt.Sprintf("models[%d]", i)
		model, name, err := openModel(cfg.File, mc)
		if err != nil {
			return bad(key+".path", err)
		}
		b.models = append(b.models, model)
		selected, err := selectLayers(model, name, mc.Layers)
		if err != nil {
			var se *selectError
			if errors.As(err, &se) {
				key = fmt.Sprintf("%s.layers[%d]", key, se.index)
			}
			return bad(key, err)
		}
		for _, l := range selected {
			b.targets = append(b.targets, &target{model: name, name: l.Name, Format: l.Format, scaleType: l.Scales.DType, out: l.Out, in: l.In,
				kind: l.Kind(), experts: l.Experts, layer: l})
		}
	}
	for _, s := range cfg.Synthetic {
		f, st, _ := s.format()
		b.targets = append(b.targets, &target{model: "synthetic", name: s.name(f, st), Format: f, scaleType: st, out: s.Rows, in: s.Cols, syn: s})
	}
	for _, t := range b.targets {
		products := false
		for di, dev := range b.devices {
			choices, skipped, err := kernelChoices(cfg, t, dev)
			if err != nil {
				return err
			}
			t.choices = append(t.choices, choices)
			for _, ch := range choices {
				runs := 1
				if ch.kernel.Spec().Op == engine.OpMatmul {
					runs, products = len(b.shardings(di)), true
				}
				b.cases += runs * len(cfg.SeqLens) * len(cfg.DTypes)
			}
			b.skipped += skipped * len(cfg.SeqLens) * len(cfg.DTypes)
		}
		if products {
			if err := checkShards(cfg, t); err != nil {
				return err
			}
		}
	}
	if b.cases == 0 {
		return &ConfigError{File: cfg.File, Msg: "the config lists no case to run"}
	}
	return nil
}

// openGroups opens, for each number of shards n > 1 of the config, the
// devices 0 to n-1 of dev's backend and a collective over them. A number
// of shards the backend cannot run here (too few devices, no
// collectives) is left out, with a note saying why.
func (b *Batch) openGroups(dev *engine.Device) map[int]*engine.Collective {
	groups := map[int]*engine.Collective{}
	for _, n := range b.cfg.Shards {
		if n == 1 {
			continue
		}
		var devs []*engine.Device
		var err error
		for i := range n {
			var d *engine.Device
			if d, err = engine.OpenDevice(fmt.Sprintf("%s:%d", dev.Backend(), i)); err != nil {
				break
			}
			devs = append(devs, d)
		}
		var c *engine.Collective
		if err == nil {
			c, err = engine.NewCollective(devs...)
		}
		if err != nil {
			for _, d := range devs {
				d.Close()
			}
			b.notes = append(b.notes, fmt.Sprintf("%s: the cases of %d shards are left out: %s", dev.Backend(), n, oneLine(err)))
			continue
		}
		groups[n] = c
		b.groupDevs = append(b.groupDevs, devs...)
	}
	return groups
}

// shardings returns how the matrix product cases run on device di of
// the batch: once per number of shards the config lists, for each split
// of the config when there are several shards, leaving out those the
// backend cannot run.
func (b *Batch) shardings(di int) []sharding {
	var out []sharding
	for _, n := range b.cfg.Shards {
		switch {
		case n == 1:
			out = append(out, sharding{n: 1})
		case b.groups[di][n] != nil:
			for _, s := range b.cfg.splits() {
				out = append(out, sharding{n: n, split: s})
			}
		}
	}
	return out
}

// checkShards reports a layer run as a matrix product that does not
// split into a number of shards of the config, as a config error naming
// the layer.
func checkShards(cfg *Config, t *target) error {
	for i, n := range cfg.Shards {
		if n == 1 {
			continue
		}
		for _, s := range cfg.splits() {
			if err := layers.CheckSplit(t.name, t.Format, t.out, t.in, s, n); err != nil {
				return &ConfigError{File: cfg.File, Key: fmt.Sprintf("shards[%d]", i), Msg: fmt.Sprintf("%s split of %s: %v", s, t.model, err)}
			}
		}
	}
	return nil
}

// openModel opens a model entry and returns it with its display name.
// A relative path is taken from the config file's directory.
func openModel(file string, mc Model) (*loader.Model, string, error) {
	var opts []loader.Option
	if f, ok, _ := mc.format(); ok {
		opts = append(opts, loader.WithFormat(f))
	}
	if mc.Path == "" || mc.Path == EmbeddedModel {
		m, err := loader.OpenFS(mlxq.DefaultModel(), ".", opts...)
		return m, mlxq.DefaultModelName, err
	}
	p := mc.Path
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(file), p)
	}
	m, err := loader.Open(p, opts...)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("%s: no such model (looked for %s)", mc.Path, p)
		}
		return nil, "", err
	}
	return m, filepath.Clean(mc.Path), nil
}

// selectError reports a layer selector that matches nothing.
type selectError struct {
	index int
	msg   string
}

func (e *selectError) Error() string { return e.msg }

// selectLayers returns the layers of the model (named name in messages) that match any selector, in the
// model's order; no selectors select every layer. Each selector must match
// at least one layer.
func selectLayers(model *loader.Model, name string, selectors []string) ([]*loader.Layer, error) {
	all := model.Layers()
	if len(all) == 0 {
		return nil, fmt.Errorf("model %s has no quantized layers", name)
	}
	if len(selectors) == 0 {
		return all, nil
	}
	picked := make([]bool, len(all))
	for i, text := range selectors {
		sel, err := parseSelector(text)
		if err != nil {
			return nil, &selectError{i, err.Error()}
		}
		found := false
		for j, l := range all {
			if sel.match(l.Name) {
				picked[j], found = true, true
			}
		}
		if found {
			continue
		}
		if sel.re == nil && !isGlob(text) {
			if _, err := model.Layer(text); err != nil {
				return nil, &selectError{i, err.Error()}
			}
		}
		var some []string
		for _, l := range all[:min(3, len(all))] {
			some = append(some, l.Name)
		}
		return nil, &selectError{i, fmt.Sprintf("%q matches no quantized layer of %s (it has %d, such as %s)",
			text, name, len(all), strings.Join(some, ", "))}
	}
	var out []*loader.Layer
	for j, l := range all {
		if picked[j] {
			out = append(out, l)
		}
	}
	return out, nil
}

// ops returns what kernels may compute on the target: any layer runs as a
// Linear (matrix products), an embedding also its lookup, stacked experts
// also their gathered products.
func (t *target) ops() []engine.Op {
	switch t.kind {
	case loader.Embedding:
		return []engine.Op{engine.OpMatmul, engine.OpEmbed}
	case loader.SwitchLinear:
		return []engine.Op{engine.OpMatmul, engine.OpGather}
	}
	return []engine.Op{engine.OpMatmul}
}

// kernelChoices expands the config's kernel list for a layer on a device,
// and counts the kernels "all" leaves out because they do not take the
// layer or the device lacks them.
func kernelChoices(cfg *Config, t *target, dev *engine.Device) ([]choice, int, error) {
	var out []choice
	skipped := 0
	if t.kind == loader.SwitchLinear && cfg.TopK > t.experts {
		return nil, 0, &ConfigError{File: cfg.File, Key: "top_k", Msg: fmt.Sprintf("%d, but layer %s of %s has %d experts", cfg.TopK, t.name, t.model, t.experts)}
	}
	for i, name := range cfg.Kernels {
		key := fmt.Sprintf("kernels[%d]", i)
		switch name {
		case KernelsPlan:
			k, err := t.plan(dev, t.op(), 1, cfg.TopK, quant.F32)
			if err != nil {
				return nil, 0, &ConfigError{File: cfg.File, Key: key, Msg: fmt.Sprintf("layer %s of %s on %s: %v", t.name, t.model, dev.Backend(), err)}
			}
			out = append(out, choice{kernel: k, plan: true})
		case KernelsAll:
			for _, k := range RunKernels() {
				if !slices.Contains(t.ops(), k.Spec().Op) {
					continue
				}
				if k.Accepts(t.Format) != nil || !dev.Supports(k) {
					skipped++
					continue
				}
				out = append(out, choice{kernel: k})
			}
		default:
			k, _ := engine.ParseKernel(name)
			if !slices.Contains(t.ops(), k.Spec().Op) {
				return nil, 0, &ConfigError{File: cfg.File, Key: key, Msg: fmt.Sprintf("kernel %s does not take layer %s of %s (kind %s)", k, t.name, t.model, t.kind)}
			}
			if err := k.Accepts(t.Format); err != nil {
				return nil, 0, &ConfigError{File: cfg.File, Key: key, Msg: fmt.Sprintf("kernel %s does not take layer %s of %s (%v): %v",
					k, t.name, t.model, t.Format, strings.TrimPrefix(err.Error(), engine.ErrArgs.Error()+": "+k.String()+": "))}
			}
			if !dev.Supports(k) {
				return nil, 0, &ConfigError{File: cfg.File, Key: key, Msg: fmt.Sprintf("backend %s does not implement kernel %s", dev.Backend(), k)}
			}
			out = append(out, choice{kernel: k})
		}
	}
	return out, skipped, nil
}

// op returns what the target's plan computes: an embedding's lookup,
// stacked experts' gathered product, a Linear's matrix product.
func (t *target) op() engine.Op {
	switch t.kind {
	case loader.Embedding:
		return engine.OpEmbed
	case loader.SwitchLinear:
		return engine.OpGather
	}
	return engine.OpMatmul
}

// plan returns the kernel the plan picks for computing op on the target
// at m rows (each routed to topK experts, for a gathered product).
func (t *target) plan(dev *engine.Device, op engine.Op, m, topK int, act quant.DType) (engine.Kernel, error) {
	switch op {
	case engine.OpEmbed:
		if !dev.Supports(engine.Embed) {
			return 0, fmt.Errorf("%w: kernel embed on %s", engine.ErrUnsupported, dev.Backend())
		}
		return engine.Embed, nil
	case engine.OpGather:
		return dev.PlanGather(m, topK, t.experts)
	}
	p, err := dev.Plan(engine.Params{M: m, N: t.out, K: t.in, Format: t.Format, Act: act})
	return p.Kernel, err
}

// caseName names the cases of kernel k on the target: the layer's name,
// with "[0]" for expert 0 of stacked experts run as a Linear.
func (t *target) caseName(k engine.Kernel) string {
	if t.kind == loader.SwitchLinear && k.Spec().Op == engine.OpMatmul {
		return t.name + "[0]"
	}
	return t.name
}

// Cases returns the number of cases the batch runs.
func (b *Batch) Cases() int { return b.cases }

// Skipped returns the number of combinations of layer, sequence length,
// backend and kernel that "kernels: all" leaves out because the kernel does
// not take the layer's format or the backend does not implement it.
func (b *Batch) Skipped() int { return b.skipped }

// Notes returns why numbers of shards of the config do not run, one line
// each.
func (b *Batch) Notes() []string { return slices.Clone(b.notes) }

// Close releases the batch's models, collectives and devices.
func (b *Batch) Close() {
	for _, g := range b.groups {
		for _, c := range g {
			c.Close()
		}
	}
	for _, d := range b.groupDevs {
		d.Close()
	}
	for _, m := range b.models {
		m.Close()
	}
	for _, d := range b.devices {
		d.Close()
	}
}
