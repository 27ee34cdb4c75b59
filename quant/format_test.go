package quant

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFormatValidate(t *testing.T) {
	tests := []struct {
		f   Format
		err string
	}{
		{Format{Affine, 2, 32}, ""},
		{Format{Affine, 3, 64}, ""},
		{Format{Affine, 8, 128}, ""},
		{Format{Affine, 7, 64}, "affine bits 7, want 2, 3, 4, 5, 6 or 8"},
		{Format{Affine, 1, 64}, "affine bits 1"},
		{Format{Affine, 4, 16}, "affine group size 16, want 32, 64 or 128"},
		{Format{Affine, 4, 256}, "affine group size 256"},
		{Format{MXFP4, 4, 32}, ""},
		{Format{MXFP8, 8, 32}, ""},
		{Format{NVFP4, 4, 16}, ""},
		{Format{MXFP4, 4, 64}, "mxfp4 takes bits 4 and group size 32, got 4 and 64"},
		{Format{NVFP4, 8, 16}, "nvfp4 takes bits 4 and group size 16"},
		{Format{Mode(9), 4, 32}, "mode Mode(9)"},
	}
	for _, tt := range tests {
		err := tt.f.Validate()
		if tt.err == "" {
			assert.NoError(t, err, "%v", tt.f)
			continue
		}
		assert.ErrorIs(t, err, ErrFormat, "%v", tt.f)
		assert.ErrorContains(t, err, tt.err)
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{Affine, MXFP4, MXFP8, NVFP4} {
		got, err := ParseMode(m.String())
		assert.NoError(t, err)
		assert.Equal(t, m, got)
		assert.NoError(t, DefaultFormat(m).Validate())
	}
	_, err := ParseMode("int4")
	assert.ErrorIs(t, err, ErrFormat)
	assert.ErrorContains(t, err, `mode "int4"`)
	assert.Equal(t, Format{Affine, 4, 64}, DefaultFormat(Affine))
	assert.Equal(t, "affine 4-bit group 64", DefaultFormat(Affine).String())
}

func TestParseFormat(t *testing.T) {
	tests := []struct {
		mode     string
		bits, gs int
		want     Format
		err      string
	}{
		{"", 0, 0, Format{Affine, 4, 64}, ""},
		{"", 8, 32, Format{Affine, 8, 32}, ""},
		{"mxfp8", 0, 0, Format{MXFP8, 8, 32}, ""},
		{"nvfp4", 0, 32, Format{}, "nvfp4 takes bits 4 and group size 16"},
		{"", 7, 0, Format{}, "affine bits 7"},
		{"int4", 0, 0, Format{}, `mode "int4"`},
	}
	for _, tt := range tests {
		got, err := ParseFormat(tt.mode, tt.bits, tt.gs)
		if tt.err == "" {
			assert.NoError(t, err)
			assert.Equal(t, tt.want, got)
			continue
		}
		assert.ErrorIs(t, err, ErrFormat)
		assert.ErrorContains(t, err, tt.err)
	}
}
