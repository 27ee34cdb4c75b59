package engine

import "fmt"

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

// Commit runs the recorded work and waits for it. The encoder cannot be
// used afterwards.
func (e *Encoder) Commit() error {
	if err := e.open(); err != nil {
		return err
	}
	e.done = true
	return e.q.Commit()
}
