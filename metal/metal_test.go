package metal_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/engine/enginetest"
	"github.com/mlxq/mlxq/metal"
)

// openMetal opens the Metal device, or skips the test with the reason.
func openMetal(t *testing.T) *engine.Device {
	t.Helper()
	dev, err := engine.Open(metal.Name)
	if err != nil {
		require.ErrorIs(t, err, engine.ErrUnavailable)
		t.Skip(strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	t.Cleanup(func() { assert.NoError(t, dev.Close()) })
	t.Logf("%s", dev.Name())
	return dev
}

// TestContract runs the engine's conformance suite on the Metal device.
func TestContract(t *testing.T) {
	dev := openMetal(t)
	enginetest.TestDevice(t, dev)
}

func TestRegistered(t *testing.T) {
	assert.Contains(t, engine.Backends(), metal.Name)
	if runtime.GOOS != "darwin" {
		_, err := metal.Open()
		require.Error(t, err)
		assert.True(t, errors.Is(err, engine.ErrUnavailable), "%v", err)
		assert.Contains(t, err.Error(), "metal: needs macOS")
	}
}
