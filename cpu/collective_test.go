package cpu_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/cpu"
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/engine/enginetest"
	"github.com/mlxq/mlxq/quant"
)

// openDevices opens n CPU devices, "cpu:0" to "cpu:n-1".
func openDevices(t *testing.T, n int) []*engine.Device {
	t.Helper()
	devs := make([]*engine.Device, n)
	for i := range devs {
		d, err := engine.OpenDevice(cpu.Name + ":" + string(rune('0'+i)))
		require.NoError(t, err)
		t.Cleanup(func() { d.Close() })
		devs[i] = d
	}
	return devs
}

func TestCollective(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4} {
		c, err := engine.NewCollective(openDevices(t, n)...)
		require.NoError(t, err)
		assert.Equal(t, n, c.Size())
		enginetest.TestCollective(t, c)
		require.NoError(t, c.Close())
	}
}

// Buffers that do not match the collective's devices, dtypes or counts
// are errors that say what is wrong; nothing is exchanged then.
func TestCollectiveErrors(t *testing.T) {
	devs := openDevices(t, 3)
	_, err := engine.NewCollective(devs[0], devs[1], devs[0])
	assert.ErrorIs(t, err, engine.ErrArgs)
	assert.ErrorContains(t, err, "device 2 is device 0 again")
	_, err = engine.NewCollective()
	assert.ErrorIs(t, err, engine.ErrArgs)

	c, err := engine.NewCollective(devs[:2]...)
	require.NoError(t, err)
	defer c.Close()
	alloc := func(d *engine.Device, dt quant.DType, n int) *engine.Buffer {
		b, err := d.Alloc(dt, n)
		require.NoError(t, err)
		return b
	}
	a, b := alloc(devs[0], quant.F32, 8), alloc(devs[1], quant.F32, 8)
	cases := []struct {
		bufs  []*engine.Buffer
		count int
		msg   string
	}{
		{[]*engine.Buffer{a}, 8, "of 1 buffers over 2 devices"},
		{[]*engine.Buffer{b, a}, 8, "rank 0's buffer F32[8] is on rank 1's device"},
		{[]*engine.Buffer{a, alloc(devs[2], quant.F32, 8)}, 8, "rank 1's buffer F32[8] is on a device outside the collective"},
		{[]*engine.Buffer{a, alloc(devs[1], quant.BF16, 8)}, 8, "rank 1's buffer is BF16[8], rank 0's F32[8]"},
		{[]*engine.Buffer{alloc(devs[0], quant.U32, 8), alloc(devs[1], quant.U32, 8)}, 8, "want F32, F16 or BF16"},
		{[]*engine.Buffer{a, b}, 9, "holds 8 elements, want 9"},
		{[]*engine.Buffer{a, b}, 0, "of 0 elements"},
		{[]*engine.Buffer{a, nil}, 8, "buffer is nil"},
	}
	for _, tc := range cases {
		err := c.AllReduce(tc.bufs, tc.count)
		assert.ErrorIs(t, err, engine.ErrArgs, tc.msg)
		assert.ErrorContains(t, err, tc.msg)
	}
	err = c.AllGather([]*engine.Buffer{a, b}, []*engine.Buffer{alloc(devs[0], quant.F32, 4), alloc(devs[1], quant.F32, 4)}, 5)
	assert.ErrorContains(t, err, "source: rank 0's buffer F32[4] holds 4 elements, want 5")
	err = c.AllGather([]*engine.Buffer{a, b}, []*engine.Buffer{a, alloc(devs[1], quant.F32, 4)}, 4)
	assert.ErrorContains(t, err, "rank 0's source is its destination")
	err = c.AllGather([]*engine.Buffer{alloc(devs[0], quant.F32, 7), b}, []*engine.Buffer{alloc(devs[0], quant.F32, 4), alloc(devs[1], quant.F32, 4)}, 4)
	assert.ErrorContains(t, err, "destination: rank 0's buffer F32[7] holds 7 elements, want 8")

	a.Free()
	assert.ErrorIs(t, c.AllReduce([]*engine.Buffer{a, b}, 8), engine.ErrClosed)
	require.NoError(t, c.Close())
	assert.ErrorIs(t, c.AllReduce([]*engine.Buffer{alloc(devs[0], quant.F32, 8), b}, 8), engine.ErrClosed)
}

func TestOpenDevice(t *testing.T) {
	d, err := engine.OpenDevice("cpu:7")
	require.NoError(t, err)
	defer d.Close()
	assert.Equal(t, cpu.Name, d.Backend())
	for spec, want := range map[string]error{
		"cpu:-1":   engine.ErrArgs,
		"cpu:x":    engine.ErrArgs,
		"auto:0":   engine.ErrArgs,
		"nosuch:0": engine.ErrUnknownBackend,
		"nosuch":   engine.ErrUnknownBackend,
	} {
		_, err := engine.OpenDevice(spec)
		assert.ErrorIs(t, err, want, spec)
	}
	devs, err := engine.OpenDevices("cpu:0, cpu:1,cpu")
	require.NoError(t, err)
	assert.Len(t, devs, 3)
	for _, d := range devs {
		d.Close()
	}
	_, err = engine.OpenDevices("cpu:0,gpu:1")
	assert.ErrorIs(t, err, engine.ErrUnknownBackend)
}
