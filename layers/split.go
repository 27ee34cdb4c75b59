package layers

import (
	"errors"
	"fmt"

	"github.com/mlxq/mlxq/quant"
)

// ErrSplit reports a layer that cannot be split into the shards asked
// for.
var ErrSplit = errors.New("bad tensor-parallel split")

// Split is how a ParallelLinear cuts its weight over the devices.
type Split uint8

const (
	// ColumnParallel cuts the output features: shard r holds rows
	// r·Out/S to (r+1)·Out/S of W and of the Linear bias, takes all of x
	// and computes those features of y; an all-gather joins the pieces.
	ColumnParallel Split = iota
	// RowParallel cuts the input features at group boundaries: shard r
	// holds columns r·In/S to (r+1)·In/S of W with their groups' scales
	// and biases, takes those columns of x and computes a partial y; an
	// all-reduce sums the partials. Shard 0 adds the Linear bias.
	RowParallel
)

var splitNames = [...]string{ColumnParallel: "column", RowParallel: "row"}

// String returns "column" or "row".
func (s Split) String() string {
	if int(s) < len(splitNames) {
		return splitNames[s]
	}
	return fmt.Sprintf("Split(%d)", uint8(s))
}

// ParseSplit returns the split named s: column or row.
func ParseSplit(s string) (Split, error) {
	for i, n := range splitNames {
		if n == s {
			return Split(i), nil
		}
	}
	return 0, fmt.Errorf("%w: split %q, want column or row", ErrSplit, s)
}

// splitMatrix cuts m into shards pieces of equal size along split. Every
// piece's packed words, scales and biases are slices of m's: whole rows of
// them for ColumnParallel (views of m's data), the same whole groups of
// every row for RowParallel (copied, one row after another). A group of
// every format fills whole 32-bit words (GroupSize·Bits is a multiple of
// 32), so a row-parallel boundary falls on a word of the packed codes.
func splitMatrix(name string, m *quant.Matrix, split Split, shards int) ([]*quant.Matrix, error) {
	if shards < 1 {
		return nil, fmt.Errorf("layer %s: %w: %d shards", name, ErrSplit, shards)
	}
	switch split {
	case ColumnParallel:
		if m.Rows%shards != 0 {
			return nil, fmt.Errorf("layer %s: %w: %d output features do not divide into %d equal shards", name, ErrSplit, m.Rows, shards)
		}
		return columnShards(m, shards), nil
	case RowParallel:
		groups := m.Groups()
		if groups%shards != 0 {
			return nil, fmt.Errorf("layer %s: %w: %d input features are %d groups of %d, which do not divide into %d shards of whole groups",
				name, ErrSplit, m.Cols, groups, m.GroupSize, shards)
		}
		if cols := m.Cols / shards; cols*m.Bits%32 != 0 {
			return nil, fmt.Errorf("layer %s: %w: shards of %d %d-bit codes do not end on a 32-bit word", name, ErrSplit, cols, m.Bits)
		}
		return rowShards(m, shards), nil
	}
	return nil, fmt.Errorf("layer %s: %w: %v", name, ErrSplit, split)
}

// columnShards returns shards views of equal runs of m's rows.
func columnShards(m *quant.Matrix, shards int) []*quant.Matrix {
	rows := m.Rows / shards
	meta := m.Groups() * m.ScaleType.Size()
	out := make([]*quant.Matrix, shards)
	for r := range out {
		s := *m
		s.Rows = rows
		s.Weight = m.Weight[r*rows*m.RowBytes() : (r+1)*rows*m.RowBytes()]
		s.Scales = m.Scales[r*rows*meta : (r+1)*rows*meta]
		if m.Biases != nil {
			s.Biases = m.Biases[r*rows*meta : (r+1)*rows*meta]
		}
		out[r] = &s
	}
	return out
}

// rowShards returns shards copies of equal runs of m's groups of every
// row.
func rowShards(m *quant.Matrix, shards int) []*quant.Matrix {
	cols := m.Cols / shards
	wBytes := cols * m.Bits / 8
	meta := cols / m.GroupSize * m.ScaleType.Size()
	rowMeta := m.Groups() * m.ScaleType.Size()
	out := make([]*quant.Matrix, shards)
	for r := range out {
		s := *m
		s.Cols = cols
		s.Weight = make([]byte, 0, m.Rows*wBytes)
		s.Scales = make([]byte, 0, m.Rows*meta)
		if m.Biases != nil {
			s.Biases = make([]byte, 0, m.Rows*meta)
		}
		for n := range m.Rows {
			s.Weight = append(s.Weight, m.Row(n)[r*wBytes:(r+1)*wBytes]...)
			at := n*rowMeta + r*meta
			s.Scales = append(s.Scales, m.Scales[at:at+meta]...)
			if m.Biases != nil {
				s.Biases = append(s.Biases, m.Biases[at:at+meta]...)
			}
		}
		out[r] = &s
	}
	return out
}
