package eval

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/cpu"
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/quant"
)

func TestCheckRows(t *testing.T) {
	assert.Equal(t, []int{0}, checkRows(1, 8))
	assert.Equal(t, []int{0, 1, 2}, checkRows(3, 8))
	assert.Equal(t, []int{0, 1, 2, 3, 4}, checkRows(5, 0), "0 checks every row")
	assert.Equal(t, []int{0, 1365, 2730, 4095}, checkRows(4096, 4))
	assert.Equal(t, []int{0, 9}, checkRows(10, 2))
	assert.Equal(t, []int{0}, checkRows(10, 1))
}

// The parallel reference is quant.Reference, bit for bit, and generated
// weights do not depend on the number of threads.
func TestReferenceAndGenerate(t *testing.T) {
	f := quant.Format{Mode: quant.Affine, Bits: 5, GroupSize: 32}
	m, bias, err := generate(600, 96, f, quant.F16, true, 3)
	require.NoError(t, err)
	require.NoError(t, m.Check())
	require.Len(t, bias, 600)
	x := inputRows(Uniform, 1, "layer", 3, 96, allRows(3))
	assert.Equal(t, quant.Reference(x, 3, m, bias), reference(x, 3, m, bias))

	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	m1, bias1, err := generate(600, 96, f, quant.F16, true, 3)
	require.NoError(t, err)
	assert.Equal(t, m, m1)
	assert.Equal(t, bias, bias1)
	assert.Equal(t, x[96:], inputRows(Uniform, 1, "layer", 3, 96, []int{1, 2}), "rows do not depend on the others")

	fp, _, err := generate(10, 64, quant.DefaultFormat(quant.NVFP4), quant.U8, false, 3)
	require.NoError(t, err)
	require.NoError(t, fp.Check())
	assert.Nil(t, fp.Biases)
}

func TestClosest(t *testing.T) {
	keys := []string{"name", "models", "synthetic", "seq_lens", "repeat", "warmup"}
	assert.Equal(t, "repeat", closest("repeats", keys))
	assert.Equal(t, "seq_lens", closest("seq_len", keys))
	assert.Equal(t, "synthetic", closest("synthetics", keys))
	assert.Equal(t, "", closest("colour", keys))
}

func TestNiceStep(t *testing.T) {
	for v, want := range map[float64]float64{0: 1, 0.03: 0.05, 1: 1, 1.2: 2, 3: 5, 7: 10, 420: 500} {
		assert.InDelta(t, want, niceStep(v), 1e-12, "%v", v)
	}
}

// A backend whose devices 0 to n-1 do not open leaves out the cases of n
// shards, with a note that says why.
func TestShardsUnavailable(t *testing.T) {
	drv, err := cpu.Open()
	require.NoError(t, err)
	dev := engine.NewDevice("cuda", drv)
	defer dev.Close()
	b := &Batch{cfg: &Config{Shards: []int{1, 2}, Split: SplitBoth}, groups: []map[int]*engine.Collective{nil}}
	b.groups[0] = b.openGroups(dev)
	assert.Empty(t, b.groups[0])
	assert.Equal(t, []sharding{{n: 1}}, b.shardings(0))
	require.Len(t, b.Notes(), 1)
	assert.Contains(t, b.Notes()[0], `cuda: the cases of 2 shards are left out: unknown backend "cuda"`)
	assert.NotContains(t, b.Notes()[0], "\n")
}
