// Package ptxbundle reads and writes the PTX bundle: named PTX modules,
// each compressed on its own so that a reader decompresses only the
// modules it loads, with a manifest of the sources they were built from.
//
// A bundle is the magic "MLXQPTX2", a uvarint count, then count entries
// sorted by name (the manifest first), each a uvarint name length, the
// name, a uvarint length and the entry's bytes compressed with DEFLATE
// (RFC 1951). The entry named "MANIFEST" holds lines of text:
// "tool <words>", "arch <arch>", and one "source <sha256 hex> <file>" per
// source file.
package ptxbundle

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"
)

const (
	magic        = "MLXQPTX2"
	manifestName = "MANIFEST"
	maxEntry     = 1 << 30
)

// Manifest says how a bundle was made.
type Manifest struct {
	Tool    string            // the compiler command, for the record
	Arch    string            // the PTX target, such as sm_80
	Sources map[string]string // source file name to the sha256 of its text, hex
}

func (m Manifest) encode() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "tool %s\narch %s\n", m.Tool, m.Arch)
	for _, name := range slices.Sorted(maps.Keys(m.Sources)) {
		fmt.Fprintf(&b, "source %s %s\n", m.Sources[name], name)
	}
	return []byte(b.String())
}

func parseManifest(data []byte) (Manifest, error) {
	m := Manifest{Sources: map[string]string{}}
	for i, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		key, rest, _ := strings.Cut(line, " ")
		switch key {
		case "tool":
			m.Tool = rest
		case "arch":
			m.Arch = rest
		case "source":
			sum, name, ok := strings.Cut(rest, " ")
			if !ok || len(sum) != 2*sha256.Size {
				return m, fmt.Errorf("ptxbundle: manifest line %d: %q", i+1, line)
			}
			m.Sources[name] = sum
		default:
			return m, fmt.Errorf("ptxbundle: manifest line %d: %q", i+1, line)
		}
	}
	return m, nil
}

// Stale returns nil if the manifest lists exactly the sources of current
// (file name to sha256), and otherwise an error naming each difference.
func (m Manifest) Stale(current map[string]string) error {
	var diffs []string
	for _, name := range slices.Sorted(maps.Keys(current)) {
		switch old, ok := m.Sources[name]; {
		case !ok:
			diffs = append(diffs, name+" is new")
		case old != current[name]:
			diffs = append(diffs, name+" changed")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.Sources)) {
		if _, ok := current[name]; !ok {
			diffs = append(diffs, name+" was removed")
		}
	}
	if diffs == nil {
		return nil
	}
	return fmt.Errorf("the PTX bundle is stale: %s", strings.Join(diffs, ", "))
}

// Hash returns the sha256 of data, hex.
func Hash(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// SourceHashes returns the sha256 of every .cu, .cuh and .h file at the
// top of fsys: the kernel sources and the headers they are compiled with.
func SourceHashes(fsys fs.FS) (map[string]string, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !(strings.HasSuffix(name, ".cu") || strings.HasSuffix(name, ".cuh") || strings.HasSuffix(name, ".h")) {
			continue
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		out[name] = Hash(data)
	}
	return out, nil
}

// Bundle is a decoded PTX bundle; its modules stay compressed until
// asked for.
type Bundle struct {
	Manifest Manifest
	ptx      map[string][]byte // compressed, sharing the bundle's bytes
}

// PTX returns the module named name, decompressed.
func (b *Bundle) PTX(name string) ([]byte, bool) {
	z, ok := b.ptx[name]
	if !ok {
		return nil, false
	}
	p, err := inflate(z)
	if err != nil {
		return nil, false
	}
	return p, true
}

func deflate(p []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(p); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func inflate(z []byte) ([]byte, error) {
	return io.ReadAll(flate.NewReader(bytes.NewReader(z)))
}

// Names returns the modules' names, sorted.
func (b *Bundle) Names() []string { return slices.Sorted(maps.Keys(b.ptx)) }

// Write writes a bundle of the modules in ptx with manifest m to w. The
// output depends only on its inputs.
func Write(w io.Writer, m Manifest, ptx map[string][]byte) error {
	if _, ok := ptx[manifestName]; ok {
		return fmt.Errorf("ptxbundle: a module may not be named %s", manifestName)
	}
	out := append([]byte(magic), binary.AppendUvarint(nil, uint64(len(ptx)+1))...)
	put := func(name string, data []byte) error {
		z, err := deflate(data)
		if err != nil {
			return err
		}
		out = binary.AppendUvarint(out, uint64(len(name)))
		out = append(out, name...)
		out = binary.AppendUvarint(out, uint64(len(z)))
		out = append(out, z...)
		return nil
	}
	if err := put(manifestName, m.encode()); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(ptx)) {
		if err := put(name, ptx[name]); err != nil {
			return err
		}
	}
	_, err := w.Write(out)
	return err
}

// Decode parses a bundle written by Write. The bundle keeps references
// into data, which must not change.
func Decode(data []byte) (*Bundle, error) {
	if !bytes.HasPrefix(data, []byte(magic)) {
		return nil, errors.New("ptxbundle: not a PTX bundle")
	}
	r := data[len(magic):]
	next := func() ([]byte, error) {
		n, k := binary.Uvarint(r)
		if k <= 0 || n > maxEntry || n > uint64(len(r)-k) {
			return nil, errors.New("ptxbundle: truncated")
		}
		b := r[k : k+int(n)]
		r = r[k+int(n):]
		return b, nil
	}
	count, k := binary.Uvarint(r)
	if k <= 0 || count == 0 || count > uint64(len(r)) {
		return nil, errors.New("ptxbundle: bad entry count")
	}
	r = r[k:]
	b := &Bundle{ptx: map[string][]byte{}}
	for i := range count {
		name, err := next()
		if err != nil {
			return nil, err
		}
		body, err := next()
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b.ptx[string(name)] = body
			continue
		}
		if string(name) != manifestName {
			return nil, errors.New("ptxbundle: no manifest")
		}
		text, err := inflate(body)
		if err != nil {
			return nil, fmt.Errorf("ptxbundle: manifest: %w", err)
		}
		if b.Manifest, err = parseManifest(text); err != nil {
			return nil, err
		}
	}
	if len(r) != 0 {
		return nil, errors.New("ptxbundle: trailing data")
	}
	return b, nil
}
