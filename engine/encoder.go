package engine

import (
	"encoding/binary"
	"fmt"
)

// Encoder records dispatches on a device and submits them together on
// Commit, like a command buffer. Each dispatch is checked when recorded.
// An Encoder is used once and by one goroutine.
type Encoder struct {
	dev  *Device
	q    Queue
	n    int
	done bool
}

// NewEncoder starts recording work on the device.
func (d *Device) NewEncoder() *Encoder {
	return &Encoder{dev: d, q: d.drv.NewQueue()}
}

// Len returns the number of dispatches recorded.
func (e *Encoder) Len() int { return e.n }

func (e *Encoder) open() error {
	if e.done {
		return fmt.Errorf("%w: encoder already committed", ErrClosed)
	}
	return nil
}

// Matmul records matrix product kernel k with operands a; the driver takes
// a copy of a, so a may change once Matmul returns.
func (e *Encoder) Matmul(k Kernel, a *MatmulArgs) error {
	if err := e.open(); err != nil {
		return err
	}
	if err := CheckMatmul(e.dev, k, a); err != nil {
		return err
	}
	c, err := e.dev.compile(a.Variant(k))
	if err != nil {
		return err
	}
	if err := e.q.Matmul(c, a); err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	e.n++
	return nil
}

// Unpack records the Unpack kernel with operands a.
func (e *Encoder) Unpack(a *UnpackArgs) error {
	if err := e.open(); err != nil {
		return err
	}
	if err := CheckUnpack(e.dev, a); err != nil {
		return err
	}
	c, err := e.dev.compile(a.Variant())
	if err != nil {
		return err
	}
	if err := e.q.Unpack(c, a); err != nil {
		return fmt.Errorf("%s: %w", Unpack, err)
	}
	e.n++
	return nil
}

// Embed records the Embed kernel with operands a: a write of a.IDs into
// a.Index, then the lookup. The driver takes a copy of a.
func (e *Encoder) Embed(a *EmbedArgs) error {
	if err := e.open(); err != nil {
		return err
	}
	if err := CheckEmbed(e.dev, a); err != nil {
		return err
	}
	c, err := e.dev.compile(a.Variant())
	if err != nil {
		return err
	}
	ids := make([]byte, 0, 4*len(a.IDs))
	for _, id := range a.IDs {
		ids = binary.LittleEndian.AppendUint32(ids, uint32(id))
	}
	if err := e.q.Write(a.Index.mem, ids); err != nil {
		return fmt.Errorf("%s: ids: %w", Embed, err)
	}
	if err := e.q.Embed(c, a); err != nil {
		return fmt.Errorf("%s: %w", Embed, err)
	}
	e.n++
	return nil
}

// GatherMatmul records gathered product kernel k with operands a: a write
// of the routing of a.Indices (Route, in tiles of k's TileRows) into
// a.Routing, then the product. The driver takes a copy of a.
func (e *Encoder) GatherMatmul(k Kernel, a *GatherArgs) error {
	if err := e.open(); err != nil {
		return err
	}
	if err := CheckGather(e.dev, k, a); err != nil {
		return err
	}
	c, err := e.dev.compile(a.Variant(k))
	if err != nil {
		return err
	}
	r, err := Route(a.Indices, a.TopK, a.Experts, k.Spec().TileRows)
	if err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	r.Bias = a.Bias != nil
	if err := e.q.Write(a.Routing.mem, r.Bytes()); err != nil {
		return fmt.Errorf("%s: routing: %w", k, err)
	}
	if err := e.q.GatherMatmul(c, a, r); err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	e.n++
	return nil
}

// Commit runs the recorded work and waits for it. The encoder cannot be
// used afterwards.
func (e *Encoder) Commit() error {
	if err := e.open(); err != nil {
		return err
	}
	e.done = true
	return e.q.Commit()
}
