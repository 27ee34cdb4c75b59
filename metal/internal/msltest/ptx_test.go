package msltest

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/metal"
	"github.com/mlxq/mlxq/quant"
	"github.com/mlxq/mlxq/shaders"
)

// Environment variables of the precompiled PTX, for a machine with a GPU
// and no clang.
const (
	// EnvPTX names a directory of every variant's translated unit
	// compiled to PTX, as TestWritePTX writes it: TestCUDAConformance
	// loads the PTX from there instead of compiling it with clang. A
	// missing or stale file is an error.
	EnvPTX = "MLXQ_MSL_PTX"
	// EnvPTXOut names the directory TestWritePTX writes (an absolute
	// path: go test runs in the package's directory); without it the
	// test skips.
	EnvPTXOut = "MLXQ_MSL_PTX_OUT"
)

//go:embed cuda_prelude.h
var cudaPrelude string

// fileNames maps a unit's name, such as
// "qmv/mode=0,bits=4,group=64,act=2,scale=2", to a file name.
var fileNames = strings.NewReplacer("/", ".", ",", ".", "=", "")

// ptxFile returns the name of the file holding v's PTX, such as
// "qmv.mode0.bits4.group64.act2.scale2.ptx".
func ptxFile(v engine.Variant) (string, error) {
	u, err := metal.CompileUnit(v)
	if err != nil {
		return "", err
	}
	return fileNames.Replace(u.Name) + ".ptx", nil
}

// stamp returns the first line of v's PTX file: a hash of what the PTX
// is compiled from (the translated unit and both preludes), so that a
// file older than the sources is found out.
func stamp(v engine.Variant) (string, error) {
	u, err := metal.CompileUnit(v)
	if err != nil {
		return "", err
	}
	src, _, err := Translate(u.Source)
	if err != nil {
		return "", err
	}
	clangPrelude, err := shaders.CUDASource("clang_prelude.h")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, s := range []string{src, cudaPrelude, clangPrelude} {
		fmt.Fprintf(h, "%d\n%s", len(s), s)
	}
	return "// msltest sources " + hex.EncodeToString(h.Sum(nil)) + "\n", nil
}

// readPTX reads v's PTX from directory dir, written by TestWritePTX.
func readPTX(dir string, v engine.Variant) ([]byte, error) {
	name, err := ptxFile(v)
	if err != nil {
		return nil, err
	}
	ptx, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("%s=%s: %w; write it with %s", EnvPTX, dir, err, writeCommand)
	}
	want, err := stamp(v)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(ptx, []byte(want)) {
		return nil, fmt.Errorf("%s=%s: %s is older than the kernel sources or preludes; rewrite it with %s", EnvPTX, dir, name, writeCommand)
	}
	return ptx, nil
}

// writeCommand writes the precompiled PTX.
const writeCommand = EnvPTXOut + "=DIR go test ./metal/internal/msltest -run TestWritePTX"

// TestWritePTX compiles every variant's translated unit to PTX with clang
// into the directory EnvPTXOut names, for TestCUDAConformance on a
// machine without clang (EnvPTX).
func TestWritePTX(t *testing.T) {
	out := os.Getenv(EnvPTXOut)
	if out == "" {
		t.Skipf("writes the translated kernels' PTX; set %s=DIR", EnvPTXOut)
	}
	clang, err := findClang()
	if err != nil {
		t.Fatal(err)
	}
	require.NoError(t, os.MkdirAll(out, 0o755))
	here, err := filepath.Abs(".")
	require.NoError(t, err)
	cudaDir := filepath.Join(here, "..", "..", "..", "shaders", "cuda")
	dir := t.TempDir()
	vs := metal.Variants()
	var total atomic.Int64
	parallel(t, vs, func(i int, v engine.Variant) error {
		n, err := writePTX(clang, here, cudaDir, dir, fmt.Sprint(i), out, v)
		total.Add(int64(n))
		return err
	})
	t.Logf("%d translated units compiled to PTX in %s, %.1f MB", len(vs), out, float64(total.Load())/1e6)
}

// writePTX compiles v's translated unit in dir and writes the PTX, after
// its stamp, to directory out; it returns the bytes written.
func writePTX(clang, here, cudaDir, dir, name, out string, v engine.Variant) (int, error) {
	ptx, err := compilePTX(clang, here, cudaDir, dir, name, v)
	if err != nil {
		return 0, err
	}
	if !strings.Contains(ptx, ".entry "+Entry) {
		return 0, fmt.Errorf("no .entry %s in the PTX", Entry)
	}
	s, err := stamp(v)
	if err != nil {
		return 0, err
	}
	file, err := ptxFile(v)
	if err != nil {
		return 0, err
	}
	data := s + ptx
	return len(data), os.WriteFile(filepath.Join(out, file), []byte(data), 0o644)
}

// TestReadPTX checks that readPTX finds a variant's file and rejects a
// missing or stale one, and, with EnvPTX set, that its directory holds
// every variant's PTX, up to date.
func TestReadPTX(t *testing.T) {
	dir := t.TempDir()
	v := engine.Variant{Kernel: engine.Unpack, Format: quant.Format{Bits: 4}}
	file, err := ptxFile(v)
	require.NoError(t, err)
	assert.Equal(t, "unpack.mode0.bits4.group0.act0.scale0.ptx", file)
	_, err = readPTX(dir, v)
	assert.ErrorContains(t, err, "write it with "+writeCommand)
	s, err := stamp(v)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, file), []byte(s+".entry mlxq_kernel\n"), 0o644))
	ptx, err := readPTX(dir, v)
	require.NoError(t, err)
	assert.Equal(t, s+".entry mlxq_kernel\n", string(ptx))
	// The stamp differs from variant to variant, so another's file is stale.
	w := engine.Variant{Kernel: engine.Unpack, Format: quant.Format{Bits: 5}}
	other, err := ptxFile(w)
	require.NoError(t, err)
	require.NoError(t, os.Rename(filepath.Join(dir, file), filepath.Join(dir, other)))
	_, err = readPTX(dir, w)
	assert.ErrorContains(t, err, "older than the kernel sources")

	all := os.Getenv(EnvPTX)
	if all == "" {
		return
	}
	vs := metal.Variants()
	parallel(t, vs, func(_ int, v engine.Variant) error {
		_, err := readPTX(all, v)
		return err
	})
	t.Logf("%s holds the PTX of all %d variants", all, len(vs))
}
