package engine

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A collective takes open devices of one backend that implements
// Communicator.
func TestNewCollectiveChecks(t *testing.T) {
	a, b := NewDevice("a", newFake()), NewDevice("b", newFake())
	_, err := NewCollective(a, b)
	assert.ErrorIs(t, err, ErrArgs)
	assert.ErrorContains(t, err, "device 1 is b, device 0 a: want devices of one backend")

	_, err = NewCollective(a, NewDevice("a", newFake()))
	assert.ErrorIs(t, err, ErrUnsupported)
	assert.ErrorContains(t, err, "collectives on a")

	_, err = NewCollective(a, nil)
	assert.ErrorIs(t, err, ErrArgs)

	c := NewDevice("a", newFake())
	require.NoError(t, c.Close())
	_, err = NewCollective(a, c)
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorContains(t, err, "device 1 (a) is closed")
}
