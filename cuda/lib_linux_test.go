//go:build linux

package cuda

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBind binds functions of the C library the way the CUDA and NVRTC
// symbols are bound: a missing symbol is an error, a present one works.
func TestBind(t *testing.T) {
	h, name, err := openFirst([]string{"libc-does-not-exist.so", "libc.so.6"}, nil)
	if err != nil {
		t.Skip("cuda: no libc.so.6 to bind against: " + err.Error())
	}
	assert.Equal(t, "libc.so.6", name)
	var strlen func(s *byte) uint64
	var getpid func() int32
	require.NoError(t, bind(h, name, []symbol{{&strlen, "strlen"}, {&getpid, "getpid"}}))
	s := cString("mlxq")
	assert.Equal(t, uint64(4), strlen(&s[0]))
	assert.Positive(t, getpid())

	var missing func() int32
	err = bind(h, name, []symbol{{&missing, "cuNoSuchFunction_v2"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "libc.so.6: symbol cuNoSuchFunction_v2 missing")
	assert.Nil(t, missing)
}

func TestOpenFirstMissing(t *testing.T) {
	_, _, err := openFirst([]string{"libmlxq-none.so.1", "libmlxq-none.so"}, []string{t.TempDir()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "libmlxq-none.so.1")
	assert.NotContains(t, err.Error(), "\n")
	t.Setenv("CUDA_HOME", "/opt/cuda-x")
	t.Setenv("CUDA_PATH", "")
	dirs := toolkitLibDirs()
	assert.Contains(t, dirs, "/opt/cuda-x/lib64")
	assert.Contains(t, dirs, "/usr/local/cuda/lib64")
	assert.True(t, strings.HasPrefix(dirs[0], "/opt/cuda-x"))
}

func TestWheelLibDirs(t *testing.T) {
	venv := t.TempDir()
	lib := filepath.Join(venv, "lib", "python3.12", "site-packages", "nvidia", "nccl", "lib")
	require.NoError(t, os.MkdirAll(lib, 0o755))
	t.Setenv("VIRTUAL_ENV", venv)
	dirs := wheelLibDirs("nvidia/nccl/lib", "nvidia/cu13/lib")
	assert.Equal(t, toolkitLibDirs(), dirs[:len(toolkitLibDirs())], "the toolkits come first")
	assert.Contains(t, dirs, lib)
	assert.NotContains(t, wheelLibDirs("nvidia/cublas/lib"), lib)
}
