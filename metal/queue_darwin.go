package metal

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/ebitengine/purego/objc"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/quant"
)

// op is one piece of recorded work: a dispatch, or (with k nil) a copy of
// data to the start of dst.
type op struct {
	k      *kernel
	launch Launch
	bufs   []*memory // by binding index; nil at the parameter block's index
	params []byte

	dst  *memory
	data []byte
}

// queue records dispatches and writes, and encodes them into one command
// buffer on Commit.
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
		q.ops = append(q.ops, op{dst: m, data: append([]byte(nil), src...)})
	}
	return nil
}

func (q *queue) kernelOf(c engine.Compiled) (*kernel, error) {
	k, ok := c.(*kernel)
	if !ok || k == nil {
		return nil, fmt.Errorf("%w: compiled kernel %T is not from the metal backend", engine.ErrArgs, c)
	}
	return k, nil
}

// memOf returns the buffer's memory, or the dummy buffer for nil.
func (q *queue) memOf(b *engine.Buffer) (*memory, error) {
	if b == nil {
		return q.d.dummy, nil
	}
	return q.d.memoryOf(b.Memory())
}

// record appends a dispatch of k for p with the buffers by binding.
func (q *queue) record(k *kernel, p engine.Params, params Params, by map[Binding]*engine.Buffer) error {
	o := op{k: k, launch: k.spec.Launch(p), bufs: make([]*memory, len(k.spec.Buffers)), params: params.Bytes()}
	for i := range 3 {
		if o.launch.Grid[i] <= 0 || o.launch.Threads[i] <= 0 {
			return fmt.Errorf("%v: empty dispatch: grid %v, threadgroup %v", k.variant, o.launch.Grid, o.launch.Threads)
		}
	}
	for i, b := range k.spec.Buffers {
		if b == BindParams {
			continue
		}
		m, err := q.memOf(by[b])
		if err != nil {
			return fmt.Errorf("%s buffer: %w", b, err)
		}
		o.bufs[i] = m
	}
	q.ops = append(q.ops, o)
	return nil
}

// Matmul records a matrix product dispatch; buffers as MatmulBindings.
func (q *queue) Matmul(c engine.Compiled, a *engine.MatmulArgs) error {
	k, err := q.kernelOf(c)
	if err != nil {
		return err
	}
	params := Params{M: uint32(a.M), N: uint32(a.N), K: uint32(a.K)}
	if a.Biases != nil {
		params.Flags |= FlagBiases
	}
	if a.Bias != nil {
		params.Flags |= FlagBias
	}
	return q.record(k, a.Params, params, map[Binding]*engine.Buffer{
		BindX: a.X, BindW: a.W, BindScales: a.Scales, BindBiases: a.Biases, BindBias: a.Bias, BindY: a.Y,
	})
}

// Unpack records an unpack dispatch; its geometry sees p.N = rows and
// p.K = cols.
func (q *queue) Unpack(c engine.Compiled, a *engine.UnpackArgs) error {
	k, err := q.kernelOf(c)
	if err != nil {
		return err
	}
	p := engine.Params{N: a.Rows, K: a.Cols, Format: quant.Format{Bits: a.Bits}}
	return q.record(k, p, Params{N: uint32(a.Rows), K: uint32(a.Cols)}, map[Binding]*engine.Buffer{BindW: a.W, BindCodes: a.Codes})
}

// Commit encodes the recorded work into one command buffer, commits it and
// waits for it.
func (q *queue) Commit() error {
	ops := q.ops
	q.ops = nil
	if len(ops) == 0 {
		return nil
	}
	return q.d.do(func() error { return q.d.run(ops) })
}

// run encodes and runs ops; it runs on the executor, in a pool.
func (d *Driver) run(ops []op) error {
	cb := d.queue.Send(selCommandBuffer)
	if cb == 0 {
		return errors.New("metal: commandBuffer failed")
	}
	var staging []objc.ID
	defer func() {
		for _, s := range staging {
			release(s)
		}
	}()
	var enc objc.ID
	for i := range ops {
		o := &ops[i]
		if o.k == nil {
			if enc != 0 {
				enc.Send(selEndEncoding)
				enc = 0
			}
			src := d.dev.Send(selNewBufferWithBytes, unsafe.Pointer(&o.data[0]), uint64(len(o.data)), uint64(storageModeShared))
			runtime.KeepAlive(o.data)
			if src == 0 {
				return fmt.Errorf("metal: staging buffer of %d bytes failed", len(o.data))
			}
			staging = append(staging, src)
			blit := cb.Send(selBlitCommandEncoder)
			blit.Send(selCopyBuffer, src, uint64(0), o.dst.buf, uint64(0), uint64(len(o.data)))
			blit.Send(selEndEncoding)
			continue
		}
		if enc == 0 {
			if enc = cb.Send(selComputeCommandEncoder); enc == 0 {
				return errors.New("metal: computeCommandEncoder failed")
			}
		}
		enc.Send(selSetComputePipelineState, o.k.pipe.pso)
		for idx, m := range o.bufs {
			if m == nil {
				enc.Send(selSetBytes, unsafe.Pointer(&o.params[0]), uint64(len(o.params)), uint64(idx))
				continue
			}
			enc.Send(selSetBuffer, m.buf, uint64(0), uint64(idx))
		}
		if o.launch.Memory > 0 {
			enc.Send(selSetThreadgroupMemory, uint64(o.launch.Memory), uint64(0))
		}
		enc.Send(selDispatchThreadgroups, sizeOf(o.launch.Grid), sizeOf(o.launch.Threads))
		runtime.KeepAlive(o.params)
	}
	if enc != 0 {
		enc.Send(selEndEncoding)
	}
	cb.Send(selCommit)
	cb.Send(selWaitUntilCompleted)
	if objc.Send[uint64](cb, selStatus) == commandBufferFailed {
		return fmt.Errorf("metal: command buffer of %d dispatches failed: %s", len(ops), errorText(cb.Send(selError)))
	}
	if d.timing != nil {
		d.timing.note(cb)
	}
	return nil
}
