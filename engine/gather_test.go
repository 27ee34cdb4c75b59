package engine

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/quant"
)

// alloc allocates a buffer on d or fails the test.
func alloc(t *testing.T, d *Device, dt quant.DType, shape ...int) *Buffer {
	t.Helper()
	b, err := d.Alloc(dt, shape...)
	require.NoError(t, err)
	return b
}

// newEmbedArgs returns valid operands of a lookup of 3 ids in a
// vocabulary of 16 rows of 128 features, affine 4-bit group 32.
func newEmbedArgs(t *testing.T, d *Device) *EmbedArgs {
	f := quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 32}
	return &EmbedArgs{
		Params: Params{M: 3, N: 16, K: 128, Format: f, Act: quant.BF16},
		IDs:    []int32{0, 15, 7},
		Index:  alloc(t, d, quant.I32, 8),
		W:      alloc(t, d, quant.U32, 16, 16), Scales: alloc(t, d, quant.F16, 16, 4), Biases: alloc(t, d, quant.F16, 16, 4),
		Y: alloc(t, d, quant.BF16, 8, 128),
	}
}

func TestCheckEmbed(t *testing.T) {
	d := NewDevice("fake", newFake())
	require.NoError(t, CheckEmbed(d, newEmbedArgs(t, d)))
	tests := []struct {
		name   string
		mutate func(a *EmbedArgs)
		err    string
	}{
		{"id too large", func(a *EmbedArgs) { a.IDs[1] = 16 }, "embed: invalid arguments: id 16 (position 1) out of range: the vocabulary has 16 rows"},
		{"negative id", func(a *EmbedArgs) { a.IDs[2] = -1 }, "id -1 (position 2) out of range"},
		{"ids for M", func(a *EmbedArgs) { a.M = 2 }, "3 ids for M = 2"},
		{"index dtype", func(a *EmbedArgs) { a.Index = alloc(t, d, quant.U32, 8) }, "index dtype U32, want I32"},
		{"index short", func(a *EmbedArgs) { a.Index = alloc(t, d, quant.I32, 2) }, "index holds 2 elements (8 bytes), want at least 3"},
		{"y short", func(a *EmbedArgs) { a.Y = alloc(t, d, quant.BF16, 2, 128) }, "y holds 256 elements (512 bytes), want at least 384"},
		{"y dtype", func(a *EmbedArgs) { a.Act = quant.F32 }, "y dtype BF16, want F32"},
		{"w count", func(a *EmbedArgs) { a.W = alloc(t, d, quant.U32, 15, 16) }, "w holds 240 elements, want 256"},
		{"scales nil", func(a *EmbedArgs) { a.Scales = nil }, "scales buffer is nil"},
		{"y aliases w", func(a *EmbedArgs) { a.Y, a.Act, a.M, a.IDs = a.W, quant.U32, 1, []int32{0} }, "activation dtype U32"},
		{"group", func(a *EmbedArgs) { a.K = 112 }, "K = 112 not a multiple of group size 32"},
	}
	for _, tt := range tests {
		a := newEmbedArgs(t, d)
		tt.mutate(a)
		err := CheckEmbed(d, a)
		assert.ErrorIs(t, err, ErrArgs, tt.name)
		assert.ErrorContains(t, err, tt.err, tt.name)
	}
}

// newGatherArgs returns valid operands of 3 rows of x, each routed to 2
// of 4 experts of [16, 64] mxfp4 weights, with an expert bias.
func newGatherArgs(t *testing.T, d *Device) *GatherArgs {
	f := quant.DefaultFormat(quant.MXFP4)
	return &GatherArgs{
		Params:  Params{M: 3, N: 16, K: 64, Format: f, Act: quant.F32},
		Experts: 4, TopK: 2, Indices: []int32{3, 0, 1, 3, 3, 2},
		X: alloc(t, d, quant.F32, 4, 64), W: alloc(t, d, quant.U32, 4, 16, 8), Scales: alloc(t, d, quant.U8, 4, 16, 2),
		Bias: alloc(t, d, quant.F32, 4, 16), Y: alloc(t, d, quant.F32, 8, 16), Routing: alloc(t, d, quant.I32, RoutingWords(8)),
	}
}

func TestCheckGather(t *testing.T) {
	d := NewDevice("fake", newFake())
	for _, k := range GatherKernels() {
		require.NoError(t, CheckGather(d, k, newGatherArgs(t, d)), k)
	}
	tests := []struct {
		name   string
		mutate func(a *GatherArgs)
		err    string
	}{
		{"index too large", func(a *GatherArgs) { a.Indices[3] = 4 }, "gather_qmv: invalid arguments: expert index 4 (row 1, slot 1) out of range: the layer has 4 experts"},
		{"negative index", func(a *GatherArgs) { a.Indices[0] = -2 }, "expert index -2 (row 0, slot 0) out of range"},
		{"indices for M", func(a *GatherArgs) { a.M = 2 }, "6 expert indices, want M·TopK = 2·2 = 4"},
		{"no experts", func(a *GatherArgs) { a.Experts = 0 }, "0 experts, top 2, want both > 0"},
		{"w of one expert", func(a *GatherArgs) { a.W = alloc(t, d, quant.U32, 16, 8) }, "w holds 128 elements, want 512"},
		{"scales of one expert", func(a *GatherArgs) { a.Scales = alloc(t, d, quant.U8, 16, 2) }, "scales holds 32 elements, want 128"},
		{"biases for mxfp4", func(a *GatherArgs) { a.Biases = alloc(t, d, quant.U8, 4, 16, 2) }, "mxfp4 takes no biases buffer"},
		{"bias of one expert", func(a *GatherArgs) { a.Bias = alloc(t, d, quant.F32, 16) }, "bias holds 16 elements, want 64"},
		{"x short", func(a *GatherArgs) { a.X = alloc(t, d, quant.F32, 2, 64) }, "x holds 128 elements (512 bytes), want at least 192"},
		{"y of M rows", func(a *GatherArgs) { a.Y = alloc(t, d, quant.F32, 3, 16) }, "y holds 48 elements (192 bytes), want at least 96"},
		{"routing short", func(a *GatherArgs) { a.Routing = alloc(t, d, quant.I32, RoutingWords(6)-1) }, "routing holds 27 elements (108 bytes), want at least 28"},
		{"routing aliases x", func(a *GatherArgs) { a.Routing = a.X; a.M, a.TopK, a.Indices = 1, 1, []int32{0} }, "routing dtype F32, want I32"},
		{"y aliases x", func(a *GatherArgs) { a.Y = a.X }, "y aliases an input buffer"},
		{"fp8 bits", func(a *GatherArgs) { a.Bits = 8 }, "mxfp4 takes bits 4"},
	}
	for _, tt := range tests {
		a := newGatherArgs(t, d)
		tt.mutate(a)
		err := CheckGather(d, GatherQMV, a)
		assert.ErrorIs(t, err, ErrArgs, tt.name)
		assert.ErrorContains(t, err, tt.err, tt.name)
	}
	err := CheckGather(d, QMV, newGatherArgs(t, d))
	assert.ErrorIs(t, err, ErrArgs)
	assert.ErrorContains(t, err, "qmv is not a gathered product kernel")
}

func TestRoute(t *testing.T) {
	// 3 rows of 2 slots: pairs 0..5 go to experts 3, 0, 1, 3, 3, 2.
	r, err := Route([]int32{3, 0, 1, 3, 3, 2}, 2, 5, 2)
	require.NoError(t, err)
	assert.Equal(t, []int32{1, 2, 5, 0, 3, 4}, r.Pairs, "grouped by expert, in pair order within one")
	assert.Equal(t, []Tile{{0, 0, 1}, {1, 1, 1}, {2, 2, 1}, {3, 3, 2}, {3, 5, 1}}, r.Tiles, "expert 3's three pairs in tiles of 2; expert 4 has none")
	r.Bias = true
	b := r.Bytes()
	require.Len(t, b, 4*(RoutingHeader+6+3*5))
	require.LessOrEqual(t, len(b), 4*RoutingWords(6))
	word := func(i int) int32 { return int32(binary.LittleEndian.Uint32(b[4*i:])) }
	assert.Equal(t, []int32{6, 2, 5, RoutingBias}, []int32{word(0), word(1), word(2), word(3)})
	assert.Equal(t, int32(5), word(RoutingHeader+2), "pairs after the header")
	assert.Equal(t, []int32{3, 5, 1}, []int32{word(RoutingHeader + 6 + 12), word(RoutingHeader + 6 + 13), word(RoutingHeader + 6 + 14)}, "the last tile")

	// Every pair lands in exactly one tile of its expert.
	indices := make([]int32, 64*8)
	for i := range indices {
		indices[i] = int32((i*37 + i/8) % 128)
	}
	r, err = Route(indices, 8, 128, 16)
	require.NoError(t, err)
	seen := make([]bool, len(indices))
	for _, tl := range r.Tiles {
		assert.True(t, tl.Count >= 1 && tl.Count <= 16, "%+v", tl)
		for _, p := range r.Pairs[tl.First : tl.First+tl.Count] {
			assert.False(t, seen[p], "pair %d twice", p)
			seen[p] = true
			assert.Equal(t, tl.Expert, indices[p])
		}
	}
	assert.NotContains(t, seen, false)

	_, err = Route([]int32{0, 5}, 2, 5, 4)
	assert.ErrorContains(t, err, "expert index 5 (row 0, slot 1) out of range: the layer has 5 experts")
	_, err = Route([]int32{0, 1, 2}, 2, 5, 4)
	assert.ErrorIs(t, err, ErrArgs)
}

func TestPlanGather(t *testing.T) {
	both := []Kernel{QMV, GatherQMV, GatherQMM}
	tests := []struct {
		m, topK, experts int
		kernels          []Kernel
		want             Kernel
	}{
		{1, 8, 128, both, GatherQMV},
		{16, 8, 128, both, GatherQMV},
		{17, 8, 128, both, GatherQMM},
		{512, 8, 128, both, GatherQMM},
		{512, 8, 128, []Kernel{GatherQMV}, GatherQMV},
		{1, 2, 4, []Kernel{GatherQMM}, GatherQMM},
	}
	for _, tt := range tests {
		k, err := PlanGather(tt.m, tt.topK, tt.experts, tt.kernels)
		require.NoError(t, err)
		assert.Equal(t, tt.want, k, "M=%d top %d of %d", tt.m, tt.topK, tt.experts)
	}
	_, err := PlanGather(1, 2, 4, []Kernel{QMV, QMM})
	assert.ErrorIs(t, err, ErrUnsupported)
	_, err = PlanGather(0, 2, 4, both)
	assert.ErrorIs(t, err, ErrArgs)
}

// The encoder writes the ids and the routing ahead of their dispatches,
// where the kernels read them, and refuses bad ones before recording.
func TestEncoderGather(t *testing.T) {
	d := NewDevice("fake", newFake())
	drv := d.drv.(*fakeDriver)
	ea, ga := newEmbedArgs(t, d), newGatherArgs(t, d)
	e := d.NewEncoder()
	require.NoError(t, e.Embed(ea))
	require.NoError(t, e.GatherMatmul(GatherQMM, ga))
	bad := newGatherArgs(t, d)
	bad.Indices[5] = 9
	assert.ErrorContains(t, e.GatherMatmul(GatherQMM, bad), "expert index 9")
	assert.ErrorIs(t, e.Matmul(GatherQMM, &MatmulArgs{}), ErrArgs)
	assert.Equal(t, 2, e.Len())
	require.NoError(t, e.Commit())
	assert.Equal(t, []string{"embed M=3 N=16 K=128", "gather_qmm M=3 N=16 K=64 tiles=4"}, drv.ran)

	ids := make([]byte, 12)
	require.NoError(t, d.Download(ids, ea.Index))
	assert.Equal(t, []byte{0, 0, 0, 0, 15, 0, 0, 0, 7, 0, 0, 0}, ids)
	r, err := Route(ga.Indices, ga.TopK, ga.Experts, GatherQMM.Spec().TileRows)
	require.NoError(t, err)
	r.Bias = true
	want := r.Bytes()
	got := make([]byte, len(want))
	require.NoError(t, d.Download(got, ga.Routing))
	assert.Equal(t, want, got)

	ga.Routing.Free()
	err = d.NewEncoder().GatherMatmul(GatherQMV, ga)
	assert.True(t, errors.Is(err, ErrClosed), "%v", err)
}
