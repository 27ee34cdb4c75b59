package cuda

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/quant"
)

// maxParams is the most kernel parameters of the ABI (matrix products
// take nine).
const maxParams = 9

// op is one piece of recorded work: a kernel launch, or (with fn 0) a copy
// of data to device address dst.
type op struct {
	k      *kernel
	grid   [3]uint32
	block  [3]uint32
	shared uint32
	params [maxParams]uint64
	nparam int

	dst  uint64
	data []byte

	// gemm, where set, is a QMM through the cuBLAS path (cublas.go).
	gemm *gemmOp
}

// queue records launches and writes, and runs them in order on the
// device's stream on Commit, with one synchronisation.
type queue struct {
	d   *Driver
	ops []op
}

// NewQueue starts recording work for one commit.
func (d *Driver) NewQueue() engine.Queue { return &queue{d: d} }

// Write records a copy of src to the start of dst; src is copied now.
func (q *queue) Write(dst engine.Memory, src []byte) error {
	m, err := q.d.memoryOf(dst)
	if err != nil {
		return err
	}
	if len(src) > m.bytes {
		return fmt.Errorf("%w: write of %d bytes into %d", engine.ErrArgs, len(src), m.bytes)
	}
	if len(src) > 0 {
		q.ops = append(q.ops, op{dst: m.ptr, data: append([]byte(nil), src...)})
	}
	return nil
}

func ptrOf(b *engine.Buffer) uint64 {
	if b == nil {
		return 0
	}
	if m, ok := b.Memory().(*memory); ok && m != nil {
		return m.ptr
	}
	return 0
}

func (q *queue) kernelOf(c engine.Compiled) (*kernel, error) {
	k, ok := c.(*kernel)
	if !ok || k == nil {
		return nil, fmt.Errorf("%w: compiled kernel %T is not from the cuda backend", engine.ErrArgs, c)
	}
	return k, nil
}

// launch builds the launch of k for p.
func (q *queue) launch(k *kernel, p engine.Params) (op, error) { return q.d.launchOf(k, p) }

// launchOf builds the launch of k for p, checked against the device's
// limits.
func (d *Driver) launchOf(k *kernel, p engine.Params) (op, error) {
	o := op{k: k}
	if k.launch != nil {
		o.grid, o.block, o.shared = k.launch(p)
	} else {
		o.grid, o.block = k.spec.grid(p), k.spec.blockOf(p)
		if k.spec.shared != nil {
			o.shared = k.spec.shared(p)
		}
	}
	threads := uint64(1)
	for i := range 3 {
		if o.grid[i] == 0 || o.block[i] == 0 {
			return o, fmt.Errorf("%v: empty launch: grid %v, block %v", k, o.grid, o.block)
		}
		threads *= uint64(o.block[i])
	}
	if d.maxThreads > 0 && threads > uint64(d.maxThreads) {
		return o, fmt.Errorf("%v: block %v has %d threads, the device takes %d", k, o.block, threads, d.maxThreads)
	}
	if o.shared > defaultSharedLimit && int(o.shared) > d.maxShared {
		return o, fmt.Errorf("%v: %d bytes of shared memory, the device allows %d", k, o.shared, d.maxShared)
	}
	return o, nil
}

func (o *op) add(vs ...uint64) {
	for _, v := range vs {
		o.params[o.nparam] = v
		o.nparam++
	}
}

// i32 is an int kernel parameter in its 8-byte slot.
func i32(n int) uint64 { return uint64(uint32(int32(n))) }

// Matmul records a matrix product launch with the ABI's parameters
// (x, w, scales, biases, bias, y, M, N, K), or, where the cuBLAS path
// takes the product (cublas.go), its dequant, GEMM and bias steps; a
// kernel from LoadPTX never takes that path.
func (q *queue) Matmul(c engine.Compiled, a *engine.MatmulArgs) error {
	k, err := q.kernelOf(c)
	if err != nil {
		return err
	}
	if k.launch == nil {
		if g, err := q.d.gemmFor(k, a); err != nil {
			return err
		} else if g != nil {
			q.ops = append(q.ops, op{gemm: g})
			return nil
		}
	}
	o, err := q.launch(k, a.Params)
	if err != nil {
		return err
	}
	o.add(ptrOf(a.X), ptrOf(a.W), ptrOf(a.Scales), ptrOf(a.Biases), ptrOf(a.Bias), ptrOf(a.Y), i32(a.M), i32(a.N), i32(a.K))
	q.ops = append(q.ops, o)
	return nil
}

// Unpack records an unpack launch with parameters (w, codes, rows, cols);
// its geometry sees p.N = rows and p.K = cols.
func (q *queue) Unpack(c engine.Compiled, a *engine.UnpackArgs) error {
	k, err := q.kernelOf(c)
	if err != nil {
		return err
	}
	o, err := q.launch(k, engine.Params{N: a.Rows, K: a.Cols, Format: quant.Format{Bits: a.Bits}})
	if err != nil {
		return err
	}
	o.add(ptrOf(a.W), ptrOf(a.Codes), i32(a.Rows), i32(a.Cols))
	q.ops = append(q.ops, o)
	return nil
}

// Commit runs the recorded work on the stream and waits for it once. It
// stops at the first failing call and returns its error.
func (q *queue) Commit() error {
	ops := q.ops
	q.ops = nil
	if len(ops) == 0 {
		return nil
	}
	d := q.d
	return d.do(func() error {
		err := d.run(ops)
		return errors.Join(err, d.staging.finish())
	})
}

// run issues ops on the stream; it runs on the executor.
func (d *Driver) run(ops []op) error {
	total := 0
	for i := range ops {
		total += len(ops[i].data)
	}
	if total > 0 {
		if err := d.staging.reserve(total); err != nil {
			return err
		}
	}
	var slots [maxParams]uint64
	var ptrs [maxParams]unsafe.Pointer
	var pin runtime.Pinner
	pin.Pin(&slots[0])
	defer pin.Unpin()
	for i := range ptrs {
		ptrs[i] = unsafe.Pointer(&slots[i])
	}
	if t := d.timing; t != nil && !t.started {
		if err := d.startTiming(t, len(ops), &slots, &ptrs); err != nil {
			return err
		}
	}
	replayed, err := d.runGraph(ops, &slots, &ptrs)
	if err != nil {
		return err
	}
	if !replayed {
		if err := d.issue(ops, &slots, &ptrs); err != nil {
			return err
		}
	}
	if t := d.timing; t != nil {
		// Behind the commit's last work, before the host waits for it.
		return d.cu.check("cuEventRecord", d.cu.cuEventRecord(t.end, d.stream))
	}
	return nil
}

// issue launches ops one by one, copies and cuBLAS products included; it
// runs on the executor.
func (d *Driver) issue(ops []op, slots *[maxParams]uint64, ptrs *[maxParams]unsafe.Pointer) error {
	for i := range ops {
		o := &ops[i]
		if o.gemm != nil {
			if err := d.runGEMM(o.gemm, slots, ptrs); err != nil {
				return err
			}
			continue
		}
		if o.k == nil {
			if err := d.staging.upload(o.dst, o.data); err != nil {
				return err
			}
			continue
		}
		if err := d.launchKernel(o, slots, ptrs); err != nil {
			return err
		}
	}
	return nil
}

// launchKernel issues the kernel launch o on the stream, its parameters
// copied into slots, which ptrs point at (pinned by the caller). It runs
// on the executor.
func (d *Driver) launchKernel(o *op, slots *[maxParams]uint64, ptrs *[maxParams]unsafe.Pointer) error {
	m := o.k.mod
	if o.shared > defaultSharedLimit && o.shared > m.shared {
		if err := d.cu.check("cuFuncSetAttribute", d.cu.cuFuncSetAttribute(m.fn, funcAttrMaxDynamicShared, int32(o.shared))); err != nil {
			return fmt.Errorf("%v: %w", o.k, err)
		}
		m.shared = o.shared
	}
	copy(slots[:], o.params[:o.nparam])
	code := d.cu.cuLaunchKernel(m.fn, o.grid[0], o.grid[1], o.grid[2], o.block[0], o.block[1], o.block[2], o.shared, d.stream, &ptrs[0], nil)
	if err := d.cu.check("cuLaunchKernel", code); err != nil {
		return fmt.Errorf("%v (grid %v, block %v, %d bytes shared): %w", o.k, o.grid, o.block, o.shared, err)
	}
	return nil
}
