package cuda

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/mlxq/mlxq/engine"
)

var _ engine.Timer = (*Driver)(nil)

// timing is the state of one timed run; the executor owns it.
type timing struct {
	start, end uintptr
	started    bool
	hold       *kernel // holds the stream while the host submits the run
}

// Hold times: the hold kernel runs for holdBase plus holdPerOp for each
// piece of work of the run's first commit (more than the host takes to
// submit one, about 10 us on the H200's host), at most holdMax.
const (
	holdBase  = 20 * time.Microsecond
	holdPerOp = 15 * time.Microsecond
	holdMax   = 5 * time.Millisecond
)

// holdFor returns how long the hold kernel runs before a commit of n ops.
func holdFor(n int) time.Duration {
	return min(holdBase+time.Duration(n)*holdPerOp, holdMax)
}

// warmupTime is the least time the warm-up runs of Time take, so that an
// idle GPU's clocks are up before the timed runs (an H200 idles at 345
// MHz; timings of a layer right after host work came out up to 1.7 times
// slower with two warm-up runs alone).
const warmupTime = 50 * time.Millisecond

// Time implements engine.Timer with CUDA events recorded on the device's
// stream: a run is timed on the device from the start of the first work
// it commits to the end of the last, the end event recorded behind each
// commit's work before the host waits for it. A short kernel launched
// before the start event holds the stream while the host submits the
// run's first commit, so the time is the device's, without the host's
// submission or wake-up latency (runs of several commits still include
// the gaps between them).
// The warm-up runs go on past warmup until they have taken warmupTime.
// Runs must not overlap another Time call on the same driver.
func (d *Driver) Time(run func() error, warmup, repeat int) ([]time.Duration, error) {
	start := time.Now()
	for i := 0; i < warmup || time.Since(start) < warmupTime; i++ {
		if err := run(); err != nil {
			return nil, err
		}
	}
	hold, err := d.internalKernel(engine.Variant{Kernel: kernelHold})
	if err != nil {
		return nil, err
	}
	t := &timing{hold: hold}
	cu := d.cu
	if err := d.do(func() error {
		if err := cu.check("cuEventCreate", cu.cuEventCreate(&t.start, 0)); err != nil {
			return err
		}
		return cu.check("cuEventCreate", cu.cuEventCreate(&t.end, 0))
	}); err != nil {
		return nil, err
	}
	defer d.do(func() error {
		d.timing = nil
		return errors.Join(cu.check("cuEventDestroy_v2", cu.cuEventDestroy(t.start)),
			cu.check("cuEventDestroy_v2", cu.cuEventDestroy(t.end)))
	})
	out := make([]time.Duration, 0, repeat)
	for range repeat {
		if err := d.do(func() error { t.started = false; d.timing = t; return nil }); err != nil {
			return nil, err
		}
		runErr := run()
		var ms float32
		err := d.do(func() error {
			d.timing = nil
			if runErr != nil {
				return nil
			}
			if !t.started {
				return fmt.Errorf("cuda: timed run committed no work")
			}
			if err := cu.check("cuEventSynchronize", cu.cuEventSynchronize(t.end)); err != nil {
				return err
			}
			return cu.check("cuEventElapsedTime", cu.cuEventElapsedTime(&ms, t.start, t.end))
		})
		if runErr != nil {
			return out, runErr
		}
		if err != nil {
			return out, err
		}
		out = append(out, time.Duration(float64(ms)*float64(time.Millisecond)))
	}
	return out, nil
}

// startTiming launches the hold kernel for a commit of n ops and records
// the start event behind it; it runs on the executor.
func (d *Driver) startTiming(t *timing, n int, slots *[maxParams]uint64, ptrs *[maxParams]unsafe.Pointer) error {
	o, err := d.launchOf(t.hold, engine.Params{})
	if err != nil {
		return err
	}
	o.add(uint64(holdFor(n).Nanoseconds()))
	if err := d.launchKernel(&o, slots, ptrs); err != nil {
		return err
	}
	if err := d.cu.check("cuEventRecord", d.cu.cuEventRecord(t.start, d.stream)); err != nil {
		return err
	}
	t.started = true
	return nil
}
