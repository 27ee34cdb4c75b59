// Package npy reads and writes NumPy .npy files of float16, float32 and
// float64 arrays in C order, the interchange format of the CLI's inputs,
// outputs and golden test data.
package npy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/mlxq/mlxq/quant"
)

// ErrFormat reports a file that is not a supported .npy array.
var ErrFormat = errors.New("npy")

// Array is a decoded array. Values are widened to float64, which is exact
// for every supported element type.
type Array struct {
	Shape  []int
	Descr  string // the element type as stored: "<f2", "<f4" or "<f8"
	Values []float64
}

// Float32 returns the values as float32.
func (a *Array) Float32() []float32 {
	out := make([]float32, len(a.Values))
	for i, v := range a.Values {
		out[i] = float32(v)
	}
	return out
}

var magic = []byte("\x93NUMPY")

var (
	descrRe   = regexp.MustCompile(`'descr'\s*:\s*'([^']*)'`)
	fortranRe = regexp.MustCompile(`'fortran_order'\s*:\s*(True|False)`)
	shapeRe   = regexp.MustCompile(`'shape'\s*:\s*\(([^)]*)\)`)
)

// maxHeader bounds the header length a reader accepts.
const maxHeader = 1 << 20

// Read decodes one array from r.
func Read(r io.Reader) (*Array, error) {
	br := bufio.NewReader(r)
	pre := make([]byte, 8)
	if _, err := io.ReadFull(br, pre); err != nil {
		return nil, fmt.Errorf("%w: reading preamble: %v", ErrFormat, err)
	}
	if !bytes.Equal(pre[:6], magic) {
		return nil, fmt.Errorf("%w: not a .npy file (bad magic)", ErrFormat)
	}
	var hlen int
	switch pre[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, fmt.Errorf("%w: reading header length: %v", ErrFormat, err)
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, fmt.Errorf("%w: reading header length: %v", ErrFormat, err)
		}
		hlen = int(binary.LittleEndian.Uint32(b[:]))
	default:
		return nil, fmt.Errorf("%w: format version %d.%d not supported", ErrFormat, pre[6], pre[7])
	}
	if hlen > maxHeader {
		return nil, fmt.Errorf("%w: header of %d bytes", ErrFormat, hlen)
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return nil, fmt.Errorf("%w: reading header: %v", ErrFormat, err)
	}
	a, err := parseHeader(string(hdr))
	if err != nil {
		return nil, err
	}
	n := 1
	for _, d := range a.Shape {
		if d < 0 || (d > 0 && n > math.MaxInt32/d) {
			return nil, fmt.Errorf("%w: shape %v too large", ErrFormat, a.Shape)
		}
		n *= d
	}
	size := map[string]int{"<f2": 2, "<f4": 4, "<f8": 8}[a.Descr]
	data := make([]byte, n*size)
	if _, err := io.ReadFull(br, data); err != nil {
		return nil, fmt.Errorf("%w: data shorter than shape %v of %s: %v", ErrFormat, a.Shape, a.Descr, err)
	}
	a.Values = make([]float64, n)
	for i := range a.Values {
		switch size {
		case 2:
			a.Values[i] = float64(quant.F16ToF32(binary.LittleEndian.Uint16(data[2*i:])))
		case 4:
			a.Values[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:])))
		case 8:
			a.Values[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
		}
	}
	return a, nil
}

func parseHeader(h string) (*Array, error) {
	d := descrRe.FindStringSubmatch(h)
	f := fortranRe.FindStringSubmatch(h)
	s := shapeRe.FindStringSubmatch(h)
	if d == nil || f == nil || s == nil {
		return nil, fmt.Errorf("%w: header %q lacks descr, fortran_order or shape", ErrFormat, strings.TrimSpace(h))
	}
	descr := d[1]
	if descr == "|f2" || descr == "=f2" {
		descr = "<f2"
	}
	switch descr {
	case "<f2", "<f4", "<f8":
	default:
		return nil, fmt.Errorf("%w: dtype %q, want float16, float32 or float64 (<f2, <f4, <f8)", ErrFormat, d[1])
	}
	if f[1] == "True" {
		return nil, fmt.Errorf("%w: Fortran-order arrays are not supported", ErrFormat)
	}
	a := &Array{Descr: descr, Shape: []int{}}
	for _, p := range strings.Split(s[1], ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		v, err := strconv.Atoi(strings.TrimSuffix(p, "L"))
		if err != nil {
			return nil, fmt.Errorf("%w: bad shape %q", ErrFormat, s[1])
		}
		a.Shape = append(a.Shape, v)
	}
	return a, nil
}

// ReadFile decodes the array in the file at path.
func ReadFile(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// header returns a version 1.0 preamble and header padded to 64 bytes.
func header(descr string, shape []int) []byte {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, tuple)
	pad := 64 - (10+len(h)+1)%64
	h += strings.Repeat(" ", pad%64) + "\n"
	out := append([]byte{}, magic...)
	out = append(out, 1, 0)
	out = binary.LittleEndian.AppendUint16(out, uint16(len(h)))
	return append(out, h...)
}

// WriteFloat32 writes data as a float32 array of the given shape.
func WriteFloat32(w io.Writer, shape []int, data []float32) error {
	if err := checkLen(shape, len(data)); err != nil {
		return err
	}
	buf := header("<f4", shape)
	for _, v := range data {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
	}
	_, err := w.Write(buf)
	return err
}

// WriteFloat64 writes data as a float64 array of the given shape.
func WriteFloat64(w io.Writer, shape []int, data []float64) error {
	if err := checkLen(shape, len(data)); err != nil {
		return err
	}
	buf := header("<f8", shape)
	for _, v := range data {
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
	}
	_, err := w.Write(buf)
	return err
}

// WriteFloat16 writes data as a float16 array of the given shape, rounding
// each value to nearest even.
func WriteFloat16(w io.Writer, shape []int, data []float32) error {
	if err := checkLen(shape, len(data)); err != nil {
		return err
	}
	buf := header("<f2", shape)
	for _, v := range data {
		buf = binary.LittleEndian.AppendUint16(buf, quant.F32ToF16(v))
	}
	_, err := w.Write(buf)
	return err
}

func checkLen(shape []int, n int) error {
	want := 1
	for _, d := range shape {
		want *= d
	}
	if want != n {
		return fmt.Errorf("%w: %d values for shape %v", ErrFormat, n, shape)
	}
	return nil
}
