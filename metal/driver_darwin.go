package metal

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/ebitengine/purego/objc"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/internal/osthread"
)

// Driver is the Metal backend's engine.Driver: the system's default Metal
// device and one command queue, driven from a single goroutine locked to
// its OS thread. All methods are safe for concurrent use.
type Driver struct {
	exec *osthread.Thread

	dev, queue objc.ID
	name       string
	os         osVersion
	bfloat     bool // Metal Shading Language 3.1 (macOS 14 or later)
	maxMemory  int  // threadgroup memory per threadgroup
	workingSet uint64
	dummy      *memory // bound for absent optional buffers

	kernels []engine.Kernel

	timing *timing // owned by the executor; non-nil during a timed run

	mu        sync.Mutex
	closed    bool
	pipelines map[string]*pipeline
	allocs    map[*memory]struct{}
}

// errClosed reports use of a closed driver.
var errClosed = fmt.Errorf("%w: metal device is closed", engine.ErrClosed)

// Open opens the system's default Metal device. Without one, or without
// an Apple GPU (family Apple7: M1 or later, which has the SIMD-group matrix
// functions the kernels use), it fails with an error wrapping
// engine.ErrUnavailable that says why.
func Open() (*Driver, error) {
	if err := loadMetal(); err != nil {
		return nil, fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
	}
	d := &Driver{pipelines: map[string]*pipeline{}, allocs: map[*memory]struct{}{}}
	exec, err := osthread.Start("metal", d.init, withPool)
	if err != nil {
		return nil, err
	}
	d.exec = exec
	d.kernels = advertised()
	dummy, err := d.Alloc(allocAlign)
	if err != nil {
		d.Close()
		return nil, err
	}
	d.dummy = dummy.(*memory)
	return d, nil
}

func openDriver() (engine.Driver, error) {
	d, err := Open()
	if err != nil {
		return nil, err
	}
	return d, nil
}

// init runs on the executor's thread: it finds the device and makes the
// command queue.
func (d *Driver) init() error {
	r, _, _ := purego.SyscallN(createDevice)
	dev := objc.ID(r)
	if dev == 0 && copyDevices != 0 {
		r, _, _ := purego.SyscallN(copyDevices)
		if all := objc.ID(r); all != 0 {
			if objc.Send[uint64](all, selCount) > 0 {
				dev = all.Send(selObjectAtIndex, uint64(0)).Send(selRetain)
			}
			release(all)
		}
	}
	if dev == 0 {
		return fmt.Errorf("%w: metal: no Metal device", engine.ErrUnavailable)
	}
	name := goString(dev.Send(selName))
	if !objc.Send[bool](dev, selSupportsFamily, int64(gpuFamilyApple7)) {
		release(dev)
		return fmt.Errorf("%w: metal: %s is not an Apple GPU of family Apple7 (M1) or later, which the kernels' SIMD-group matrices need", engine.ErrUnavailable, name)
	}
	queue := dev.Send(selNewCommandQueue)
	if queue == 0 {
		release(dev)
		return fmt.Errorf("%w: metal: %s: newCommandQueue failed", engine.ErrUnavailable, name)
	}
	d.dev, d.queue, d.name = dev, queue, name
	d.maxMemory = int(objc.Send[uint64](dev, selMaxThreadgroupMemory))
	d.workingSet = objc.Send[uint64](dev, selRecommendedWorkingSet)
	d.os = objc.Send[osVersion](classNSProcessInfo.Send(selProcessInfo), selOperatingSystemVersion)
	d.bfloat = d.os.Major >= 14
	return nil
}

// Name describes the device, as "Apple M2 Pro, macOS 14.5.0, 21.3 GiB
// working set".
func (d *Driver) Name() string {
	return fmt.Sprintf("%s, macOS %s, %.1f GiB working set", d.name, d.os, float64(d.workingSet)/(1<<30))
}

// BFloat reports whether the system compiles Metal Shading Language 3.1,
// which the variants with bf16 activations or scales need.
func (d *Driver) BFloat() bool { return d.bfloat }

// Kernels returns the catalog kernels with a geometry for every variant:
// the whole catalog.
func (d *Driver) Kernels() []engine.Kernel { return append([]engine.Kernel(nil), d.kernels...) }

// Precision returns the float32 precision of the activations' dtype: every
// kernel computes in float (the simdgroup matrices too).
func (d *Driver) Precision(v engine.Variant) engine.Precision { return engine.ActPrecision(v.Act) }

// Crossover returns the largest M at which qmv runs rather than qmm.
func (d *Driver) Crossover(p engine.Params) int { return crossover(p) }

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

// memory is one buffer in shared storage.
type memory struct {
	buf   objc.ID
	ptr   unsafe.Pointer // contents
	bytes int            // requested
	size  int            // allocated
}

func (m *memory) data() []byte { return unsafe.Slice((*byte)(m.ptr), m.size) }

// allocAlign is the granularity of allocation sizes, so that a kernel may
// read (never write) whole 256-byte blocks.
const allocAlign = 256

// Alloc allocates n bytes of shared memory, zeroed.
func (d *Driver) Alloc(n int) (engine.Memory, error) {
	m := &memory{bytes: n, size: (max(n, 1) + allocAlign - 1) / allocAlign * allocAlign}
	err := d.do(func() error {
		m.buf = d.dev.Send(selNewBufferWithLength, uint64(m.size), uint64(storageModeShared))
		if m.buf == 0 {
			return fmt.Errorf("metal: newBufferWithLength: %d bytes failed", m.size)
		}
		m.ptr = objc.Send[unsafe.Pointer](m.buf, selContents)
		if m.ptr == nil {
			release(m.buf)
			return errors.New("metal: a shared buffer has no contents")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	clear(m.data())
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
	d.exec.Do(func() error { release(m.buf); return nil })
}

func (d *Driver) memoryOf(mem engine.Memory) (*memory, error) {
	m, ok := mem.(*memory)
	if !ok || m == nil {
		return nil, fmt.Errorf("%w: memory %T is not from the metal backend", engine.ErrArgs, mem)
	}
	return m, nil
}

// live reports an error if the driver is closed.
func (d *Driver) live() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosed
	}
	return nil
}

// Upload copies src to the start of dst. Work is committed synchronously,
// so no dispatch is using dst.
func (d *Driver) Upload(dst engine.Memory, src []byte) error {
	m, err := d.memoryOf(dst)
	if err != nil {
		return err
	}
	if len(src) > m.bytes {
		return fmt.Errorf("%w: upload of %d bytes into %d", engine.ErrArgs, len(src), m.bytes)
	}
	if err := d.live(); err != nil {
		return err
	}
	copy(m.data(), src)
	return nil
}

// Download copies the start of src into dst, after the work already
// committed (Commit waits for its command buffer).
func (d *Driver) Download(dst []byte, src engine.Memory) error {
	m, err := d.memoryOf(src)
	if err != nil {
		return err
	}
	if len(dst) > m.bytes {
		return fmt.Errorf("%w: download of %d bytes from %d", engine.ErrArgs, len(dst), m.bytes)
	}
	if err := d.live(); err != nil {
		return err
	}
	copy(dst, m.data())
	return nil
}

// Close releases the pipelines, the buffers still allocated, the queue and
// the device. Closing twice is harmless.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed || d.exec == nil {
		d.closed = true
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	pipes, allocs := d.pipelines, d.allocs
	d.pipelines, d.allocs = map[string]*pipeline{}, map[*memory]struct{}{}
	d.mu.Unlock()
	err := d.exec.Do(func() error {
		for _, p := range pipes {
			release(p.pso)
		}
		for m := range allocs {
			release(m.buf)
		}
		release(d.queue)
		release(d.dev)
		return nil
	})
	d.exec.Stop()
	return err
}
