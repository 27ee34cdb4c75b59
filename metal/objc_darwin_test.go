package metal

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestObjCShapes checks the calls whose C shapes purego must get right: a
// 24-byte struct return (operatingSystemVersion), integer returns, strings
// both ways, and a dispatch with two MTLSize arguments by value (the
// contract suite's first product).
func TestObjCShapes(t *testing.T) {
	d, err := Open()
	if err != nil {
		t.Skip(strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	defer func() { assert.NoError(t, d.Close()) }()
	t.Log(d.Name())
	assert.GreaterOrEqual(t, d.os.Major, int64(11), "macOS version %s", d.os)
	assert.GreaterOrEqual(t, d.maxMemory, 16<<10, "threadgroup memory")
	assert.NotEmpty(t, d.name)
	require.NoError(t, d.do(func() error {
		s := newString("mlxq µ metal")
		defer release(s)
		assert.Equal(t, "mlxq µ metal", goString(s))
		return nil
	}))
}
