package cpu_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/cpu"
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/engine/enginetest"
)

func TestContract(t *testing.T) {
	dev, err := engine.Open(cpu.Name)
	require.NoError(t, err)
	defer dev.Close()
	enginetest.TestDevice(t, dev)
}
