package cpu

import (
	"fmt"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/quant"
)

// NewComm builds an in-process communicator over CPU drivers, so that
// several CPU devices stand in for GPUs: an all-reduce sums the ranks in
// rank order in float32 and rounds the sums once to the dtype; an
// all-gather copies. Every rank ends with the same values.
func (d *Driver) NewComm(drivers []engine.Driver) (engine.Comm, error) {
	for r, drv := range drivers {
		if _, ok := drv.(*Driver); !ok {
			return nil, fmt.Errorf("%w: rank %d's driver %T is not from the cpu backend", engine.ErrArgs, r, drv)
		}
	}
	return comm{}, nil
}

// comm is the CPU backend's engine.Comm. Commits run before they return,
// so the ranks' data is in place when a call comes.
type comm struct{}

func (comm) AllReduce(bufs []engine.Memory, dt quant.DType, count int) error {
	sum := make([]float32, count)
	part := make([]float32, count)
	for _, m := range bufs {
		dt.Decode(part, m.(*memory).data)
		for i, v := range part {
			sum[i] += v
		}
	}
	out := dt.Bytes(sum)
	for _, m := range bufs {
		write(m.(*memory), 0, out)
	}
	return nil
}

func (comm) AllGather(dst, src []engine.Memory, dt quant.DType, count int) error {
	n := count * dt.Size()
	for _, d := range dst {
		for r, s := range src {
			write(d.(*memory), r*n, s.(*memory).data[:n])
		}
	}
	return nil
}

func (comm) Close() error { return nil }

// write copies src into mem at byte offset off and drops mem's float32
// copy.
func write(mem *memory, off int, src []byte) {
	mem.mu.Lock()
	defer mem.mu.Unlock()
	copy(mem.data[off:], src)
	mem.floats = nil
}
