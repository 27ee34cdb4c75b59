package metal

import (
	"fmt"
	"unsafe"

	"github.com/ebitengine/purego/objc"

	"github.com/mlxq/mlxq/engine"
)

// kernel is a compiled kernel variant, the engine.Compiled of the backend.
type kernel struct {
	variant engine.Variant
	spec    Spec
	pipe    *pipeline
}

// pipeline is a compute pipeline state of one compile unit.
type pipeline struct {
	pso        objc.ID
	maxThreads int
	width      int
}

// Compile compiles kernel variant v into a compute pipeline, once per
// compile unit.
func (d *Driver) Compile(v engine.Variant) (engine.Compiled, error) {
	spec, ok := Geometry(v)
	if !ok {
		return nil, fmt.Errorf("%w: no metal geometry for %v", engine.ErrUnsupported, v)
	}
	u, err := CompileUnit(v)
	if err != nil {
		return nil, err
	}
	if u.Defines.NeedsBFloat() && !d.bfloat {
		return nil, fmt.Errorf("%w: %v uses bfloat, which needs Metal Shading Language 3.1 (macOS 14 or later); this is macOS %s", engine.ErrUnsupported, v, d.os)
	}
	d.mu.Lock()
	p, ok := d.pipelines[u.Name]
	d.mu.Unlock()
	if !ok {
		if p, err = d.build(u); err != nil {
			return nil, err
		}
		d.mu.Lock()
		if old, ok := d.pipelines[u.Name]; ok {
			d.mu.Unlock()
			d.exec.Do(func() error { release(p.pso); return nil })
			p = old
		} else {
			d.pipelines[u.Name] = p
			d.mu.Unlock()
		}
	}
	switch {
	case p.width != 32:
		return nil, fmt.Errorf("%w: %v: SIMD groups of %d threads, the kernels need 32", engine.ErrUnsupported, v, p.width)
	case spec.ThreadCount() > p.maxThreads:
		return nil, fmt.Errorf("%v: threadgroups of %d threads, the pipeline takes at most %d", v, spec.ThreadCount(), p.maxThreads)
	case spec.Memory > d.maxMemory:
		return nil, fmt.Errorf("%v: %d bytes of threadgroup memory, the device allows %d", v, spec.Memory, d.maxMemory)
	}
	return &kernel{variant: v, spec: spec, pipe: p}, nil
}

// build compiles a unit's library and makes its pipeline.
func (d *Driver) build(u Unit) (*pipeline, error) {
	p := &pipeline{}
	err := d.do(func() error {
		src := newString(u.Source)
		defer release(src)
		opts := classMTLCompileOptions.Send(selAlloc).Send(selInit)
		defer release(opts)
		// Exact float32: no fast math (no reassociation, no flushing).
		if responds(opts, selSetMathMode) {
			opts.Send(selSetMathMode, int64(mathModeSafe))
		} else {
			opts.Send(selSetFastMathEnabled, false)
		}
		if u.Defines.NeedsBFloat() {
			opts.Send(selSetLanguageVersion, uint64(languageVersion3_1))
		}
		var nsErr objc.ID
		lib := d.dev.Send(selNewLibraryWithSource, src, opts, unsafe.Pointer(&nsErr))
		if lib == 0 {
			return fmt.Errorf("metal: compiling %s: %s", u.Name, errorText(nsErr))
		}
		defer release(lib)
		name := newString(EntryPoint)
		fn := lib.Send(selNewFunctionWithName, name)
		release(name)
		if fn == 0 {
			return fmt.Errorf("metal: %s has no function %s", u.Name, EntryPoint)
		}
		defer release(fn)
		nsErr = 0
		pso := d.dev.Send(selNewPipelineWithFunction, fn, unsafe.Pointer(&nsErr))
		if pso == 0 {
			return fmt.Errorf("metal: pipeline of %s: %s", u.Name, errorText(nsErr))
		}
		p.pso = pso
		p.maxThreads = int(objc.Send[uint64](pso, selMaxTotalThreads))
		p.width = int(objc.Send[uint64](pso, selThreadExecutionWidth))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}
