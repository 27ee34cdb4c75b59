package cuda

import (
	"errors"
	"fmt"
	"time"

	"github.com/mlxq/mlxq/engine"
)

var _ engine.Timer = (*Driver)(nil)

// timing is the state of one timed run; the executor owns it.
type timing struct {
	start, end uintptr
	started    bool
}

// Time implements engine.Timer with CUDA events recorded on the device's
// stream: a run is timed from the start of the first work it commits on
// the device to the end of the last.
// Runs must not overlap another Time call on the same driver.
func (d *Driver) Time(run func() error, warmup, repeat int) ([]time.Duration, error) {
	for range warmup {
		if err := run(); err != nil {
			return nil, err
		}
	}
	t := &timing{}
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
			if err := cu.check("cuEventRecord", cu.cuEventRecord(t.end, d.stream)); err != nil {
				return err
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
