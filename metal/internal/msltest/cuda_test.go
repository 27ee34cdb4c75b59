package msltest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/metal"
	"github.com/mlxq/mlxq/quant"
)

// EnvClang names the clang with the NVPTX target (default clang-19).
const EnvClang = "MLXQ_CLANG"

// ptxVariants is the sample TestCUDAPTX compiles: every kernel with every
// activation dtype, and qmv and qmm with every width and mode.
func ptxVariants() []engine.Variant {
	var out []engine.Variant
	for _, v := range metal.Variants() {
		switch {
		case v.Kernel == engine.Unpack:
		case v.Kernel == engine.QMV || v.Kernel == engine.QMM:
			// Every format, one scale dtype each.
			if v.Mode == quant.Affine && v.Scale != []quant.DType{quant.F32, quant.F16, quant.BF16}[v.Bits%3] {
				continue
			}
			if v.Act != quant.BF16 && !(v.Bits == 4 && v.GroupSize == 64) {
				continue
			}
		default:
			if v.Scale != quant.BF16 || v.Bits != 4 && v.Kernel != engine.PerElement || v.Kernel == engine.PerElement && v.Bits != 3 {
				continue
			}
		}
		out = append(out, v)
	}
	return out
}

// TestCUDAPTX compiles Metal compile units, translated, as CUDA to PTX with
// clang (no CUDA toolkit), the way cuda/internal/ptxgen compiles the CUDA
// backend's kernels.
func TestCUDAPTX(t *testing.T) {
	clang, err := findClang()
	if err != nil {
		t.Skip(err)
	}
	if testing.Short() {
		t.Skip("compiles many units; skipped with -short")
	}
	here, err := filepath.Abs(".")
	require.NoError(t, err)
	cudaDir := filepath.Join(here, "..", "..", "..", "shaders", "cuda")
	dir := t.TempDir()
	vs := ptxVariants()
	parallel(t, vs, func(i int, v engine.Variant) error {
		ptx, err := compilePTX(clang, here, cudaDir, dir, fmt.Sprint(i), v)
		if err == nil && !strings.Contains(ptx, ".entry "+Entry) {
			err = fmt.Errorf("no .entry %s in the PTX", Entry)
		}
		return err
	})
	t.Logf("%d translated units compile to PTX (sm_90)", len(vs))
}

// findClang returns the clang of EnvClang (default clang-19), or why
// there is none.
func findClang() (string, error) {
	clang := os.Getenv(EnvClang)
	if clang == "" {
		clang = "clang-19"
	}
	if _, err := exec.LookPath(clang); err != nil {
		return "", fmt.Errorf("%s not found: compiling the translated kernels to PTX needs clang with the NVPTX target", clang)
	}
	return clang, nil
}

// parallel runs f on every variant of vs, one per CPU at a time, and
// reports the first few errors.
func parallel(t *testing.T, vs []engine.Variant, f func(i int, v engine.Variant) error) {
	t.Helper()
	var (
		mu   sync.Mutex
		errs []string
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, runtime.NumCPU())
	for i, v := range vs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(i, v); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("%v: %v", v, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i, e := range errs {
		if i == 3 {
			t.Errorf("... and %d more", len(errs)-3)
			break
		}
		t.Error(e)
	}
}

// compilePTX translates the unit of v and compiles it to PTX.
func compilePTX(clang, here, cudaDir, dir, name string, v engine.Variant) (string, error) {
	u, err := metal.CompileUnit(v)
	if err != nil {
		return "", err
	}
	src, _, err := Translate(u.Source)
	if err != nil {
		return "", err
	}
	in := filepath.Join(dir, name+".cu")
	out := filepath.Join(dir, name+".ptx")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		return "", err
	}
	cmd := exec.Command(clang, "-x", "cuda", "--cuda-device-only", "--cuda-gpu-arch=sm_90", "-nocudainc", "-nocudalib",
		"-Xclang", "-target-feature", "-Xclang", "+ptx80", "-O3", "-I", cudaDir,
		"-include", filepath.Join(here, "cuda_prelude.h"), "-S", "-o", out, in)
	msg, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: %w\n%s", u.Name, err, msg)
	}
	ptx, err := os.ReadFile(out)
	return string(ptx), err
}
