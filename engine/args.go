package engine

import (
	"encoding/binary"
	"fmt"

	"github.com/mlxq/mlxq/quant"
)

// Params are the dimensions, format and activation dtype of one matrix
// product: x is [M, K], the weight [N, K], y [M, N]; x and y are of dtype
// Act (F32, F16 or BF16).
type Params struct {
	M, N, K int
	quant.Format
	Act quant.DType
}

// MetaBytes is the size of the parameter block of Meta: M, N, K, group
// size, bits, mode and activation dtype as little-endian uint32s.
const MetaBytes = 28

// Meta encodes p as a parameter block, for kernels that read their
// parameters from memory (such as a Metal kernel's constant buffer).
func (p Params) Meta() []byte {
	out := make([]byte, 0, MetaBytes)
	for _, v := range []int{p.M, p.N, p.K, p.GroupSize, p.Bits, int(p.Mode), int(p.Act)} {
		out = binary.LittleEndian.AppendUint32(out, uint32(v))
	}
	return out
}

// ParseMeta decodes a parameter block written by Meta.
func ParseMeta(b []byte) (Params, error) {
	if len(b) < MetaBytes {
		return Params{}, fmt.Errorf("%w: meta of %d bytes, want %d", ErrArgs, len(b), MetaBytes)
	}
	v := func(i int) int { return int(binary.LittleEndian.Uint32(b[4*i:])) }
	return Params{M: v(0), N: v(1), K: v(2), Format: quant.Format{GroupSize: v(3), Bits: v(4), Mode: quant.Mode(v(5))}, Act: quant.DType(v(6))}, nil
}

// MatmulArgs are the operands of a matrix product kernel. W holds the codes
// in the kernel's layout: U32 [N, K*bits/32] packed, or U8 [N, K] codes.
// Scales (and Biases, affine only) are [N, K/GroupSize], F32, F16 or BF16 for
// affine and U8 for the floating-point modes. Bias, the optional Linear
// bias, is F32 [N]. X and Y are of dtype Act and may be longer than M rows
// (they are allocated for the longest sequence). The driver passes the
// Params to the kernel as it sees fit.
type MatmulArgs struct {
	Params
	X, W, Scales, Biases, Bias, Y *Buffer
}

// Variant returns the kernel variant that runs these operands with kernel k.
func (a *MatmulArgs) Variant(k Kernel) Variant {
	v := Variant{Kernel: k, Format: a.Format, Act: a.Act, Scale: quant.U8}
	if a.Scales != nil {
		v.Scale = a.Scales.DType()
	}
	return v
}

// UnpackArgs are the operands of the Unpack kernel: Rows rows of Cols packed
// codes of width Bits in W (U32) are expanded into Codes (U8 [Rows, Cols]).
type UnpackArgs struct {
	Rows, Cols, Bits int
	W, Codes         *Buffer
}

// Variant returns the unpack kernel's variant for these operands.
func (a *UnpackArgs) Variant() Variant {
	return Variant{Kernel: Unpack, Format: quant.Format{Bits: a.Bits}}
}

// CheckMatmul verifies a dispatch of kernel k on device d before it is
// recorded: positive dimensions, a format the kernel takes, K a multiple of
// the group size, an activation dtype of F32, F16 or BF16 shared by x and
// y, dtypes, exact element counts of the weight tensors, byte lengths at
// least M rows for x and y, and no output aliasing an input.
func CheckMatmul(d *Device, k Kernel, a *MatmulArgs) error {
	if k.Spec().Op != OpMatmul {
		return fmt.Errorf("%w: %s is not a matrix product kernel", ErrArgs, k)
	}
	if err := checkMatmul(d, k, a); err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	return nil
}

func checkMatmul(d *Device, k Kernel, a *MatmulArgs) error {
	if err := checkFormat(k, a.Params); err != nil {
		return err
	}
	ops, err := weightOperands(a.Params, 1, a.Scales, a.Biases)
	if err != nil {
		return err
	}
	weight := operand{"w", a.W, quant.U8, a.N * a.K, false}
	if k.Spec().Layout == Packed {
		weight = operand{"w", a.W, quant.U32, a.N * a.K * a.Bits / 32, false}
	}
	ops = append([]operand{{"x", a.X, a.Act, a.M * a.K, true}, weight}, ops...)
	ops = append(ops, operand{"y", a.Y, a.Act, a.M * a.N, true})
	if a.Bias != nil {
		ops = append(ops, operand{"bias", a.Bias, quant.F32, a.N, false})
	}
	return checkOperands(d, ops, a.Y, a.X, a.W, a.Scales, a.Biases, a.Bias)
}

// CheckUnpack verifies an Unpack dispatch on device d.
func CheckUnpack(d *Device, a *UnpackArgs) error {
	if err := checkUnpack(d, a); err != nil {
		return fmt.Errorf("%s: %w", Unpack, err)
	}
	return nil
}

func checkUnpack(d *Device, a *UnpackArgs) error {
	if a.Rows <= 0 || a.Cols <= 0 {
		return fmt.Errorf("%w: rows, cols = %d, %d, want both > 0", ErrArgs, a.Rows, a.Cols)
	}
	if a.Bits < 2 || a.Bits > 8 || a.Bits == 7 {
		return fmt.Errorf("%w: bits %d, want 2, 3, 4, 5, 6 or 8", ErrArgs, a.Bits)
	}
	if a.Cols*a.Bits%32 != 0 {
		return fmt.Errorf("%w: %d codes of %d bits do not fill whole words", ErrArgs, a.Cols, a.Bits)
	}
	for _, op := range []operand{
		{"w", a.W, quant.U32, a.Rows * a.Cols * a.Bits / 32, false},
		{"codes", a.Codes, quant.U8, a.Rows * a.Cols, false},
	} {
		if err := op.check(d); err != nil {
			return err
		}
	}
	return nil
}

// operand is a buffer with the dtype and element count it must have: n
// exactly, or at least n when atLeast is set.
type operand struct {
	name    string
	buf     *Buffer
	dtype   quant.DType
	n       int
	atLeast bool
}

func (op operand) check(d *Device) error {
	b := op.buf
	if err := b.usable(d, op.name); err != nil {
		return err
	}
	if b.DType() != op.dtype {
		return fmt.Errorf("%w: %s dtype %v, want %v", ErrArgs, op.name, b.DType(), op.dtype)
	}
	if op.atLeast && b.Len() < op.n {
		return fmt.Errorf("%w: %s holds %d elements (%d bytes), want at least %d", ErrArgs, op.name, b.Len(), b.Bytes(), op.n)
	}
	if !op.atLeast && b.Len() != op.n {
		return fmt.Errorf("%w: %s holds %d elements, want %d", ErrArgs, op.name, b.Len(), op.n)
	}
	return nil
}
