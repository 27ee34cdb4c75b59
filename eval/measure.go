package eval

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/layers"
	"github.com/mlxq/mlxq/quant"
)

// Timing sums up the timed runs of a layer.
type Timing struct {
	// Median, Min and Max are the times of one run: an Encode and a Commit.
	Median, Min, Max time.Duration
	// Runs is the number of timed runs.
	Runs int
}

// Measure uploads the m rows of x into the layer's input buffer, runs the
// layer warmup times untimed, then repeat times timed (one Encode and one
// Commit each, x staying on the device), and returns the m rows of y that
// the last run wrote, with the timing. Runs are timed on the device's own
// clock where it has one (engine.Device.Timer: CUDA events), else on the
// host's.
func Measure(l *layers.QuantLinear, x []float32, m, warmup, repeat int) ([]float32, Timing, error) {
	if repeat < 1 {
		return nil, Timing{}, fmt.Errorf("layer %s: repeat %d, want at least 1", l.Name, repeat)
	}
	if len(x) != m*l.In {
		return nil, Timing{}, fmt.Errorf("layer %s: x has %d values, want M·In = %d·%d", l.Name, len(x), m, l.In)
	}
	dev := l.Device()
	if err := dev.UploadFloat32(l.Input(), x); err != nil {
		return nil, Timing{}, fmt.Errorf("layer %s: %w", l.Name, err)
	}
	return timeRuns(dev, l.Name, func(e *engine.Encoder) error {
		_, err := l.Encode(e, l.Input(), m)
		return err
	}, l.Output(), m*l.Out, warmup, repeat)
}

// MeasureEmbedding times the lookup of ids as Measure times a layer (one
// Encode and one Commit per run) and returns the rows the last run wrote,
// with the timing.
func MeasureEmbedding(l *layers.QuantEmbedding, ids []int32, warmup, repeat int) ([]float32, Timing, error) {
	return timeRuns(l.Device(), l.Name, func(e *engine.Encoder) error {
		_, err := l.Encode(e, ids)
		return err
	}, l.Output(), len(ids)*l.Dims, warmup, repeat)
}

// MeasureSwitch times the m rows of x through their experts indices as
// Measure times a layer, x staying on the device, and returns y
// [m, TopK, Out] of the last run, with the timing.
func MeasureSwitch(l *layers.SwitchLinear, x []float32, indices []int32, m, warmup, repeat int) ([]float32, Timing, error) {
	if len(x) != m*l.In {
		return nil, Timing{}, fmt.Errorf("layer %s: x has %d values, want M·In = %d·%d", l.Name, len(x), m, l.In)
	}
	dev := l.Device()
	if err := dev.UploadFloat32(l.Input(), x); err != nil {
		return nil, Timing{}, fmt.Errorf("layer %s: %w", l.Name, err)
	}
	return timeRuns(dev, l.Name, func(e *engine.Encoder) error {
		_, err := l.Encode(e, l.Input(), indices, m)
		return err
	}, l.Output(), m*l.TopK*l.Out, warmup, repeat)
}

// timeRuns times runs of one encode and one commit, warmup untimed and
// repeat timed, on the device's own clock where it has one, and returns
// the first n values of out after the last run, with the timing.
func timeRuns(dev *engine.Device, name string, encode func(*engine.Encoder) error, out *engine.Buffer, n, warmup, repeat int) ([]float32, Timing, error) {
	if repeat < 1 {
		return nil, Timing{}, fmt.Errorf("layer %s: repeat %d, want at least 1", name, repeat)
	}
	once := func() error {
		e := dev.NewEncoder()
		if err := encode(e); err != nil {
			return err
		}
		if err := e.Commit(); err != nil {
			return fmt.Errorf("layer %s: %w", name, err)
		}
		return nil
	}
	timer := engine.Timer(hostTimer{})
	if t := dev.Timer(); t != nil {
		timer = t
	}
	times, err := timer.Time(once, warmup, repeat)
	if err != nil {
		return nil, Timing{}, err
	}
	y := make([]float32, n)
	if err := dev.DownloadFloat32(y, out); err != nil {
		return nil, Timing{}, fmt.Errorf("layer %s: %w", name, err)
	}
	slices.Sort(times)
	return y, Timing{Median: times[repeat/2], Min: times[0], Max: times[repeat-1], Runs: repeat}, nil
}

// hostTimer times runs on the host's clock.
type hostTimer struct{}

// Time runs run warmup times, then times repeat runs.
func (hostTimer) Time(run func() error, warmup, repeat int) ([]time.Duration, error) {
	for range warmup {
		if err := run(); err != nil {
			return nil, err
		}
	}
	times := make([]time.Duration, repeat)
	for i := range times {
		start := time.Now()
		if err := run(); err != nil {
			return nil, err
		}
		times[i] = time.Since(start)
	}
	return times, nil
}

// checkRows returns the rows of an m-row product that are checked against
// the reference: all of them when limit is 0 or at least m, else limit rows
// spread evenly from the first to the last.
func checkRows(m, limit int) []int {
	n := m
	if limit > 0 && limit < m {
		n = limit
	}
	rows := make([]int, n)
	for i := range rows {
		if n > 1 {
			rows[i] = i * (m - 1) / (n - 1)
		}
	}
	return rows
}

// reference computes quant.Reference for x (rows of m.Cols values) with the
// matrix rows split over the processors; the result is the same.
func reference(x []float32, rows int, m *quant.Matrix, bias []float32) []float64 {
	chunks := min(runtime.GOMAXPROCS(0), m.Rows)
	parts := make([][]float64, chunks)
	var wg sync.WaitGroup
	for c := range chunks {
		r0, r1 := c*m.Rows/chunks, (c+1)*m.Rows/chunks
		wg.Go(func() {
			parts[c] = quant.Reference(x, rows, subMatrix(m, r0, r1), subSlice(bias, r0, r1))
		})
	}
	wg.Wait()
	y := make([]float64, rows*m.Rows)
	for c, part := range parts {
		r0, r1 := c*m.Rows/chunks, (c+1)*m.Rows/chunks
		for i := range rows {
			copy(y[i*m.Rows+r0:i*m.Rows+r1], part[i*(r1-r0):(i+1)*(r1-r0)])
		}
	}
	return y
}

// subMatrix returns rows [r0, r1) of m, viewing its data.
func subMatrix(m *quant.Matrix, r0, r1 int) *quant.Matrix {
	s := *m
	s.Rows = r1 - r0
	s.Weight = m.Weight[r0*m.RowBytes() : r1*m.RowBytes()]
	g := m.Groups() * m.ScaleType.Size()
	s.Scales = m.Scales[r0*g : r1*g]
	if m.Biases != nil {
		s.Biases = m.Biases[r0*g : r1*g]
	}
	return &s
}

func subSlice(v []float32, i, j int) []float32 {
	if v == nil {
		return nil
	}
	return v[i:j]
}
