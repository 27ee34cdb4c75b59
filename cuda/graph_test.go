package cuda

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/quant"
)

// graphFake opens the fake GPU with graphs on, and a commit of two unpack
// launches of 4-bit words w into codes c1 and c2.
func graphFake(t *testing.T, f *fakeGPU) (dev *engine.Device, d *Driver, w, c1, c2 *engine.Buffer, commit func() error) {
	t.Helper()
	d, err := open(f.api(), fakeNVRTCLoader, config{graphs: true})
	require.NoError(t, err)
	dev = engine.NewDevice(Name, d)
	t.Cleanup(func() { assert.NoError(t, dev.Close()) })
	const rows, cols, bits = 2, 64, 4
	w, err = dev.Alloc(quant.U32, rows, cols*bits/32)
	require.NoError(t, err)
	c1, err = dev.Alloc(quant.U8, rows, cols)
	require.NoError(t, err)
	c2, err = dev.Alloc(quant.U8, rows, cols)
	require.NoError(t, err)
	k, err := d.Compile(unpackVariant(bits))
	require.NoError(t, err)
	commit = func() error {
		q := d.NewQueue()
		for _, c := range []*engine.Buffer{c1, c2} {
			if err := q.Unpack(k, &engine.UnpackArgs{Rows: rows, Cols: cols, Bits: bits, W: w, Codes: c}); err != nil {
				return err
			}
		}
		return q.Commit()
	}
	return dev, d, w, c1, c2, commit
}

// TestGraphReplay runs the same commit four times: the first launches its
// kernels, the second captures them into a graph and replays it, the
// others replay it; every run computes on the weights of its time.
func TestGraphReplay(t *testing.T) {
	f := newFakeGPU()
	dev, d, w, c1, c2, commit := graphFake(t, f)
	for run := range 4 {
		words := make([]byte, 2*32)
		for i := range words {
			words[i] = byte(run*16 + i)
		}
		require.NoError(t, dev.Upload(w, words))
		before := len(f.launches)
		require.NoError(t, commit(), "run %d", run)
		assert.Equal(t, before+2, len(f.launches), "run %d: both kernels ran", run)
		want := make([]byte, 2*64)
		for r := range 2 {
			quant.Unpack(want[r*64:(r+1)*64], words[r*32:(r+1)*32], 4)
		}
		for _, c := range []*engine.Buffer{c1, c2} {
			got := make([]byte, len(want))
			require.NoError(t, dev.Download(got, c))
			assert.Equal(t, want, got, "run %d", run)
		}
		wantGraphs := 0
		if run >= 1 {
			wantGraphs = 1
		}
		assert.Equal(t, wantGraphs, f.instantiated, "run %d: graphs made", run)
	}
	assert.Len(t, f.execs, 1)
	require.NoError(t, d.Close())
	assert.Empty(t, f.execs, "Close destroys the graphs")
	assert.Empty(t, f.graphs, "a graph is destroyed once instantiated")
}

// TestGraphNotTaken checks the commits that are launched one by one: a
// failed capture (then never tried again for that commit), a single
// launch, a commit with a copy, and graphs off.
func TestGraphNotTaken(t *testing.T) {
	f := newFakeGPU()
	f.captureCode = 1
	_, _, _, _, _, commit := graphFake(t, f)
	for run := range 3 {
		before := len(f.launches)
		require.NoError(t, commit(), "a failed capture is not an error")
		assert.Equal(t, before+2, len(f.launches), "run %d", run)
	}
	assert.Zero(t, f.instantiated)

	f2 := newFakeGPU()
	_, d2, w, c1, _, _ := graphFake(t, f2)
	k, err := d2.Compile(unpackVariant(4))
	require.NoError(t, err)
	for range 3 {
		q := d2.NewQueue()
		require.NoError(t, q.Write(w.Memory(), make([]byte, 64)))
		require.NoError(t, q.Unpack(k, &engine.UnpackArgs{Rows: 2, Cols: 64, Bits: 4, W: w, Codes: c1}))
		require.NoError(t, q.Unpack(k, &engine.UnpackArgs{Rows: 2, Cols: 64, Bits: 4, W: w, Codes: c1}))
		require.NoError(t, q.Commit())
		q = d2.NewQueue()
		require.NoError(t, q.Unpack(k, &engine.UnpackArgs{Rows: 2, Cols: 64, Bits: 4, W: w, Codes: c1}))
		require.NoError(t, q.Commit())
	}
	assert.Zero(t, f2.instantiated, "commits with a copy or one launch are not graphed")

	f3 := newFakeGPU()
	d3, err := open(f3.api(), fakeNVRTCLoader, config{})
	require.NoError(t, err)
	defer d3.Close()
	assert.Nil(t, d3.graphs, "graphs off")
}

// TestGraphCacheEvicts fills the cache past graphCap with distinct
// commits: the least recently used graphs are destroyed.
func TestGraphCacheEvicts(t *testing.T) {
	f := newFakeGPU()
	_, d, _, _, _, _ := graphFake(t, f)
	// The fake runs only unpack kernels; qmv launches are recorded.
	k, err := d.Compile(engine.Variant{Kernel: engine.QMV, Format: quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}, Act: quant.F32, Scale: quant.BF16})
	require.NoError(t, err)
	kk := k.(*kernel)
	ops := func(i int) []op {
		o := op{k: kk, grid: [3]uint32{1, 1, 1}, block: [3]uint32{32, 1, 1}}
		o.add(uint64(i), 0)
		return []op{o, o}
	}
	require.NoError(t, d.do(func() error {
		for i := range graphCap + 5 {
			for range 2 {
				if err := d.run(ops(i)); err != nil {
					return err
				}
			}
		}
		return nil
	}))
	assert.Equal(t, graphCap, d.graphs.n)
	assert.Len(t, f.execs, graphCap, "evicted graphs are destroyed")
	assert.Equal(t, graphCap+5, f.instantiated)
}
