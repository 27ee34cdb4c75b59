package cuda

import (
	"testing"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/quant"
)

// allVariants lists every variant of kernel k the engine can ask for.
func allVariants(k engine.Kernel) []engine.Variant {
	if k == engine.Unpack {
		var out []engine.Variant
		for _, bits := range []int{2, 3, 4, 5, 6, 8} {
			out = append(out, engine.Variant{Kernel: k, Format: quant.Format{Bits: bits}})
		}
		return out
	}
	var fs []quant.Format
	for _, bits := range []int{2, 3, 4, 5, 6, 8} {
		for _, gs := range []int{32, 64, 128} {
			fs = append(fs, quant.Format{Mode: quant.Affine, Bits: bits, GroupSize: gs})
		}
	}
	fs = append(fs, quant.Format{Mode: quant.MXFP4, Bits: 4, GroupSize: 32},
		quant.Format{Mode: quant.MXFP8, Bits: 8, GroupSize: 32},
		quant.Format{Mode: quant.NVFP4, Bits: 4, GroupSize: 16})
	var out []engine.Variant
	for _, f := range fs {
		if k.Accepts(f) != nil {
			continue
		}
		scales := []quant.DType{quant.U8}
		if f.Mode == quant.Affine {
			scales = []quant.DType{quant.F32, quant.F16, quant.BF16}
		}
		for _, act := range []quant.DType{quant.F32, quant.F16, quant.BF16} {
			for _, s := range scales {
				out = append(out, engine.Variant{Kernel: k, Format: f, Act: act, Scale: s})
			}
		}
	}
	return out
}

func TestGeometryCoversEveryVariant(t *testing.T) {
	for _, k := range engine.Kernels() {
		vs := allVariants(k)
		if len(vs) == 0 {
			t.Errorf("%v: no variants", k)
		}
		for _, v := range vs {
			spec, ok := geometry(v)
			if !ok {
				t.Errorf("%v: no geometry", v)
				continue
			}
			threads := spec.block[0] * spec.block[1] * spec.block[2]
			if threads == 0 || threads > 1024 || threads%32 != 0 {
				t.Errorf("%v: block %v", v, spec.block)
			}
			if spec.tf32 != (k == engine.QMM && v.Act == quant.F32) {
				t.Errorf("%v: tf32 = %v", v, spec.tf32)
			}
			for _, m := range []int{1, 7, 4096, 8192} {
				for _, n := range []int{13, 16384, 32768} {
					for _, kk := range []int{96, 16384} {
						p := engine.Params{M: m, N: n, K: kk, Format: v.Format, Act: v.Act}
						g := spec.grid(p)
						if b := spec.blockOf(p); b[0]*b[1]*b[2] == 0 || b[0]*b[1]*b[2] > 1024 || b[0]*b[1]*b[2]%32 != 0 {
							t.Fatalf("%v: M=%d N=%d K=%d: block %v", v, m, n, kk, b)
						}
						if g[0] == 0 || g[1] == 0 || g[2] == 0 {
							t.Fatalf("%v: M=%d N=%d K=%d: empty grid %v", v, m, n, kk, g)
						}
						if g[0] > 1<<31-1 || g[1] > 65535 || g[2] > 65535 {
							t.Fatalf("%v: M=%d N=%d K=%d: grid %v out of limits", v, m, n, kk, g)
						}
						if spec.shared != nil && spec.shared(p) > 227<<10 {
							t.Fatalf("%v: %d bytes of dynamic shared memory", v, spec.shared(p))
						}
					}
				}
			}
		}
	}
}

// TestGeometryCoversOutputs checks that the blocks of the tiled kernels
// cover every output: grid times tile is at least N by M.
func TestGeometryCoversOutputs(t *testing.T) {
	v := engine.Variant{Kernel: engine.QMV, Format: quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}, Act: quant.F32, Scale: quant.BF16}
	spec, _ := geometry(v)
	g := spec.grid(engine.Params{M: 7, N: 13, K: 64, Format: v.Format, Act: v.Act})
	if int(g[0])*qmvWarps*qmvRows(4) < 13 || int(g[1])*qmvTokens < 7 {
		t.Errorf("qmv f32 grid %v does not cover 7 x 13", g)
	}
	v.Act = quant.BF16
	spec, _ = geometry(v)
	g = spec.grid(engine.Params{M: 17, N: 13, K: 64, Format: v.Format, Act: v.Act})
	if int(g[0])*qmvTile < 13 || int(g[1])*qmvTile < 17 {
		t.Errorf("qmv bf16 grid %v does not cover 17 x 13", g)
	}
	small, large := engine.Params{M: 1, N: 4096, K: 64}, engine.Params{M: 1, N: 16384, K: 64}
	if b := spec.blockOf(small); b[0] != 32*qmvWide {
		t.Errorf("qmv bf16, N = 4096: block %v, want %d warps", b, qmvWide)
	}
	if b := spec.blockOf(large); b[0] != 32*qmvWarps {
		t.Errorf("qmv bf16, N = 16384: block %v, want %d warps", b, qmvWarps)
	}
	u, _ := geometry(engine.Variant{Kernel: engine.Unpack, Format: quant.Format{Bits: 3}})
	gu := u.grid(engine.Params{N: 5, K: 96})
	if int(gu[0])*unpackBlk*unpackPer < 5*96 {
		t.Errorf("unpack grid %v does not cover 5 x 96", gu)
	}
	if _, ok := geometry(engine.Variant{Kernel: engine.Tiled, Format: quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}, Act: quant.F32, Scale: quant.F32}); ok {
		t.Errorf("tiled takes group 64")
	}
}

func TestCrossoverPositive(t *testing.T) {
	for _, f := range []quant.Format{{Mode: quant.Affine, Bits: 4, GroupSize: 64}, {Mode: quant.MXFP8, Bits: 8, GroupSize: 32}} {
		for _, act := range []quant.DType{quant.F32, quant.F16, quant.BF16} {
			if c := crossover(engine.Params{M: 1, N: 4096, K: 4096, Format: f, Act: act}); c < 1 {
				t.Errorf("%v %v: crossover %d", f, act, c)
			}
		}
	}
}
