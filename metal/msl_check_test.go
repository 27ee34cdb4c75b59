package metal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/quant"
)

// EnvRequireCheck, set to 1, makes TestMSLSyntax fail rather than skip
// where g++ is missing (CI sets it).
const EnvRequireCheck = "MLXQ_MSL_CHECK_REQUIRED"

// checkHeader is the stand-in for <metal_stdlib>, relative to this package.
var checkHeader = filepath.Join("..", "shaders", "metal", "msl_check.h")

// gxx returns the C++ compiler of the syntax check, or skips the test.
func gxx(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("g++")
	if err != nil {
		if os.Getenv(EnvRequireCheck) == "1" {
			t.Fatalf("g++ not found and %s=1: %v", EnvRequireCheck, err)
		}
		t.Skip("g++ not found: the Metal kernels' syntax check needs it")
	}
	return path
}

// checkUnit runs the syntax and type check on one unit's source and
// returns the compiler's messages on failure.
func checkUnit(ctx context.Context, cxx, header, src string) error {
	cmd := exec.CommandContext(ctx, cxx, "-fsyntax-only", "-x", "c++", "-std=c++17",
		"-Wno-attributes", "-Werror=double-promotion", "-include", header, "-")
	cmd.Stdin = strings.NewReader(src)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w\n%s", err, out.String())
	}
	return nil
}

// TestMSLSyntax compiles every compile unit the backend can build (every
// variant of every kernel) with g++ against msl_check.h, and checks that
// broken units fail the same check.
func TestMSLSyntax(t *testing.T) {
	cxx := gxx(t)
	header, err := filepath.Abs(checkHeader)
	require.NoError(t, err)
	ctx := context.Background()

	vs := Variants()
	require.NotEmpty(t, vs)
	start := time.Now()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	work := make(chan engine.Variant)
	for range max(runtime.NumCPU(), 2) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := range work {
				u, err := CompileUnit(v)
				if err == nil {
					err = checkUnit(ctx, cxx, header, u.Source)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%v (%s): %w", v, u.Name, err))
					mu.Unlock()
				}
			}
		}()
	}
	for _, v := range vs {
		work <- v
	}
	close(work)
	wg.Wait()
	for i, err := range errs {
		if i == 3 {
			t.Errorf("... and %d more failing units", len(errs)-3)
			break
		}
		t.Error(err)
	}
	t.Logf("%d compile units (%d kernels) pass g++ -fsyntax-only with msl_check.h in %v", len(vs), len(advertised()), time.Since(start).Round(time.Millisecond))

	t.Run("Broken", func(t *testing.T) { testBrokenUnits(t, cxx, header) })
}

// testBrokenUnits checks that the syntax check fails on units with a
// misspelt Metal function or a type error, and passes on the same unit
// unbroken.
func testBrokenUnits(t *testing.T, cxx, header string) {
	v := engine.Variant{Kernel: engine.QMV, Format: quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}, Act: quant.BF16, Scale: quant.F16}
	u, err := CompileUnit(v)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, checkUnit(ctx, cxx, header, u.Source), "the unbroken unit")

	// The statement after which the broken lines go, in qmv.metal.
	const anchor = "const uint m = tgid.y;\n"
	require.Contains(t, u.Source, anchor)
	cases := []struct {
		name, from, to, want string
	}{
		{"misspelt function", "simd_sum(acc[r])", "simd_summ(acc[r])", "simd_summ"},
		{"misspelt barrier", anchor, anchor + "threadgroup_barier(mem_flags::mem_threadgroup);\n", "threadgroup_barier"},
		{"vector as scalar", anchor, anchor + "const float2 mlxq_v = float2(1.0f, 2.0f);\nconst float mlxq_f = mlxq_v;\n", "cannot convert"},
		{"as_type of another size", anchor, anchor + "const uint mlxq_u = as_type<uint>(half(1.0f));\n", "sizes differ"},
		{"matrix of another element type", anchor, anchor + "simdgroup_float8x8 mlxq_a;\nconst device half* mlxq_h = (const device half*)w;\nsimdgroup_load(mlxq_a, mlxq_h, 8);\n", "simdgroup_load"},
		{"double arithmetic", anchor, anchor + "const float mlxq_d = float(m) * 0.5;\n", "double"},
		{"half from float without a cast", anchor, anchor + "const half mlxq_h = 1.0f;\n", "conversion"},
	}
	for _, c := range cases {
		src := strings.Replace(u.Source, c.from, c.to, 1)
		require.NotEqual(t, u.Source, src, c.name)
		err := checkUnit(ctx, cxx, header, src)
		if err == nil {
			t.Errorf("%s: the syntax check passed a broken unit", c.name)
			continue
		}
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: the check failed without mentioning %q:\n%v", c.name, c.want, err)
		}
	}
}
