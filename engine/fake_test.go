package engine

import (
	"errors"
	"fmt"
)

// fakeDriver keeps memory on the host and records what runs, so the
// engine's checks and bookkeeping can be tested without a backend.
type fakeDriver struct {
	kernels   []Kernel
	compiles  map[Variant]int
	crossover int
	ran       []string
	closed    bool
}

type fakeMem struct{ data []byte }

func newFake(kernels ...Kernel) *fakeDriver {
	if kernels == nil {
		kernels = Kernels()
	}
	return &fakeDriver{kernels: kernels, compiles: map[Variant]int{}, crossover: 8}
}

func (f *fakeDriver) Name() string                    { return "fake device" }
func (f *fakeDriver) Alloc(n int) (Memory, error)     { return &fakeMem{make([]byte, n)}, nil }
func (f *fakeDriver) Free(Memory)                     {}
func (f *fakeDriver) Kernels() []Kernel               { return f.kernels }
func (f *fakeDriver) NewQueue() Queue                 { return &fakeQueue{drv: f} }
func (f *fakeDriver) Close() error                    { f.closed = true; return nil }
func (f *fakeDriver) Upload(m Memory, b []byte) error { copy(m.(*fakeMem).data, b); return nil }
func (f *fakeDriver) Download(b []byte, m Memory) error {
	copy(b, m.(*fakeMem).data)
	return nil
}

func (f *fakeDriver) Compile(v Variant) (Compiled, error) {
	f.compiles[v]++
	return v.Kernel, nil
}

func (f *fakeDriver) Precision(v Variant) Precision { return ActPrecision(v.Act) }
func (f *fakeDriver) Crossover(Params) int          { return f.crossover }

type fakeQueue struct {
	drv  *fakeDriver
	work []func()
}

func (q *fakeQueue) Write(m Memory, b []byte) error {
	b = append([]byte(nil), b...)
	q.work = append(q.work, func() { copy(m.(*fakeMem).data, b) })
	return nil
}

func (q *fakeQueue) Matmul(c Compiled, a *MatmulArgs) error {
	p := a.Params
	q.work = append(q.work, func() {
		q.drv.ran = append(q.drv.ran, fmt.Sprintf("%v M=%d N=%d K=%d", c, p.M, p.N, p.K))
	})
	return nil
}

func (q *fakeQueue) Unpack(c Compiled, a *UnpackArgs) error {
	q.work = append(q.work, func() { q.drv.ran = append(q.drv.ran, fmt.Sprint(c)) })
	return nil
}

func (q *fakeQueue) Embed(c Compiled, a *EmbedArgs) error {
	p := a.Params
	q.work = append(q.work, func() {
		q.drv.ran = append(q.drv.ran, fmt.Sprintf("%v M=%d N=%d K=%d", c, p.M, p.N, p.K))
	})
	return nil
}

func (q *fakeQueue) GatherMatmul(c Compiled, a *GatherArgs, r *Routing) error {
	p := a.Params
	q.work = append(q.work, func() {
		q.drv.ran = append(q.drv.ran, fmt.Sprintf("%v M=%d N=%d K=%d tiles=%d", c, p.M, p.N, p.K, len(r.Tiles)))
	})
	return nil
}

func (q *fakeQueue) Commit() error {
	if q.work == nil {
		return errors.New("empty commit")
	}
	for _, w := range q.work {
		w()
	}
	return nil
}
