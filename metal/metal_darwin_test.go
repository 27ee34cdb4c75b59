package metal_test

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/engine/enginetest"
	"github.com/mlxq/mlxq/metal"
	"github.com/mlxq/mlxq/quant"
)

// TestEveryVariantCompiles builds the pipeline of every compile unit on
// the device: the Metal compiler's own check of the sources.
func TestEveryVariantCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles every variant; skipped with -short")
	}
	d, err := metal.Open()
	if err != nil {
		t.Skip(strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	defer func() { assert.NoError(t, d.Close()) }()
	for _, v := range metal.Variants() {
		if _, err := d.Compile(v); err != nil {
			if errors.Is(err, engine.ErrUnsupported) {
				t.Logf("%v: %v", v, err)
				continue
			}
			t.Errorf("%v: %v", v, err)
		}
	}
}

// TestTimer times a small product with the device's own clock.
func TestTimer(t *testing.T) {
	dev, err := engine.Open(metal.Name)
	if err != nil {
		t.Skip(strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	defer func() { assert.NoError(t, dev.Close()) }()
	timer := dev.Timer()
	require.NotNil(t, timer)
	rng := rand.New(rand.NewPCG(1, 2))
	l := enginetest.NewLayer(t, dev, rng, quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}, quant.BF16, 256, 512, true)
	x := enginetest.RandomX(rng, quant.F16, 4, 512)
	times, err := timer.Time(func() error {
		l.Run(t, engine.QMV, quant.F16, x, 4, 4)
		return nil
	}, 1, 3)
	require.NoError(t, err)
	require.Len(t, times, 3)
	for _, d := range times {
		assert.Positive(t, d)
	}
}
