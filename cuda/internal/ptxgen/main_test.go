package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/cuda"
	"github.com/mlxq/mlxq/shaders"
)

func TestExterns(t *testing.T) {
	ptx := ".version 8.0\n.target sm_80\n.extern .func  (.param .b32 func_retval0) __nv_fmaf_rn\n(\n\t.param .b32 a\n)\n;\n" +
		".extern .func __nv_sync\n(\n);\n.visible .entry mlxq_kernel()\n{\n}\n"
	assert.Equal(t, []string{"__nv_fmaf_rn", "__nv_sync"}, externs([]byte(ptx)))
	assert.Empty(t, externs([]byte(".visible .entry mlxq_kernel()\n{\n}\n")))
}

// TestCompileSample compiles a sample kernel with clang as the generator
// does, with the project's clang prelude.
func TestCompileSample(t *testing.T) {
	clang, err := exec.LookPath("clang-19")
	if err != nil {
		t.Skip("ptxgen: clang-19 not found")
	}
	prelude, err := shaders.CUDASource(preludeName)
	if err != nil {
		t.Skip("ptxgen: no " + preludeName + " in shaders/cuda")
	}
	tmp := t.TempDir()
	pre := filepath.Join(tmp, preludeName)
	require.NoError(t, os.WriteFile(pre, []byte(prelude), 0o644))
	src, err := os.ReadFile("testdata/sample.cu")
	require.NoError(t, err)
	inc, err := filepath.Abs("testdata")
	require.NoError(t, err)
	defs := cuda.Defines{Bits: 4}
	u := cuda.Unit{File: "sample.cu", Name: "sample/bits=4", Source: defs.Preamble("sample.cu") + string(src)}
	ptx, err := compile(clang, clangArgs("sm_80", "ptx80", inc, pre), tmp, 0, u)
	require.NoError(t, err)
	s := string(ptx)
	assert.Contains(t, s, ".target sm_80")
	assert.Contains(t, s, ".entry mlxq_kernel")
	assert.True(t, strings.Contains(s, "and.b32") || strings.Contains(s, "bfe.u32"), "the preamble's MLXQ_BITS=4 reached the kernel")

	bad := cuda.Unit{File: "bad.cu", Name: "bad", Source: "#error broken\n"}
	_, err = compile(clang, clangArgs("sm_80", "ptx80", inc, pre), tmp, 1, bad)
	assert.ErrorContains(t, err, "broken")
}
