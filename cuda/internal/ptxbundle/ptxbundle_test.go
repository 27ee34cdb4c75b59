package ptxbundle

import (
	"bytes"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRoundTrip(t *testing.T) {
	m := Manifest{Tool: "clang-19 -O3", Arch: "sm_80", Sources: map[string]string{"a.cu": Hash([]byte("a")), "common.cuh": Hash([]byte("c"))}}
	ptx := map[string][]byte{"qmv/x": []byte(".version 8.0\n"), "unpack/y": bytes.Repeat([]byte("z"), 100_000)}
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, m, ptx))
	var again bytes.Buffer
	require.NoError(t, Write(&again, m, ptx))
	assert.Equal(t, buf.Bytes(), again.Bytes(), "output is deterministic")

	b, err := Decode(buf.Bytes())
	require.NoError(t, err)
	assert.Equal(t, m, b.Manifest)
	assert.Equal(t, []string{"qmv/x", "unpack/y"}, b.Names())
	p, ok := b.PTX("unpack/y")
	require.True(t, ok)
	assert.Equal(t, ptx["unpack/y"], p)
	_, ok = b.PTX("nope")
	assert.False(t, ok)

	assert.Error(t, Write(&buf, m, map[string][]byte{"MANIFEST": nil}))
	_, err = Decode([]byte("not a bundle"))
	assert.Error(t, err)
	_, err = Decode(buf.Bytes()[:buf.Len()/2])
	assert.Error(t, err)
}

func TestStale(t *testing.T) {
	m := Manifest{Sources: map[string]string{"a.cu": Hash([]byte("a")), "b.cu": Hash([]byte("b"))}}
	fsys := fstest.MapFS{
		"a.cu":       {Data: []byte("a")},
		"b.cu":       {Data: []byte("b")},
		"README.md":  {Data: []byte("ignored")},
		"ptx.bundle": {Data: []byte("ignored")},
	}
	cur, err := SourceHashes(fsys)
	require.NoError(t, err)
	assert.NoError(t, m.Stale(cur))

	fsys["b.cu"] = &fstest.MapFile{Data: []byte("b2")}
	fsys["c.cuh"] = &fstest.MapFile{Data: []byte("c")}
	delete(fsys, "a.cu")
	cur, err = SourceHashes(fsys)
	require.NoError(t, err)
	assert.EqualError(t, m.Stale(cur), "the PTX bundle is stale: b.cu changed, c.cuh is new, a.cu was removed")
}

func TestCorruptModule(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, Manifest{Sources: map[string]string{}}, map[string][]byte{"k": bytes.Repeat([]byte("ptx "), 1000)}))
	b, err := Decode(buf.Bytes())
	require.NoError(t, err)
	raw := b.ptx["k"]
	for i := range raw {
		raw[i] = 0xff
	}
	_, ok := b.PTX("k")
	assert.False(t, ok)
}
