package metal

import (
	"errors"
	"time"

	"github.com/ebitengine/purego/objc"

	"github.com/mlxq/mlxq/engine"
)

var _ engine.Timer = (*Driver)(nil)

var (
	selGPUStartTime = objc.RegisterName("GPUStartTime")
	selGPUEndTime   = objc.RegisterName("GPUEndTime")
)

// timing is the state of one timed run; the executor owns it.
type timing struct {
	start, end float64 // seconds, the GPU's clock
	started    bool
}

// note records a completed command buffer's GPU times into the run.
func (t *timing) note(cb objc.ID) {
	start := objc.Send[float64](cb, selGPUStartTime)
	end := objc.Send[float64](cb, selGPUEndTime)
	if !t.started || start < t.start {
		t.start = start
	}
	if end > t.end {
		t.end = end
	}
	t.started = true
}

// Time implements engine.Timer with the command buffers' GPU start and end
// times: a run is timed from the GPU start of the first command buffer it
// commits to the GPU end of the last, so host gaps between its commits
// count. Runs must not overlap another Time call on the same driver.
func (d *Driver) Time(run func() error, warmup, repeat int) ([]time.Duration, error) {
	for range warmup {
		if err := run(); err != nil {
			return nil, err
		}
	}
	defer d.do(func() error { d.timing = nil; return nil })
	out := make([]time.Duration, 0, repeat)
	for range repeat {
		t := &timing{}
		if err := d.do(func() error { d.timing = t; return nil }); err != nil {
			return nil, err
		}
		if err := run(); err != nil {
			return out, err
		}
		if err := d.do(func() error { d.timing = nil; return nil }); err != nil {
			return out, err
		}
		if !t.started {
			return out, errors.New("metal: timed run committed no work")
		}
		out = append(out, time.Duration((t.end-t.start)*float64(time.Second)))
	}
	return out, nil
}
