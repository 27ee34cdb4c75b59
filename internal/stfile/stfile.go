// Package stfile writes safetensors files the way MLX does: tensors in the
// order given, data packed back to back, and a header that is not padded,
// so tensor data is often misaligned in the file.
package stfile

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// Tensor is one named tensor to write. Data holds little-endian elements of
// DType (a safetensors dtype name such as "U32" or "BF16").
type Tensor struct {
	Name  string
	DType string
	Shape []int
	Data  []byte
}

type entry struct {
	DType   string `json:"dtype"`
	Shape   []int  `json:"shape"`
	Offsets [2]int `json:"data_offsets"`
}

// Header returns the JSON header for tensors laid out back to back, with
// metadata under "__metadata__" when not empty. Keys keep the tensors' order.
func Header(tensors []Tensor, metadata map[string]string) ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	if len(metadata) > 0 {
		m, err := json.Marshal(metadata)
		if err != nil {
			return nil, err
		}
		b.WriteString(`"__metadata__":`)
		b.Write(m)
	}
	off := 0
	for i, t := range tensors {
		name, err := json.Marshal(t.Name)
		if err != nil {
			return nil, err
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		e, err := json.Marshal(entry{t.DType, shape, [2]int{off, off + len(t.Data)}})
		if err != nil {
			return nil, err
		}
		if i > 0 || len(metadata) > 0 {
			b.WriteByte(',')
		}
		b.Write(name)
		b.WriteByte(':')
		b.Write(e)
		off += len(t.Data)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

// Write writes tensors and metadata to w in safetensors format.
func Write(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	h, err := Header(tensors, metadata)
	if err != nil {
		return err
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(h)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(h); err != nil {
		return err
	}
	for _, t := range tensors {
		if _, err := w.Write(t.Data); err != nil {
			return fmt.Errorf("tensor %s: %w", t.Name, err)
		}
	}
	return nil
}

// WriteFile writes a safetensors file at path.
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := Write(f, tensors, metadata); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
