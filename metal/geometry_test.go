package metal

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/quant"
	"github.com/mlxq/mlxq/shaders"
)

func TestGeometryCoversEveryVariant(t *testing.T) {
	require.ElementsMatch(t, engine.Kernels(), Kernels(), "the backend implements the whole catalog")
	for _, k := range engine.Kernels() {
		vs := k.Variants()
		require.NotEmpty(t, vs, k)
		for _, v := range vs {
			s, ok := Geometry(v)
			if !assert.True(t, ok, "%v: no geometry", v) {
				continue
			}
			n := s.ThreadCount()
			assert.True(t, n > 0 && n <= 1024 && n%32 == 0, "%v: threadgroup %v", v, s.Threads)
			assert.True(t, s.Memory >= 0 && s.Memory%16 == 0 && s.Memory <= 32<<10, "%v: %d bytes of threadgroup memory", v, s.Memory)
			for _, m := range []int{1, 7, 4096} {
				for _, nn := range []int{13, 16384} {
					g := s.Grid(engine.Params{M: m, N: nn, K: 4096, Format: v.Format, Act: v.Act})
					for _, d := range g {
						assert.True(t, d >= 1 && d < 1<<31, "%v: M=%d N=%d: grid %v", v, m, nn, g)
					}
				}
			}
		}
	}
	_, ok := Geometry(engine.Variant{Kernel: engine.Tiled, Format: quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}, Act: quant.F32, Scale: quant.F32})
	assert.False(t, ok, "tiled takes group 64")
	_, ok = Geometry(engine.Variant{Kernel: engine.QMV, Format: quant.DefaultFormat(quant.MXFP4), Act: quant.F32, Scale: quant.BF16})
	assert.False(t, ok, "mxfp4 with bf16 scales")
}

// TestGeometryCoversOutputs checks that the threadgroups cover every
// output: grid times tile is at least N by M.
func TestGeometryCoversOutputs(t *testing.T) {
	for _, v := range Variants() {
		s, _ := Geometry(v)
		if v.Kernel == engine.Unpack {
			g := s.Grid(engine.Params{N: 5, K: 96})
			assert.GreaterOrEqual(t, g[0]*s.Threads[0]*unpackPer, 5*96, "%v", v)
			continue
		}
		p := engine.Params{M: 17, N: 13, K: 512, Format: v.Format, Act: v.Act}
		g := s.Grid(p)
		along := p.N
		if s.AlongK {
			along = p.K
		}
		assert.GreaterOrEqual(t, g[0]*s.Tile[0], along, "%v", v)
		assert.GreaterOrEqual(t, g[1]*s.Tile[1], p.M, "%v", v)
	}
}

func TestParamsBytes(t *testing.T) {
	b := Params{M: 1, N: 0x0203, K: 0x04050607, Flags: FlagBias | FlagBiases}.Bytes()
	assert.Equal(t, []byte{1, 0, 0, 0, 3, 2, 0, 0, 7, 6, 5, 4, 3, 0, 0, 0}, b)
	assert.Len(t, b, ParamsBytes)
}

// TestBindingsMatchSources checks the binding order of the geometry
// table against the [[buffer(i)]] attributes in the kernel sources, and
// the threadgroup memory against the kernels that declare it.
func TestBindingsMatchSources(t *testing.T) {
	common, err := shaders.MetalSource(shaders.MetalCommon)
	require.NoError(t, err)
	names := map[string]Binding{"x": BindX, "w": BindW, "scales": BindScales, "biases": BindBiases, "bias": BindBias, "y": BindY, "p": BindParams,
		"codes": BindCodes, "ids": BindIDs, "route": BindRoute}
	re := regexp.MustCompile(`(\w+)\s*\[\[buffer\((\d+)\)\]\]`)
	bindings := func(src string) []Binding {
		var out []Binding
		for _, m := range re.FindAllStringSubmatch(src, -1) {
			i, _ := strconv.Atoi(m[2])
			b, ok := names[m[1]]
			require.True(t, ok, "unknown buffer argument %q", m[1])
			require.Equal(t, len(out), i, "buffer %s at index %d", m[1], i)
			out = append(out, b)
		}
		return out
	}
	macro := common[strings.Index(common, "#define MLXQ_MATMUL_BUFFERS"):]
	macro = macro[:strings.Index(macro, "\n\n")]
	assert.Equal(t, MatmulBindings, bindings(macro))
	for _, k := range engine.Kernels() {
		src, err := shaders.MetalSource(k.String() + ".metal")
		require.NoError(t, err)
		v := k.Variants()[0]
		s, _ := Geometry(v)
		switch k.Spec().Op {
		case engine.OpUnpack:
			assert.Equal(t, UnpackBindings, bindings(src), k)
		case engine.OpEmbed:
			assert.Equal(t, EmbedBindings, bindings(src), k)
			assert.Equal(t, EmbedBindings, s.Buffers, k)
		case engine.OpGather:
			assert.Equal(t, GatherBindings, bindings(src), k)
			assert.Equal(t, GatherBindings, s.Buffers, k)
		default:
			assert.Contains(t, src, "MLXQ_MATMUL_BUFFERS(", k)
			assert.Equal(t, MatmulBindings, s.Buffers, k)
		}
		assert.Equal(t, strings.Contains(src, "MLXQ_THREADGROUP_MEMORY"), s.Memory > 0, "%v: threadgroup memory %d", k, s.Memory)
	}
}

func TestCrossoverPositive(t *testing.T) {
	for _, n := range []int{1024, 4096, 16384} {
		c := crossover(engine.Params{M: 1, N: n, K: n, Format: quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}, Act: quant.BF16})
		assert.Positive(t, c, n)
	}
}

func TestCompileUnit(t *testing.T) {
	v := engine.Variant{Kernel: engine.QMM, Format: quant.Format{Mode: quant.Affine, Bits: 3, GroupSize: 128}, Act: quant.F16, Scale: quant.BF16}
	u, err := CompileUnit(v)
	require.NoError(t, err)
	assert.Equal(t, "qmm.metal", u.File)
	assert.Equal(t, "qmm/mode=0,bits=3,group=128,act=1,scale=2", u.Name)
	assert.True(t, u.Defines.NeedsBFloat())
	assert.True(t, strings.HasPrefix(u.Source, "#define MLXQ_MODE 0\n#define MLXQ_BITS 3\n#define MLXQ_GROUP 128\n#define MLXQ_ACT 1\n#define MLXQ_SCALE 2\n#line 1 \"common.metal\"\n"))
	assert.Contains(t, u.Source, "#line 1 \"qmm.metal\"\n")
	assert.Contains(t, u.Source, "kernel void "+EntryPoint+"(")
	_, err = CompileUnit(engine.Variant{Kernel: engine.QMV, Format: v.Format, Act: quant.U8, Scale: quant.F16})
	assert.ErrorIs(t, err, engine.ErrArgs)
}
