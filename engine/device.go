package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/mlxq/mlxq/quant"
)

// Memory is a backend's handle to one allocation of device memory.
type Memory any

// Compiled is a backend's handle to a kernel ready to dispatch.
type Compiled any

// Driver is what a backend implements. The engine validates every call
// before it reaches the driver.
type Driver interface {
	// Name describes the device, such as "NVIDIA H100 80GB HBM3".
	Name() string
	// Alloc allocates bytes of device memory.
	Alloc(bytes int) (Memory, error)
	// Free releases memory from Alloc.
	Free(Memory)
	// Upload copies src to the start of dst, synchronously.
	Upload(dst Memory, src []byte) error
	// Download copies the start of src into dst, synchronously.
	Download(dst []byte, src Memory) error
	// Kernels lists the catalog kernels the driver implements, each for
	// every format it accepts and every activation dtype.
	Kernels() []Kernel
	// Compile prepares a kernel variant for dispatch; the engine caches
	// the result.
	Compile(Variant) (Compiled, error)
	// Precision returns the arithmetic the variant computes in.
	Precision(Variant) Precision
	// Crossover returns the largest M at which the plan runs the packed
	// matrix-vector kernel QMV for products like p (p.M is ignored); QMM
	// runs above it. It is measured on the device, not guessed. Drivers
	// without both kernels return 0.
	Crossover(p Params) int
	// NewQueue starts recording work for one commit.
	NewQueue() Queue
	// Close releases the device.
	Close() error
}

// Queue records work in order and runs it on Commit.
type Queue interface {
	// Write records a copy of src to the start of dst, ordered with the
	// dispatches around it; src may be reused once Write returns.
	Write(dst Memory, src []byte) error
	// Matmul records a matrix product kernel; the arguments have been
	// checked, and may change once Matmul returns.
	Matmul(Compiled, *MatmulArgs) error
	// Unpack records the unpack kernel, likewise.
	Unpack(Compiled, *UnpackArgs) error
	// Embed records the Embed kernel, likewise; a.Index holds a.IDs by
	// then (a Write recorded before).
	Embed(Compiled, *EmbedArgs) error
	// GatherMatmul records a gathered product kernel, likewise; a.Routing
	// holds r.Bytes() by then (a Write recorded before), and r is the
	// driver's to keep.
	GatherMatmul(c Compiled, a *GatherArgs, r *Routing) error
	// Commit runs the recorded work and waits for it to finish.
	Commit() error
}

// Timer is implemented by drivers that time work on the device's own clock
// (events on its stream) rather than the host's.
type Timer interface {
	// Time runs run warmup times untimed, then repeat times, and returns
	// the device time of each timed run. Encoding on the host before the
	// run's first commit is not counted; host gaps between commits of one
	// run are.
	Time(run func() error, warmup, repeat int) ([]time.Duration, error)
}

// Device is an open compute device of one backend.
type Device struct {
	backend string
	drv     Driver
	kernels []Kernel

	mu       sync.Mutex
	compiled map[Variant]*compiled
	closed   bool
}

// compiled is a kernel variant compiled once: ready is closed when c and
// err are set.
type compiled struct {
	ready chan struct{}
	c     Compiled
	err   error
}

// NewDevice wraps a driver; backends use it through Register.
func NewDevice(backend string, drv Driver) *Device {
	return &Device{backend: backend, drv: drv, kernels: drv.Kernels(), compiled: map[Variant]*compiled{}}
}

// Backend returns the name the backend registered, such as "cpu".
func (d *Device) Backend() string { return d.backend }

// Name describes the device.
func (d *Device) Name() string { return d.drv.Name() }

// Kernels lists the catalog kernels the device implements.
func (d *Device) Kernels() []Kernel { return slices.Clone(d.kernels) }

// Supports reports whether the device implements kernel k.
func (d *Device) Supports(k Kernel) bool { return slices.Contains(d.kernels, k) }

// Timer returns the device's own timer, or nil where the host clock is
// the only one (the CPU).
func (d *Device) Timer() Timer {
	t, _ := d.drv.(Timer)
	return t
}

// Precision returns the arithmetic kernel variant v computes in on the
// device, which sets its tolerance.
func (d *Device) Precision(v Variant) Precision { return d.drv.Precision(v) }

// Crossover returns the largest M at which the plan runs QMV for products
// like p; QMM runs above it. It is 0 on a device without both kernels.
func (d *Device) Crossover(p Params) int {
	if !d.Supports(QMV) || !d.Supports(QMM) {
		return 0
	}
	return d.drv.Crossover(p)
}

// compile returns the compiled kernel variant, compiling it on first use.
// Different variants compile at the same time; callers of one variant wait
// for its first compilation, and a failed one is tried again next time.
func (d *Device) compile(v Variant) (Compiled, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, fmt.Errorf("%w: device %s", ErrClosed, d.backend)
	}
	if !d.Supports(v.Kernel) {
		d.mu.Unlock()
		return nil, fmt.Errorf("%w: kernel %s on %s", ErrUnsupported, v.Kernel, d.backend)
	}
	if e, ok := d.compiled[v]; ok {
		d.mu.Unlock()
		<-e.ready
		if e.err == nil {
			return e.c, nil
		}
		return d.compile(v)
	}
	e := &compiled{ready: make(chan struct{})}
	d.compiled[v] = e
	d.mu.Unlock()

	e.c, e.err = d.drv.Compile(v)
	if e.err != nil {
		e.err = fmt.Errorf("%s: compiling %s: %w", d.backend, v, e.err)
		d.mu.Lock()
		delete(d.compiled, v)
		d.mu.Unlock()
	}
	close(e.ready)
	return e.c, e.err
}

// Prepare compiles kernel variants before their first dispatch, up to
// GOMAXPROCS at a time, so that a backend that compiles at run time (CUDA,
// Metal) does the work in parallel, once. Variants of kernels the device
// lacks are skipped. It returns the failures, joined.
func (d *Device) Prepare(vs []Variant) error {
	work := make(chan Variant)
	errs := make([]error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			for v := range work {
				if _, err := d.compile(v); err != nil {
					errs[i] = errors.Join(errs[i], err)
				}
			}
		})
	}
	for _, v := range vs {
		if d.Supports(v.Kernel) {
			work <- v
		}
	}
	close(work)
	wg.Wait()
	return errors.Join(errs...)
}

func (d *Device) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// Close releases the device. Buffers must be freed first.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	return d.drv.Close()
}

// Buffer is device memory holding a tensor of one dtype and shape.
type Buffer struct {
	dev   *Device
	mem   Memory
	dtype quant.DType
	shape []int
	n     int
	freed bool
}

// Alloc allocates a buffer for a tensor of the given dtype and shape.
func (d *Device) Alloc(dtype quant.DType, shape ...int) (*Buffer, error) {
	if dtype.Size() == 0 {
		return nil, fmt.Errorf("%w: alloc of dtype %v", ErrArgs, dtype)
	}
	n := 1
	for _, s := range shape {
		if s <= 0 || n > math.MaxInt/8/s {
			return nil, fmt.Errorf("%w: alloc of shape %v", ErrArgs, shape)
		}
		n *= s
	}
	if d.isClosed() {
		return nil, fmt.Errorf("%w: device %s", ErrClosed, d.backend)
	}
	mem, err := d.drv.Alloc(n * dtype.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: alloc %v %v: %w", d.backend, dtype, shape, err)
	}
	return &Buffer{dev: d, mem: mem, dtype: dtype, shape: slices.Clone(shape), n: n}, nil
}

// DType returns the element type.
func (b *Buffer) DType() quant.DType { return b.dtype }

// Shape returns the tensor shape.
func (b *Buffer) Shape() []int { return slices.Clone(b.shape) }

// Len returns the number of elements.
func (b *Buffer) Len() int { return b.n }

// Bytes returns the byte length.
func (b *Buffer) Bytes() int { return b.n * b.dtype.Size() }

// Memory returns the backend's handle; for backends only.
func (b *Buffer) Memory() Memory { return b.mem }

// Device returns the device the buffer lives on.
func (b *Buffer) Device() *Device { return b.dev }

// String describes the buffer, such as "F32[128 4096]".
func (b *Buffer) String() string { return fmt.Sprintf("%v%v", b.dtype, b.shape) }

// Free releases the buffer's memory. Freeing twice is harmless.
func (b *Buffer) Free() {
	if b == nil || b.freed {
		return
	}
	b.freed = true
	b.dev.drv.Free(b.mem)
	b.mem = nil
}

func (b *Buffer) usable(d *Device, what string) error {
	switch {
	case b == nil:
		return fmt.Errorf("%w: %s buffer is nil", ErrArgs, what)
	case b.freed:
		return fmt.Errorf("%w: %s buffer was freed", ErrClosed, what)
	case b.dev != d:
		return fmt.Errorf("%w: %s buffer belongs to device %s, not %s", ErrArgs, what, b.dev.backend, d.backend)
	}
	return nil
}

// Upload copies src (raw little-endian elements) to the start of dst. It is
// synchronous and must not touch buffers used by uncommitted work.
func (d *Device) Upload(dst *Buffer, src []byte) error {
	if err := dst.usable(d, "upload"); err != nil {
		return err
	}
	if len(src) > dst.Bytes() {
		return fmt.Errorf("%w: upload of %d bytes into %v (%d bytes)", ErrArgs, len(src), dst, dst.Bytes())
	}
	return d.drv.Upload(dst.mem, src)
}

// Download copies the start of src into dst, synchronously.
func (d *Device) Download(dst []byte, src *Buffer) error {
	if err := src.usable(d, "download"); err != nil {
		return err
	}
	if len(dst) > src.Bytes() {
		return fmt.Errorf("%w: download of %d bytes from %v (%d bytes)", ErrArgs, len(dst), src, src.Bytes())
	}
	return d.drv.Download(dst, src.mem)
}

// UploadFloat32 uploads float32 values into the start of a buffer of
// F32, F16 or BF16, rounding them to nearest even for the 16-bit types.
func (d *Device) UploadFloat32(dst *Buffer, src []float32) error {
	if dst != nil && !dst.dtype.IsFloat() {
		return fmt.Errorf("%w: float32 upload into %v", ErrArgs, dst)
	}
	if dst == nil {
		return d.Upload(dst, nil)
	}
	return d.Upload(dst, dst.dtype.Bytes(src))
}

// DownloadFloat32 fills dst from the start of a buffer of F32, F16 or
// BF16, widening 16-bit values exactly.
func (d *Device) DownloadFloat32(dst []float32, src *Buffer) error {
	if src != nil && !src.dtype.IsFloat() {
		return fmt.Errorf("%w: float32 download from %v", ErrArgs, src)
	}
	if src == nil {
		return d.Download(nil, src)
	}
	raw := make([]byte, src.dtype.Size()*len(dst))
	if err := d.Download(raw, src); err != nil {
		return err
	}
	src.dtype.Decode(dst, raw)
	return nil
}

// Float32Bytes returns the little-endian bytes of v.
func Float32Bytes(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(f))
	}
	return out
}
