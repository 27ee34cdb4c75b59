package eval

import (
	"fmt"
	"slices"

	"github.com/mlxq/mlxq/layers"
)

// MeasureParallel times a layer split over several devices as Measure
// times a layer: x is uploaded into the shards' inputs once, then each run
// is every shard's product (on all the devices at once) and the
// collective, on the host's clock, which spans the devices. It returns
// the m rows of y with the timing.
func MeasureParallel(p *layers.ParallelLinear, x []float32, m, warmup, repeat int) ([]float32, Timing, error) {
	if repeat < 1 {
		return nil, Timing{}, fmt.Errorf("layer %s: repeat %d, want at least 1", p.Name, repeat)
	}
	y, err := p.Forward(x, m)
	if err != nil {
		return nil, Timing{}, err
	}
	xs := p.Inputs()
	times, err := hostTimer{}.Time(func() error {
		_, err := p.Run(xs, m)
		return err
	}, warmup, repeat)
	if err != nil {
		return nil, Timing{}, err
	}
	slices.Sort(times)
	return y, Timing{Median: times[repeat/2], Min: times[0], Max: times[repeat-1], Runs: repeat}, nil
}
