package cuda

import (
	"testing"

	"github.com/mlxq/mlxq/cuda/internal/ptxbundle"
	"github.com/mlxq/mlxq/shaders"
)

// TestPTXBundleUpToDate fails when a kernel source changed since the
// embedded PTX bundle was generated, or when the bundle lacks a variant
// the backend advertises.
func TestPTXBundleUpToDate(t *testing.T) {
	hashes, err := ptxbundle.SourceHashes(shaders.CUDA())
	if err != nil {
		t.Fatal(err)
	}
	if len(hashes) == 0 {
		t.Skip("cuda: no kernel sources in shaders/cuda")
	}
	raw := shaders.PTXBundle()
	if raw == nil {
		t.Fatalf("shaders/cuda/%s is missing; generate it with %s", shaders.PTXBundleName, RegenerateCommand)
	}
	b, err := ptxbundle.Decode(raw)
	if err != nil {
		t.Fatalf("shaders/cuda/%s: %v; regenerate it with %s", shaders.PTXBundleName, err, RegenerateCommand)
	}
	if err := b.Manifest.Stale(hashes); err != nil {
		t.Fatalf("%v; regenerate it with %s", err, RegenerateCommand)
	}
	missing := 0
	for _, v := range BundleVariants() {
		u, err := CompileUnit(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := b.PTX(u.Name); !ok {
			if missing < 5 {
				t.Errorf("the PTX bundle lacks %s (%v)", u.Name, v)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("the PTX bundle lacks %d variants; regenerate it with %s", missing, RegenerateCommand)
	}
}
