package loader

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/nlpodyssey/safetensors"

	"github.com/mlxq/mlxq/quant"
)

// maxHeader is the largest safetensors header accepted, as in the
// safetensors library and the reference implementation.
const maxHeader = 100_000_000

// A file is one safetensors file of a model.
type file struct {
	name     string // relative to the model path
	data     []byte
	unmap    func() error
	metadata map[string]string
}

// parse checks the header of f and returns views of its tensors, sorted by
// name. The views share f.data.
func (f *file) parse() ([]*Tensor, error) {
	data := f.data
	if len(data) < 8 {
		return nil, errorf(ErrFile, "%s: file of %d bytes is too short to hold the 8-byte header length; the file is truncated or not safetensors",
			f.name, len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if rest := uint64(len(data) - 8); n > rest {
		return nil, errorf(ErrFile, "%s: header length %d runs past the end of the file (%d bytes after the length); the file is truncated or not safetensors",
			f.name, n, rest)
	}
	if n > maxHeader {
		return nil, errorf(ErrFile, "%s: header length %d, want at most %d", f.name, n, maxHeader)
	}
	_, md, err := safetensors.ReadMetadata(data)
	if err != nil {
		if d := diagnose(f.name, data[8:8+n], uint64(len(data))-8-n); d != nil {
			return nil, d
		}
		return nil, errorf(ErrFile, "%s: %w", f.name, err)
	}
	f.metadata = md.Metadata()
	body := data[8+n:]
	infos := md.Tensors()
	tensors := make([]*Tensor, 0, len(infos))
	for name, info := range infos {
		dt, err := quant.ParseDType(info.DType.String())
		if err != nil { // every dtype of the library has a quant.DType
			return nil, &TensorError{File: f.name, Tensor: name, Err: withKind(err, ErrDType)}
		}
		shape := make([]int, len(info.Shape))
		for i, d := range info.Shape {
			if d > math.MaxInt {
				return nil, &TensorError{File: f.name, Tensor: name,
					Err: errorf(ErrShape, "shape %v: dimension %d out of range", info.Shape, d)}
			}
			shape[i] = int(d)
		}
		start, end := info.DataOffsets[0], info.DataOffsets[1]
		tensors = append(tensors, &Tensor{
			Name:  name,
			File:  f.name,
			DType: dt,
			Shape: shape,
			Data:  body[start:end:end],
		})
	}
	slices.SortFunc(tensors, func(a, b *Tensor) int { return cmp.Compare(a.Name, b.Name) })
	return tensors, nil
}

// entry is a tensor of a safetensors header, decoded leniently.
type entry struct {
	name    string
	DType   string   `json:"dtype"`
	Shape   []uint64 `json:"shape"`
	Offsets []uint64 `json:"data_offsets"`
}

// diagnose explains why the safetensors library rejected a header whose JSON
// it could parse: an unknown dtype, or data offsets that overlap, leave
// gaps, run past the data or disagree with the shape. It returns nil when it
// finds nothing to add to the library's own message.
func diagnose(file string, header []byte, dataLen uint64) error {
	var raw map[string]json.RawMessage
	if json.Unmarshal(header, &raw) != nil {
		return nil
	}
	entries := make([]entry, 0, len(raw))
	for name, msg := range raw {
		if name == "__metadata__" {
			continue
		}
		e := entry{name: name}
		if json.Unmarshal(msg, &e) != nil || len(e.Offsets) != 2 {
			return nil
		}
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b entry) int { return cmp.Compare(a.name, b.name) })
	fail := func(e entry, kind error, format string, args ...any) error {
		return &TensorError{File: file, Tensor: e.name, Err: errorf(kind, format, args...)}
	}
	for _, e := range entries {
		dt, err := safetensors.ParseDType(e.DType)
		if err != nil {
			return &TensorError{File: file, Tensor: e.name, Err: &kindError{
				[]error{ErrFile, ErrDType},
				fmt.Errorf("unknown dtype %q, want BOOL, U8, I8, U16, I16, F16, BF16, U32, I32, F32, U64, I64 or F64", e.DType),
			}}
		}
		start, end := e.Offsets[0], e.Offsets[1]
		if start > end {
			return fail(e, ErrFile, "data_offsets %v: start after end", e.Offsets)
		}
		size, ok := dt.Size(), true
		for _, d := range e.Shape {
			var hi uint64
			hi, size = bits.Mul64(size, d)
			ok = ok && hi == 0
		}
		switch {
		case !ok:
			return fail(e, ErrFile, "%s shape %v: byte size overflows", e.DType, e.Shape)
		case end-start != size:
			return fail(e, ErrFile, "data_offsets %v hold %d bytes, want %d for %s %v",
				e.Offsets, end-start, size, e.DType, e.Shape)
		case end > dataLen:
			return fail(e, ErrFile, "data_offsets %v run past the end of the data (%d bytes); the file is truncated",
				e.Offsets, dataLen)
		}
	}
	slices.SortStableFunc(entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.Offsets[0], b.Offsets[0]), cmp.Compare(a.Offsets[1], b.Offsets[1]))
	})
	var prev *entry
	var at uint64
	for i := range entries {
		e := &entries[i]
		switch start := e.Offsets[0]; {
		case start < at:
			return fail(*e, ErrFile, "data_offsets %v overlap those of %s %v", e.Offsets, prev.name, prev.Offsets)
		case start > at && prev == nil:
			return fail(*e, ErrFile, "data_offsets %v leave %d unused bytes at the start of the data", e.Offsets, start)
		case start > at:
			return fail(*e, ErrFile, "data_offsets %v leave %d unused bytes after %s %v",
				e.Offsets, start-at, prev.name, prev.Offsets)
		}
		prev, at = e, e.Offsets[1]
	}
	if at != dataLen {
		return errorf(ErrFile, "%s: tensors end at byte %d of the data, but the data has %d bytes", file, at, dataLen)
	}
	return nil
}
