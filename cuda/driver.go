package cuda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/internal/osthread"
	"github.com/mlxq/mlxq/quant"
)

// Name is the backend's registered name.
const Name = "cuda"

// Priority is the backend's priority in engine.Auto: above the CPU's 0.
const Priority = 10

func init() {
	engine.Register(Name, Priority, func() (engine.Driver, error) { return Open() })
	engine.RegisterOrdinals(Name, func(n int) (engine.Driver, error) { return OpenOrdinal(n) })
}

// Environment variables read by Open.
const (
	// EnvDevice selects the device by ordinal (default 0).
	EnvDevice = "MLXQ_CUDA_DEVICE"
	// EnvPTX, set to 1, loads the PTX embedded in the binary even where
	// NVRTC is installed.
	EnvPTX = "MLXQ_CUDA_PTX"
	// EnvCache, set to off, disables the on-disk cache of compiled
	// kernels.
	EnvCache = "MLXQ_CUDA_CACHE"
	// EnvGraphs, set to off, disables the replay of repeated commits as
	// CUDA graphs (graph.go).
	EnvGraphs = "MLXQ_CUDA_GRAPHS"
)

// Driver is the CUDA backend's engine.Driver: one device, its primary
// context and one stream, driven from a single goroutine locked to its OS
// thread. All methods are safe for concurrent use.
type Driver struct {
	cu     *cuAPI
	rtc    *nvrtcAPI // nil when kernels come from the embedded PTX
	rtcWhy string    // why rtc is nil
	exec   *osthread.Thread
	cache  *diskCache

	ordinal       int
	dev           int32
	ctx           uintptr
	stream        uintptr
	name          string
	major, minor  int
	sms           int
	totalMem      uint64
	driverVersion int
	maxShared     int // opt-in dynamic shared memory per block
	maxThreads    int

	kernels []engine.Kernel
	gemm    *cublasPath // the cuBLAS path of QMM

	// Owned by the executor's goroutine.
	staging *staging
	timing  *timing
	graphs  *graphCache // nil when graphs are off

	mu      sync.Mutex
	closed  bool
	modules map[string]*module
	allocs  map[*memory]struct{}
}

// config is what Open reads from the environment.
type config struct {
	device   int
	forcePTX bool
	cacheDir string // empty: no cache
	cublas   cublasConfig
	graphs   bool
}

func configFromEnv() (config, error) {
	c := config{}
	if s := strings.TrimSpace(os.Getenv(EnvDevice)); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return c, fmt.Errorf("%s=%q, want a device ordinal >= 0", EnvDevice, s)
		}
		c.device = n
	}
	switch strings.ToLower(strings.TrimSpace(os.Getenv(EnvPTX))) {
	case "", "0", "false", "off":
	default:
		c.forcePTX = true
	}
	blas, err := cublasConfigFromEnv()
	if err != nil {
		return c, err
	}
	c.cublas = blas
	switch s := strings.ToLower(strings.TrimSpace(os.Getenv(EnvGraphs))); s {
	case "0", "off", "false", "no":
	case "", "1", "on", "true", "yes":
		c.graphs = true
	default:
		return c, fmt.Errorf("%s=%q, want on or off", EnvGraphs, s)
	}
	switch strings.ToLower(strings.TrimSpace(os.Getenv(EnvCache))) {
	case "off", "0", "false", "none":
	default:
		if dir, err := os.UserCacheDir(); err == nil {
			c.cacheDir = filepath.Join(dir, "mlxq", "cuda")
		}
	}
	return c, nil
}

// Open opens the CUDA device selected by MLXQ_CUDA_DEVICE. Without a
// driver library or a device it fails with an error wrapping
// engine.ErrUnavailable that says why.
func Open() (*Driver, error) {
	cfg, err := configFromEnv()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
	}
	return openConfig(cfg)
}

// OpenOrdinal opens CUDA device n (engine.OpenDevice's "cuda:n"), whatever
// MLXQ_CUDA_DEVICE says; the other settings come from the environment as
// for Open.
func OpenOrdinal(n int) (*Driver, error) {
	if n < 0 {
		return nil, fmt.Errorf("%w: CUDA device %d, want an ordinal >= 0", engine.ErrUnavailable, n)
	}
	cfg, err := configFromEnv()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
	}
	cfg.device = n
	return openConfig(cfg)
}

// openConfig opens the device cfg selects through the driver library.
func openConfig(cfg config) (*Driver, error) {
	cu, err := loadCUDA()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
	}
	return open(cu, loadNVRTC, cfg)
}

// open opens a device through the driver API cu, with NVRTC from
// loadRTC unless cfg forces the embedded PTX.
func open(cu *cuAPI, loadRTC func() (*nvrtcAPI, error), cfg config) (*Driver, error) {
	d := &Driver{cu: cu, ordinal: cfg.device, modules: map[string]*module{}, allocs: map[*memory]struct{}{}}
	if cfg.cacheDir != "" {
		d.cache = &diskCache{dir: cfg.cacheDir}
	}
	exec, err := osthread.Start("cuda", d.init, nil)
	if err != nil {
		return nil, err
	}
	d.exec = exec
	if cfg.forcePTX {
		d.rtcWhy = EnvPTX + " is set"
	} else if rtc, err := loadRTC(); err != nil {
		d.rtcWhy = err.Error()
	} else {
		d.rtc = rtc
	}
	d.kernels = advertised()
	// cuBLAS is loaded at the first QMM that takes its path.
	d.gemm = newCUBLASPath(cfg.cublas)
	if cfg.graphs {
		d.graphs = newGraphCache()
	}
	return d, nil
}

// init runs on the executor's thread: it initialises the driver, reads
// the device's properties, makes its primary context current and creates
// the stream.
func (d *Driver) init() error {
	cu := d.cu
	if code := cu.cuInit(0); code != cudaSuccess {
		err := cu.check("cuInit", code)
		if code == cudaErrorNoDevice {
			return fmt.Errorf("%w: no CUDA device: %w", engine.ErrUnavailable, err)
		}
		return fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
	}
	var v, n int32
	if err := cu.check("cuDriverGetVersion", cu.cuDriverGetVersion(&v)); err != nil {
		return fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
	}
	d.driverVersion = int(v)
	if err := cu.check("cuDeviceGetCount", cu.cuDeviceGetCount(&n)); err != nil {
		return fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: no CUDA device", engine.ErrUnavailable)
	}
	if d.ordinal >= int(n) {
		return fmt.Errorf("%w: CUDA device %d (cuda:%d, or %s), but there are %d CUDA devices", engine.ErrUnavailable, d.ordinal, d.ordinal, EnvDevice, n)
	}
	if err := cu.check("cuDeviceGet", cu.cuDeviceGet(&d.dev, int32(d.ordinal))); err != nil {
		return err
	}
	name := make([]byte, 256)
	if err := cu.check("cuDeviceGetName", cu.cuDeviceGetName(&name[0], int32(len(name)), d.dev)); err != nil {
		return err
	}
	d.name = goString(&name[0])
	attrs := []struct {
		attr int32
		dst  *int
	}{
		{attrComputeCapMajor, &d.major},
		{attrComputeCapMinor, &d.minor},
		{attrMultiprocessorCount, &d.sms},
		{attrMaxSharedPerBlockOpt, &d.maxShared},
		{attrMaxThreadsPerBlock, &d.maxThreads},
	}
	for _, a := range attrs {
		var x int32
		if err := cu.check("cuDeviceGetAttribute", cu.cuDeviceGetAttribute(&x, a.attr, d.dev)); err != nil {
			return err
		}
		*a.dst = int(x)
	}
	if err := cu.check("cuDeviceTotalMem_v2", cu.cuDeviceTotalMem(&d.totalMem, d.dev)); err != nil {
		return err
	}
	if err := cu.check("cuDevicePrimaryCtxRetain", cu.cuDevicePrimaryCtxRetain(&d.ctx, d.dev)); err != nil {
		return err
	}
	if err := cu.check("cuCtxSetCurrent", cu.cuCtxSetCurrent(d.ctx)); err != nil {
		cu.cuDevicePrimaryCtxRelease(d.dev)
		return err
	}
	if err := cu.check("cuStreamCreate", cu.cuStreamCreate(&d.stream, streamNonBlocking)); err != nil {
		cu.cuDevicePrimaryCtxRelease(d.dev)
		return err
	}
	d.staging = newStaging(cu, d.stream, defaultBankBytes)
	return nil
}

// Name describes the device, as "NVIDIA H200, sm_90, 132 SMs, 139.8 GiB".
func (d *Driver) Name() string {
	return fmt.Sprintf("%s, %s, %d SMs, %.1f GiB", d.name, d.Arch(), d.sms, float64(d.totalMem)/(1<<30))
}

// Ordinal returns the device's ordinal, as cuDeviceGet numbers devices.
func (d *Driver) Ordinal() int { return d.ordinal }

// Arch returns the device's architecture as NVRTC names it, such as
// "sm_90".
func (d *Driver) Arch() string { return fmt.Sprintf("sm_%d%d", d.major, d.minor) }

// DriverVersion returns the CUDA driver's version, such as 13000.
func (d *Driver) DriverVersion() int { return d.driverVersion }

// Compiler describes where kernels come from: "nvrtc 13.0", or "embedded
// PTX" with the reason NVRTC is not used.
func (d *Driver) Compiler() string {
	if d.rtc != nil {
		return "nvrtc " + d.rtc.version
	}
	return "embedded PTX (" + d.rtcWhy + ")"
}

// Kernels returns the catalog kernels with a launch geometry for every
// variant.
func (d *Driver) Kernels() []engine.Kernel { return append([]engine.Kernel(nil), d.kernels...) }

// Precision returns TF32 for variants that compute on TF32 tensor cores
// (F32 activations only), and otherwise the float32 precision of the
// activations' dtype.
func (d *Driver) Precision(v engine.Variant) engine.Precision {
	if spec, ok := geometry(v); ok && spec.tf32 && v.Act == quant.F32 {
		return engine.TF32
	}
	return engine.ActPrecision(v.Act)
}

// Crossover returns the largest M at which qmv runs rather than qmm.
func (d *Driver) Crossover(p engine.Params) int { return crossover(p) }

// errClosed reports use of a closed driver.
var errClosed = fmt.Errorf("%w: cuda device is closed", engine.ErrClosed)

// do runs f on the device's thread unless the driver is closed.
func (d *Driver) do(f func() error) error {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return errClosed
	}
	if err := d.exec.Do(f); !errors.Is(err, osthread.ErrStopped) {
		return err
	}
	return errClosed
}

// memory is one device allocation.
type memory struct {
	ptr   uint64
	bytes int // requested
	size  int // allocated
}

// allocAlign is the granularity of allocation sizes: device pointers are
// 256-byte aligned, and sizes are rounded up to 256 bytes, so a kernel may
// read (not write) whole 256-byte blocks.
const allocAlign = 256

func roundUp(n, to int) int { return (n + to - 1) / to * to }

// Alloc allocates n bytes of device memory, zeroed.
func (d *Driver) Alloc(n int) (engine.Memory, error) {
	m := &memory{bytes: n, size: roundUp(max(n, 1), allocAlign)}
	err := d.do(func() error {
		if err := d.cu.check("cuMemAlloc_v2", d.cu.cuMemAlloc(&m.ptr, uint64(m.size))); err != nil {
			return err
		}
		if m.ptr%allocAlign != 0 {
			d.cu.cuMemFree(m.ptr)
			return fmt.Errorf("cuMemAlloc_v2 returned %#x, not %d-byte aligned", m.ptr, allocAlign)
		}
		if err := d.cu.check("cuMemsetD8Async", d.cu.cuMemsetD8Async(m.ptr, 0, uint64(m.size), d.stream)); err != nil {
			d.cu.cuMemFree(m.ptr)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.allocs[m] = struct{}{}
	d.mu.Unlock()
	return m, nil
}

// Free releases memory from Alloc; after Close it does nothing.
func (d *Driver) Free(mem engine.Memory) {
	m, ok := mem.(*memory)
	if !ok || m == nil {
		return
	}
	d.mu.Lock()
	_, live := d.allocs[m]
	delete(d.allocs, m)
	closed := d.closed
	d.mu.Unlock()
	if !live || closed {
		return
	}
	d.exec.Do(func() error { return d.cu.check("cuMemFree_v2", d.cu.cuMemFree(m.ptr)) })
}

func (d *Driver) memoryOf(mem engine.Memory) (*memory, error) {
	m, ok := mem.(*memory)
	if !ok || m == nil {
		return nil, fmt.Errorf("%w: memory %T is not from the cuda backend", engine.ErrArgs, mem)
	}
	return m, nil
}

// Upload copies src to the start of dst through pinned staging memory and
// waits for the copy.
func (d *Driver) Upload(dst engine.Memory, src []byte) error {
	m, err := d.memoryOf(dst)
	if err != nil {
		return err
	}
	if len(src) > m.bytes {
		return fmt.Errorf("%w: upload of %d bytes into %d", engine.ErrArgs, len(src), m.bytes)
	}
	if len(src) == 0 {
		return nil
	}
	return d.do(func() error {
		err := d.staging.upload(m.ptr, src)
		return errors.Join(err, d.staging.finish())
	})
}

// Download copies the start of src into dst through pinned staging memory,
// after the work already submitted.
func (d *Driver) Download(dst []byte, src engine.Memory) error {
	m, err := d.memoryOf(src)
	if err != nil {
		return err
	}
	if len(dst) > m.bytes {
		return fmt.Errorf("%w: download of %d bytes from %d", engine.ErrArgs, len(dst), m.bytes)
	}
	if len(dst) == 0 {
		return nil
	}
	return d.do(func() error {
		err := d.staging.download(dst, m.ptr)
		return errors.Join(err, d.staging.finish())
	})
}

// MemInfo returns the device's free and total memory in bytes.
func (d *Driver) MemInfo() (free, total uint64, err error) {
	err = d.do(func() error { return d.cu.check("cuMemGetInfo_v2", d.cu.cuMemGetInfo(&free, &total)) })
	return free, total, err
}

// Close frees the stream, the modules, the staging memory and any memory
// still allocated, and releases the primary context. Closing twice is
// harmless.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	mods := d.modules
	allocs := d.allocs
	d.modules, d.allocs = map[string]*module{}, map[*memory]struct{}{}
	d.mu.Unlock()
	cu := d.cu
	err := d.exec.Do(func() error {
		var errs []error
		errs = append(errs, cu.check("cuStreamSynchronize", cu.cuStreamSynchronize(d.stream)))
		errs = append(errs, d.staging.release())
		errs = append(errs, d.gemm.release(d))
		if d.graphs != nil {
			errs = append(errs, d.graphs.release(d))
		}
		for _, m := range mods {
			errs = append(errs, cu.check("cuModuleUnload", cu.cuModuleUnload(m.handle)))
		}
		for m := range allocs {
			errs = append(errs, cu.check("cuMemFree_v2", cu.cuMemFree(m.ptr)))
		}
		errs = append(errs, cu.check("cuStreamDestroy_v2", cu.cuStreamDestroy(d.stream)))
		errs = append(errs, cu.check("cuDevicePrimaryCtxRelease_v2", cu.cuDevicePrimaryCtxRelease(d.dev)))
		return errors.Join(errs...)
	})
	d.exec.Stop()
	return err
}
