package engine

import (
	"fmt"
	"slices"
	"sync"

	"github.com/mlxq/mlxq/quant"
)

// Comm is a backend's communicator over a group of its devices, one rank
// per device. Its calls take the ranks' memory in rank order, have been
// checked by the engine, and return once the data is in place on every
// rank, after the work already committed on each device.
type Comm interface {
	// AllReduce sums count elements of dtype over the ranks, element by
	// element, and leaves the sums at the start of every rank's buffer.
	AllReduce(bufs []Memory, dtype quant.DType, count int) error
	// AllGather copies the first count elements of src[r] to element
	// r·count of every rank's dst, for every rank r.
	AllGather(dst, src []Memory, dtype quant.DType, count int) error
	// Close releases the communicator.
	Close() error
}

// Communicator is implemented by drivers whose devices exchange buffers
// with other devices of the same backend.
type Communicator interface {
	// NewComm builds a communicator whose rank r is drivers[r]; the
	// drivers are distinct, of this driver's type, this one among them.
	NewComm(drivers []Driver) (Comm, error)
}

// Collective exchanges activation buffers (F32, F16 or BF16) between
// devices of one backend, as tensor-parallel layers need: an all-reduce
// that sums the partial outputs of the devices, and an all-gather that
// concatenates their pieces. The CUDA backend runs it through NCCL, the
// CPU backend in process. Each call returns once the data is in place on
// every device, after the work committed before it.
type Collective struct {
	devs []*Device
	comm Comm

	mu     sync.Mutex
	closed bool
}

// NewCollective builds a collective over devs, rank r being devs[r]: open,
// distinct devices of one backend whose driver implements Communicator.
func NewCollective(devs ...*Device) (*Collective, error) {
	if len(devs) == 0 {
		return nil, fmt.Errorf("%w: collective of no devices", ErrArgs)
	}
	drivers := make([]Driver, len(devs))
	for r, d := range devs {
		switch {
		case d == nil:
			return nil, fmt.Errorf("%w: collective: device %d is nil", ErrArgs, r)
		case d.isClosed():
			return nil, fmt.Errorf("%w: collective: device %d (%s) is closed", ErrClosed, r, d.backend)
		case d.backend != devs[0].backend:
			return nil, fmt.Errorf("%w: collective: device %d is %s, device 0 %s: want devices of one backend", ErrArgs, r, d.backend, devs[0].backend)
		}
		if q := slices.Index(devs[:r], d); q >= 0 {
			return nil, fmt.Errorf("%w: collective: device %d is device %d again: want distinct devices", ErrArgs, r, q)
		}
		drivers[r] = d.drv
	}
	c, ok := devs[0].drv.(Communicator)
	if !ok {
		return nil, fmt.Errorf("%w: collectives on %s", ErrUnsupported, devs[0].backend)
	}
	comm, err := c.NewComm(drivers)
	if err != nil {
		return nil, fmt.Errorf("%s: collective of %d devices: %w", devs[0].backend, len(devs), err)
	}
	return &Collective{devs: slices.Clone(devs), comm: comm}, nil
}

// Size returns the number of ranks.
func (c *Collective) Size() int { return len(c.devs) }

// Devices returns the devices, in rank order.
func (c *Collective) Devices() []*Device { return slices.Clone(c.devs) }

// Backend returns the backend of the devices.
func (c *Collective) Backend() string { return c.devs[0].backend }

// AllReduce sums the first count elements of bufs[r] over the ranks r and
// writes the sums over them in every buffer. bufs[r] lives on device r;
// the buffers share one activation dtype.
func (c *Collective) AllReduce(bufs []*Buffer, count int) error {
	mem, dt, err := c.check("all-reduce", bufs, count, 1)
	if err != nil {
		return err
	}
	if err := c.comm.AllReduce(mem, dt, count); err != nil {
		return fmt.Errorf("%s: all-reduce of %d %v over %d devices: %w", c.Backend(), count, dt, len(c.devs), err)
	}
	return nil
}

// AllGather copies the first count elements of src[r] to elements
// r·count to (r+1)·count of every dst, so that each dst holds the ranks'
// pieces one after the other. src[r] and dst[r] live on device r and
// share one activation dtype; each dst holds at least Size()·count
// elements.
func (c *Collective) AllGather(dst, src []*Buffer, count int) error {
	sm, dt, err := c.check("all-gather source", src, count, 1)
	if err != nil {
		return err
	}
	dm, ddt, err := c.check("all-gather destination", dst, count, len(c.devs))
	if err != nil {
		return err
	}
	if ddt != dt {
		return fmt.Errorf("%w: all-gather of %v into %v", ErrArgs, dt, ddt)
	}
	for r := range src {
		if src[r] == dst[r] {
			return fmt.Errorf("%w: all-gather: rank %d's source is its destination", ErrArgs, r)
		}
	}
	if err := c.comm.AllGather(dm, sm, dt, count); err != nil {
		return fmt.Errorf("%s: all-gather of %d %v over %d devices: %w", c.Backend(), count, dt, len(c.devs), err)
	}
	return nil
}

// check verifies one buffer per rank on the rank's device, of one
// activation dtype, each holding at least per·count elements, and returns
// their memory.
func (c *Collective) check(what string, bufs []*Buffer, count, per int) ([]Memory, quant.DType, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, 0, fmt.Errorf("%w: %s on a closed collective", ErrClosed, what)
	}
	if len(bufs) != len(c.devs) {
		return nil, 0, fmt.Errorf("%w: %s of %d buffers over %d devices", ErrArgs, what, len(bufs), len(c.devs))
	}
	if count <= 0 {
		return nil, 0, fmt.Errorf("%w: %s of %d elements", ErrArgs, what, count)
	}
	mem := make([]Memory, len(bufs))
	for r, b := range bufs {
		if b != nil && b.dev != c.devs[r] {
			if q := slices.Index(c.devs, b.dev); q >= 0 {
				return nil, 0, fmt.Errorf("%w: %s: rank %d's buffer %v is on rank %d's device", ErrArgs, what, r, b, q)
			}
			return nil, 0, fmt.Errorf("%w: %s: rank %d's buffer %v is on a device outside the collective", ErrArgs, what, r, b)
		}
		if err := b.usable(c.devs[r], fmt.Sprintf("%s rank %d", what, r)); err != nil {
			return nil, 0, err
		}
		if !slices.Contains(ActDTypes(), b.dtype) {
			return nil, 0, fmt.Errorf("%w: %s of %v, want F32, F16 or BF16", ErrArgs, what, b)
		}
		if b.dtype != bufs[0].dtype {
			return nil, 0, fmt.Errorf("%w: %s: rank %d's buffer is %v, rank 0's %v", ErrArgs, what, r, b, bufs[0])
		}
		if b.n < per*count {
			return nil, 0, fmt.Errorf("%w: %s: rank %d's buffer %v holds %d elements, want %d", ErrArgs, what, r, b, b.n, per*count)
		}
		mem[r] = b.mem
	}
	return mem, bufs[0].dtype, nil
}

// Close releases the communicator; the devices stay open. Closing twice
// is harmless.
func (c *Collective) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.comm.Close()
}
