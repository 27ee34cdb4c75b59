package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// --devices splits the layer over in-process CPU devices, row- or
// column-parallel, and the result meets the layer's tolerance.
func TestParallelRun(t *testing.T) {
	for _, split := range []string{"row", "column"} {
		for _, dt := range []string{"f32", "bf16"} {
			r := runJSON(t, "--devices", "cpu:0,cpu:1,cpu:2,cpu:3", "--split", split, "--dtype", dt, "--seq-len", "5", "--repeat", "2")
			assert.Equal(t, 4, r.Shards)
			assert.Equal(t, split, r.Split)
			assert.Equal(t, "cpu", r.Backend)
			assert.Equal(t, 81920, r.Bytes)
			assert.LessOrEqual(t, r.RelErr, r.Tolerance, "%s %s", split, dt)
		}
	}
	status, out, _ := runCLI("--devices", "cpu:0,cpu:1", "--repeat", "1")
	require.Equal(t, 0, status)
	assert.Contains(t, out, "shards       2, row-parallel over cpu:0,cpu:1")
}

func TestParallelErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--devices", "cpu:0,cpu:1,cpu:2", "--split", "column"}, "256 output features do not divide into 3 equal shards"},
		{[]string{"--devices", "cpu:0,cpu:1,cpu:2"}, "512 input features are 16 groups of 32, which do not divide into 3 shards of whole groups"},
		{[]string{"--devices", "cpu:0,cpu:1", "--split", "diagonal"}, `--split: bad tensor-parallel split: split "diagonal", want column or row`},
		{[]string{"--devices", "cpu:0,cpu:x"}, `--devices: invalid arguments: device "cpu:x"`},
		{[]string{"--devices", "cpu:0", "--backend", "cpu"}, "--backend with --devices"},
	} {
		status, _, errOut := runCLI(c.args...)
		assert.Equal(t, 1, status, c.args)
		assert.Contains(t, errOut, c.want, c.args)
	}
}
