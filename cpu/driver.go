// Package cpu is mlxq's pure-Go backend. It implements every kernel of the
// engine's catalog with goroutines over output tiles, and uses vector
// instructions (through internal/qdot) for the SIMD and packed kernels
// where the processor has them. Every kernel computes in float32; 16-bit
// activations are widened on the way in and rounded on the way out. It
// registers itself as backend "cpu"; import it for its side effect:
//
//	import _ "github.com/mlxq/mlxq/cpu"
//
// Device memory is host memory. The packed kernels (qmv, qmm) read scales
// and biases in their stored dtype, decoding a few rows at a time, so a
// layer takes what its files take; the seed's kernels keep a float32 copy
// of 16-bit scales and biases, made on first use.
package cpu

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/internal/qdot"
	"github.com/mlxq/mlxq/quant"
)

// Name is the backend's registered name.
const Name = "cpu"

func init() {
	engine.Register(Name, 0, func() (engine.Driver, error) { return Open() })
	engine.RegisterOrdinals(Name, func(int) (engine.Driver, error) { return Open() })
}

// Driver is the CPU backend's engine.Driver.
type Driver struct {
	threads int
}

// Open returns a driver that runs kernels on GOMAXPROCS threads. Device
// memory is host memory read in place, so the host must be little-endian.
func Open() (*Driver, error) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		return nil, fmt.Errorf("%w: the cpu backend needs a little-endian host", engine.ErrUnavailable)
	}
	return &Driver{threads: runtime.GOMAXPROCS(0)}, nil
}

// Name describes the device, such as "amd64, 8 threads, avx2".
func (d *Driver) Name() string {
	return fmt.Sprintf("%s, %d threads, %s", runtime.GOARCH, d.threads, qdot.Impl())
}

// Kernels returns the whole catalog.
func (d *Driver) Kernels() []engine.Kernel { return engine.Kernels() }

// Precision returns the float32 precision of the activations' dtype: every
// kernel computes in float32.
func (d *Driver) Precision(v engine.Variant) engine.Precision { return engine.ActPrecision(v.Act) }

// Crossover returns the largest M at which qmv beats qmm; see crossover.
func (d *Driver) Crossover(p engine.Params) int { return crossover }

// memory is an allocation: bytes aligned for float32 access, and for 16-bit
// scale buffers a float32 copy made on first use by a kernel.
type memory struct {
	data []byte

	mu     sync.Mutex
	floats []float32
}

// Alloc allocates n zeroed bytes, 8-byte aligned.
func (d *Driver) Alloc(n int) (engine.Memory, error) {
	words := make([]uint64, (n+7)/8)
	return &memory{data: unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n)}, nil
}

// Free drops the memory; the garbage collector reclaims it.
func (d *Driver) Free(engine.Memory) {}

// Upload copies src into m.
func (d *Driver) Upload(m engine.Memory, src []byte) error {
	mem := m.(*memory)
	mem.mu.Lock()
	defer mem.mu.Unlock()
	copy(mem.data, src)
	mem.floats = nil
	return nil
}

// Download copies m into dst.
func (d *Driver) Download(dst []byte, m engine.Memory) error {
	copy(dst, m.(*memory).data)
	return nil
}

// Compile returns the Go function of a kernel variant: one per kernel,
// for every format and dtype.
func (d *Driver) Compile(v engine.Variant) (engine.Compiled, error) {
	switch v.Kernel {
	case engine.Unpack:
		return unpackKernel, nil
	case engine.Embed:
		return embed, nil
	}
	if g, ok := gatherKernels[v.Kernel]; ok {
		return g, nil
	}
	f, ok := matmulKernels[v.Kernel]
	if !ok {
		return nil, fmt.Errorf("no cpu implementation of %s", v.Kernel)
	}
	return f, nil
}

// NewQueue returns a queue that runs its work on Commit, in order.
func (d *Driver) NewQueue() engine.Queue { return &queue{threads: d.threads} }

// Close does nothing: the CPU holds no resources.
func (d *Driver) Close() error { return nil }

func asFloat32(b []byte) []float32 {
	if len(b) < 4 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// float32s returns the buffer's elements as float32: a view for F32, and
// for F16 and BF16 a decoded copy cached until the next upload.
func float32s(b *engine.Buffer) []float32 {
	if b == nil {
		return nil
	}
	mem := b.Memory().(*memory)
	if b.DType() == quant.F32 {
		return asFloat32(mem.data)[:b.Len()]
	}
	mem.mu.Lock()
	defer mem.mu.Unlock()
	if mem.floats == nil {
		mem.floats = b.DType().Floats(mem.data, b.Len())
	}
	return mem.floats
}

func bytesOf(b *engine.Buffer) []byte {
	if b == nil {
		return nil
	}
	return b.Memory().(*memory).data[:b.Bytes()]
}

// queue records closures and runs them on Commit.
type queue struct {
	threads int
	work    []func() error
}

func (q *queue) Write(m engine.Memory, src []byte) error {
	src = append([]byte(nil), src...)
	mem := m.(*memory)
	q.work = append(q.work, func() error {
		copy(mem.data, src)
		return nil
	})
	return nil
}

func (q *queue) Matmul(c engine.Compiled, a *engine.MatmulArgs) error {
	f := c.(matmulFunc)
	args := *a
	q.work = append(q.work, func() error {
		p := args.Params
		o := &operands{
			x:      activations(args.X, p.M*p.K),
			w:      bytesOf(args.W),
			scales: args.Scales,
			biases: args.Biases,
			bias:   float32s(args.Bias),
			y:      asFloat32(bytesOf(args.Y)),
		}
		if p.Act != quant.F32 {
			o.y = make([]float32, p.M*p.N)
		}
		f(q.threads, p, o)
		if p.Act != quant.F32 {
			p.Act.Encode(bytesOf(args.Y), o.y)
		}
		return nil
	})
	return nil
}

// activations returns the first n elements of an activation buffer as
// float32: a view for F32, a widened copy for F16 and BF16.
func activations(b *engine.Buffer, n int) []float32 {
	raw := bytesOf(b)
	if b.DType() == quant.F32 {
		return asFloat32(raw)[:n]
	}
	x := make([]float32, n)
	b.DType().Decode(x, raw)
	return x
}

func (q *queue) Unpack(c engine.Compiled, a *engine.UnpackArgs) error {
	f := c.(unpackFunc)
	args := *a
	q.work = append(q.work, func() error {
		f(q.threads, args.Rows, args.Cols, args.Bits, bytesOf(args.W), bytesOf(args.Codes))
		return nil
	})
	return nil
}

func (q *queue) Commit() error {
	for _, w := range q.work {
		if err := w(); err != nil {
			return err
		}
	}
	q.work = nil
	return nil
}
