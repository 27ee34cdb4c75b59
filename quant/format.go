package quant

import (
	"errors"
	"fmt"
)

// Mode is a quantization mode of MLX.
type Mode uint8

// The quantization modes. Affine stores w = scale*q + bias per group; the
// floating-point modes store small float codes times a shared power-of-two
// (mxfp4, mxfp8) or E4M3 (nvfp4) scale per group.
const (
	Affine Mode = iota
	MXFP4
	MXFP8
	NVFP4
)

var modeNames = [...]string{Affine: "affine", MXFP4: "mxfp4", MXFP8: "mxfp8", NVFP4: "nvfp4"}

// ErrFormat reports an unsupported mode, bit width or group size.
var ErrFormat = errors.New("unsupported quantization format")

// ParseMode returns the mode named s, as written in config.json.
func ParseMode(s string) (Mode, error) {
	for m, name := range modeNames {
		if name == s {
			return Mode(m), nil
		}
	}
	return 0, fmt.Errorf("%w: mode %q, want affine, mxfp4, mxfp8 or nvfp4", ErrFormat, s)
}

// String returns the config.json name of m.
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Format is a mode with its bit width and group size.
type Format struct {
	Mode      Mode
	Bits      int
	GroupSize int
}

// DefaultFormat returns MLX's default bits and group size for mode m:
// affine 4/64, mxfp4 4/32, mxfp8 8/32, nvfp4 4/16.
func DefaultFormat(m Mode) Format {
	switch m {
	case MXFP4:
		return Format{MXFP4, 4, 32}
	case MXFP8:
		return Format{MXFP8, 8, 32}
	case NVFP4:
		return Format{NVFP4, 4, 16}
	}
	return Format{Affine, 4, 64}
}

// Formats returns every format MLX supports: affine bits 2, 3, 4, 5, 6 and
// 8 with group sizes 32, 64 and 128, then mxfp4, mxfp8 and nvfp4.
func Formats() []Format {
	var out []Format
	for _, bits := range []int{2, 3, 4, 5, 6, 8} {
		for _, gs := range []int{32, 64, 128} {
			out = append(out, Format{Mode: Affine, Bits: bits, GroupSize: gs})
		}
	}
	for _, m := range []Mode{MXFP4, MXFP8, NVFP4} {
		out = append(out, DefaultFormat(m))
	}
	return out
}

// ParseFormat builds the format of a mode name (empty means affine), bits
// and group size, zero values taking the mode's defaults, and validates it.
func ParseFormat(mode string, bits, groupSize int) (Format, error) {
	m := Affine
	if mode != "" {
		var err error
		if m, err = ParseMode(mode); err != nil {
			return Format{}, err
		}
	}
	f := DefaultFormat(m)
	if bits != 0 {
		f.Bits = bits
	}
	if groupSize != 0 {
		f.GroupSize = groupSize
	}
	return f, f.Validate()
}

// String formats f as "affine 4-bit group 64".
func (f Format) String() string {
	return fmt.Sprintf("%s %d-bit group %d", f.Mode, f.Bits, f.GroupSize)
}

// Validate reports whether MLX supports f: affine takes bits 2, 3, 4, 5, 6
// or 8 with group size 32, 64 or 128; each floating-point mode has one fixed
// width and group size.
func (f Format) Validate() error {
	switch f.Mode {
	case Affine:
		switch f.Bits {
		case 2, 3, 4, 5, 6, 8:
		default:
			return fmt.Errorf("%w: affine bits %d, want 2, 3, 4, 5, 6 or 8", ErrFormat, f.Bits)
		}
		switch f.GroupSize {
		case 32, 64, 128:
		default:
			return fmt.Errorf("%w: affine group size %d, want 32, 64 or 128", ErrFormat, f.GroupSize)
		}
		return nil
	case MXFP4, MXFP8, NVFP4:
		d := DefaultFormat(f.Mode)
		if f.Bits != d.Bits || f.GroupSize != d.GroupSize {
			return fmt.Errorf("%w: %s takes bits %d and group size %d, got %d and %d",
				ErrFormat, f.Mode, d.Bits, d.GroupSize, f.Bits, f.GroupSize)
		}
		return nil
	}
	return fmt.Errorf("%w: mode %v", ErrFormat, f.Mode)
}

// HasBiases reports whether layers of this format store a biases tensor.
func (f Format) HasBiases() bool { return f.Mode == Affine }

// ScaleDTypeOK reports whether d is a valid on-disk type for the scales of
// this format: F32, F16 or BF16 for affine, U8 for the floating-point modes.
func (f Format) ScaleDTypeOK(d DType) bool {
	if f.Mode == Affine {
		return d.IsFloat()
	}
	return d == U8
}
