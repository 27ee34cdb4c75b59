package cuda

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/mlxq/mlxq/cuda/internal/ptxbundle"
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/internal/kernelabi"
	"github.com/mlxq/mlxq/shaders"
)

// commonHeader is the helper header every kernel source includes.
const commonHeader = "common.cuh"

// Defines are the values of a compile unit's preamble macros.
type Defines = kernelabi.Defines

// Kernels of the backend's own, outside the engine's catalog: they are
// compiled, cached and bundled like catalog variants, under kernel numbers
// the catalog does not use, and run only inside the driver (the cuBLAS
// path of QMM, cublas.go; the Timer, timer.go).
const (
	// kernelDequant expands packed weights into the activation dtype
	// (dequant.cu); its variants are those of QMM with F16/BF16
	// activations.
	kernelDequant engine.Kernel = 240 + iota
	// kernelBiasAdd adds the Linear bias to an output (bias_add.cu); it
	// varies only with the activation dtype.
	kernelBiasAdd
	// kernelHold keeps the stream busy for a while (hold.cu); one variant.
	kernelHold
)

// internalKernels lists the backend's own kernels.
var internalKernels = []engine.Kernel{kernelDequant, kernelBiasAdd, kernelHold}

// familyName returns the name of a catalog or internal kernel: the base
// name of its source file.
func familyName(k engine.Kernel) string {
	switch k {
	case kernelDequant:
		return "dequant"
	case kernelBiasAdd:
		return "bias_add"
	case kernelHold:
		return "hold"
	}
	return k.String()
}

// VariantDefines returns the preamble macros of kernel variant v: the
// quantization mode, bits and group size, and the codes of the activation
// and scale dtypes. For unpack only the bits are set, for bias_add only
// the activation dtype, for hold none.
func VariantDefines(v engine.Variant) (Defines, error) {
	if v.Kernel == kernelHold {
		return Defines{}, nil
	}
	if v.Kernel == kernelBiasAdd {
		act, ok := kernelabi.ActCode(v.Act)
		if !ok {
			return Defines{}, fmt.Errorf("%w: bias_add: activation dtype %v, want F32, F16 or BF16", engine.ErrArgs, v.Act)
		}
		return Defines{Act: act}, nil
	}
	return kernelabi.Of(v)
}

// Unit is one compile unit: a kernel family's source with a preamble.
type Unit struct {
	// File is the kernel source's name in shaders/cuda, such as "qmv.cu".
	File string
	// Name names the unit in the PTX bundle, such as
	// "qmv/mode=0,bits=4,group=64,act=2,scale=2".
	Name string
	// Source is the preamble followed by the file's text.
	Source string
}

// CompileUnit returns the compile unit of kernel variant v, from the
// kernel sources embedded in package shaders.
func CompileUnit(v engine.Variant) (Unit, error) {
	defs, err := VariantDefines(v)
	if err != nil {
		return Unit{}, err
	}
	file := familyName(v.Kernel) + ".cu"
	text, err := shaders.CUDASource(file)
	if err != nil {
		return Unit{}, fmt.Errorf("source of %v: %w", v, err)
	}
	return Unit{File: file, Name: defs.UnitName(familyName(v.Kernel)), Source: defs.Preamble(file) + text}, nil
}

// variantsOf lists every variant of kernel k the engine can ask for.
func variantsOf(k engine.Kernel) []engine.Variant {
	var out []engine.Variant
	switch k {
	case kernelHold:
		return []engine.Variant{{Kernel: k}}
	case kernelBiasAdd:
		for _, act := range cublasActs {
			out = append(out, engine.Variant{Kernel: k, Act: act})
		}
		return out
	case kernelDequant:
		for _, v := range variantsOf(engine.QMM) {
			if slices.Contains(cublasActs, v.Act) {
				v.Kernel = k
				out = append(out, v)
			}
		}
		return out
	}
	return k.Variants()
}

// advertised lists the catalog kernels that have a launch geometry for
// every one of their variants.
func advertised() []engine.Kernel {
	var out []engine.Kernel
	for _, k := range engine.Kernels() {
		vs := variantsOf(k)
		if len(vs) > 0 && !slices.ContainsFunc(vs, func(v engine.Variant) bool { _, ok := geometry(v); return !ok }) {
			out = append(out, k)
		}
	}
	return out
}

// BundleVariants lists every variant of every kernel the backend
// advertises, and of the backend's own kernels (dequant, bias_add and
// hold, under kernel numbers outside the catalog): the compile units the
// embedded PTX bundle must hold.
func BundleVariants() []engine.Variant {
	var out []engine.Variant
	for _, k := range advertised() {
		out = append(out, variantsOf(k)...)
	}
	for _, k := range internalKernels {
		out = append(out, variantsOf(k)...)
	}
	return out
}

// cacheKey hashes its parts, each length-prefixed, into a hex string.
func cacheKey(parts ...string) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.LittleEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// kernel is a compiled kernel variant, the engine.Compiled of the backend.
type kernel struct {
	variant engine.Variant
	spec    launchSpec
	mod     *module
	// name and launch are set for kernels from LoadPTX: the name in
	// messages, and the launch that replaces spec.
	name   string
	launch func(p engine.Params) (grid, block [3]uint32, shared uint32)
}

// String names the kernel in messages: its variant, or its LoadPTX name.
func (k *kernel) String() string {
	if k.launch != nil {
		return k.name
	}
	return k.variant.String()
}

// module is a loaded CUDA module and its entry point.
type module struct {
	handle uintptr
	fn     uintptr
	// shared is the dynamic shared memory the function is allowed beyond
	// the default 48 KiB; only the executor touches it.
	shared uint32
}

// nvrtcOptions returns the NVRTC options for the device.
func (d *Driver) nvrtcOptions() []string {
	opts := []string{"--gpu-architecture=" + d.Arch(), "-default-device", "--std=c++17", "-lineinfo"}
	if inc := toolkitInclude(); inc != "" {
		opts = append(opts, "--include-path="+inc)
	}
	return opts
}

// Compile compiles kernel variant v: with NVRTC to a CUBIN for the
// device's exact architecture, or, without NVRTC, from the embedded PTX
// through the driver's JIT. Either result is cached on disk.
func (d *Driver) Compile(v engine.Variant) (engine.Compiled, error) {
	spec, ok := geometry(v)
	if !ok {
		return nil, fmt.Errorf("%w: no cuda launch geometry for %v", engine.ErrUnsupported, v)
	}
	u, err := CompileUnit(v)
	if err != nil {
		return nil, err
	}
	var key string
	var build func() ([]byte, error)
	if d.rtc != nil {
		hdr, err := shaders.CUDASource(commonHeader)
		if err != nil {
			return nil, err
		}
		opts := d.nvrtcOptions()
		key = cacheKey("nvrtc", u.Source, commonHeader, hdr, d.Arch(), fmt.Sprint(d.driverVersion), d.rtc.version, strings.Join(opts, " "))
		build = func() ([]byte, error) {
			return d.rtc.compile(u.File, u.Source, []header{{commonHeader, hdr}}, opts)
		}
	} else {
		b, err := embeddedBundle()
		if err != nil {
			return nil, fmt.Errorf("%v: no NVRTC (%s) and %w", v, d.rtcWhy, err)
		}
		ptx, ok := b.PTX(u.Name)
		if !ok {
			return nil, fmt.Errorf("%v: no NVRTC (%s) and the embedded PTX bundle lacks %s; regenerate it with %s", v, d.rtcWhy, u.Name, RegenerateCommand)
		}
		key, build = d.ptxBuild(u.Name, ptx)
	}
	mod, err := d.module(key, build)
	if err != nil {
		return nil, err
	}
	return &kernel{variant: v, spec: spec, mod: mod}, nil
}

// ptxBuild returns the cache key of PTX text ptx and the build of its
// CUBIN by the driver's linker.
func (d *Driver) ptxBuild(name string, ptx []byte) (string, func() ([]byte, error)) {
	key := cacheKey("ptx", string(ptx), d.Arch(), fmt.Sprint(d.driverVersion))
	return key, func() ([]byte, error) {
		var cubin []byte
		err := d.do(func() (err error) { cubin, err = d.linkPTX(name, ptx); return err })
		return cubin, err
	}
}

// module returns the loaded module of cache key key, loading it from the
// disk cache or from build. A cached image the driver rejects is rebuilt
// and rewritten.
func (d *Driver) module(key string, build func() ([]byte, error)) (*module, error) {
	d.mu.Lock()
	m, ok := d.modules[key]
	d.mu.Unlock()
	if ok {
		return m, nil
	}
	if image, ok := d.cache.get(key); ok {
		if m, err := d.load(image); err == nil {
			return d.keep(key, m), nil
		}
	}
	image, err := build()
	if err != nil {
		return nil, err
	}
	m, err = d.load(image)
	if err != nil {
		return nil, err
	}
	d.cache.put(key, image) // a cache that cannot be written only costs time
	return d.keep(key, m), nil
}

func (d *Driver) keep(key string, m *module) *module {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.modules[key]; ok {
		d.exec.Do(func() error { return d.cu.check("cuModuleUnload", d.cu.cuModuleUnload(m.handle)) })
		return old
	}
	d.modules[key] = m
	return m
}

// load loads a CUBIN image and finds its entry point.
func (d *Driver) load(image []byte) (*module, error) {
	if len(image) == 0 {
		return nil, errors.New("empty module image")
	}
	m := &module{}
	err := d.do(func() error {
		if err := d.cu.check("cuModuleLoadData", d.cu.cuModuleLoadData(&m.handle, unsafe.Pointer(&image[0]))); err != nil {
			return err
		}
		if err := d.cu.check("cuModuleGetFunction", d.cu.cuModuleGetFunction(&m.fn, m.handle, kernelName)); err != nil {
			d.cu.cuModuleUnload(m.handle)
			return err
		}
		return nil
	})
	runtime.KeepAlive(image)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// linkPTX JIT-compiles PTX for the current context's device with the
// driver's linker and returns the CUBIN. It runs on the executor.
func (d *Driver) linkPTX(name string, ptx []byte) ([]byte, error) {
	cu := d.cu
	ptx = append(ptx[:len(ptx):len(ptx)], 0)
	errLog := make([]byte, 16<<10)
	var pin runtime.Pinner
	pin.Pin(&errLog[0])
	defer pin.Unpin()
	opts := []int32{jitErrorLogBuffer, jitErrorLogSize}
	vals := []uintptr{uintptr(unsafe.Pointer(&errLog[0])), uintptr(len(errLog))}
	var state uintptr
	if err := cu.check("cuLinkCreate_v2", cu.cuLinkCreate(uint32(len(opts)), &opts[0], &vals[0], &state)); err != nil {
		return nil, err
	}
	defer cu.cuLinkDestroy(state)
	logged := func(err error) error {
		if s := strings.TrimSpace(strings.TrimRight(string(errLog), "\x00")); s != "" {
			return fmt.Errorf("%s: %w\n%s", name, err, s)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := cu.check("cuLinkAddData_v2", cu.cuLinkAddData(state, jitInputPTX, unsafe.Pointer(&ptx[0]), uint64(len(ptx)), name, 0, nil, nil)); err != nil {
		return nil, logged(err)
	}
	var out unsafe.Pointer
	var size uint64
	if err := cu.check("cuLinkComplete", cu.cuLinkComplete(state, &out, &size)); err != nil {
		return nil, logged(err)
	}
	if out == nil || size == 0 {
		return nil, fmt.Errorf("%s: cuLinkComplete returned an empty image", name)
	}
	return slices.Clone(unsafe.Slice((*byte)(out), size)), nil
}

// RegenerateCommand regenerates the embedded PTX bundle.
const RegenerateCommand = "go run ./cuda/internal/ptxgen"

var (
	bundleOnce sync.Once
	bundle     *ptxbundle.Bundle
	bundleErr  error
)

// embeddedBundle parses the PTX bundle embedded in package shaders once.
func embeddedBundle() (*ptxbundle.Bundle, error) {
	bundleOnce.Do(func() {
		raw := shaders.PTXBundle()
		if raw == nil {
			bundleErr = fmt.Errorf("the binary embeds no PTX bundle (shaders/cuda/%s); generate it with %s", shaders.PTXBundleName, RegenerateCommand)
			return
		}
		bundle, bundleErr = ptxbundle.Decode(raw)
	})
	return bundle, bundleErr
}

// toolkitRoots lists the CUDA toolkit directories named by $CUDA_HOME and
// $CUDA_PATH, then /usr/local/cuda.
func toolkitRoots() []string {
	var out []string
	for _, r := range []string{os.Getenv("CUDA_HOME"), os.Getenv("CUDA_PATH"), "/usr/local/cuda"} {
		if r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// toolkitInclude returns the first toolkit include directory that exists,
// or "".
func toolkitInclude() string {
	for _, r := range toolkitRoots() {
		dir := filepath.Join(r, "include")
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			return dir
		}
	}
	return ""
}
