package enginetest

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/quant"
)

// TestCollective checks a collective's all-reduce and all-gather in every
// activation dtype, on counts that are not powers of two: sums of small
// integers, exact in every dtype, must be exact; sums of random values
// must stay within the dtype's tolerance of the float64 sum; gathered
// pieces must be copied bit for bit, and the elements past them left as
// they were.
func TestCollective(t *testing.T, c *engine.Collective) {
	rng := rand.New(rand.NewPCG(21, 22))
	devs := c.Devices()
	for _, dt := range engine.ActDTypes() {
		for _, count := range []int{1, 77, 4099} {
			t.Run(fmt.Sprintf("%v/%d", dt, count), func(t *testing.T) {
				testAllReduce(t, c, devs, dt, count, func() float32 { return float32(rng.IntN(17) - 8) }, 0)
				tol := engine.ActPrecision(dt).Tolerance()
				testAllReduce(t, c, devs, dt, count, func() float32 { return float32(rng.NormFloat64()) }, tol)
				testAllGather(t, c, devs, dt, count, rng)
			})
		}
	}
}

// testAllReduce sums count values of next, rounded to dt, over the ranks
// and checks every rank's sums against the float64 sum: exactly with tol
// 0, else within tol in the normwise relative error.
func testAllReduce(t *testing.T, c *engine.Collective, devs []*engine.Device, dt quant.DType, count int, next func() float32, tol float64) {
	t.Helper()
	want := make([]float64, count)
	bufs := make([]*engine.Buffer, len(devs))
	for r, dev := range devs {
		v := make([]float32, count+3)
		for i := range v {
			v[i] = dt.Round(next())
		}
		for i := range want {
			want[i] += float64(v[i])
		}
		bufs[r] = upload(t, dev, dt, dt.Bytes(v), len(v))
	}
	require.NoError(t, c.AllReduce(bufs, count))
	for r, dev := range devs {
		got := make([]float32, count)
		require.NoError(t, dev.DownloadFloat32(got, bufs[r]))
		if tol == 0 {
			exact := make([]float32, count)
			for i, w := range want {
				exact[i] = float32(w)
			}
			assert.Equal(t, exact, got, "all-reduce of %d %v integers, rank %d of %d", count, dt, r, len(devs))
			continue
		}
		assert.LessOrEqual(t, quant.RelErr(got, want), tol, "all-reduce of %d %v, rank %d of %d", count, dt, r, len(devs))
	}
}

// testAllGather gathers count random values of dt from every rank into
// destinations with two spare elements past the pieces, and checks them.
func testAllGather(t *testing.T, c *engine.Collective, devs []*engine.Device, dt quant.DType, count int, rng *rand.Rand) {
	t.Helper()
	n := len(devs)
	var want []byte
	src := make([]*engine.Buffer, n)
	dst := make([]*engine.Buffer, n)
	for r, dev := range devs {
		v := make([]float32, count)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		raw := dt.Bytes(v)
		want = append(want, raw...)
		src[r] = upload(t, dev, dt, raw, count)
		dst[r] = poisoned(t, dev, dt, 1, n*count+2)
	}
	require.NoError(t, c.AllGather(dst, src, count))
	for r, dev := range devs {
		got := make([]byte, dst[r].Bytes())
		require.NoError(t, dev.Download(got, dst[r]))
		assert.Equal(t, want, got[:len(want)], "all-gather of %d %v, rank %d of %d", count, dt, r, n)
		tail := make([]float32, 2)
		dt.Decode(tail, got[len(want):])
		checkPoison(t, "all-gather past the pieces", tail, 0)
	}
}
