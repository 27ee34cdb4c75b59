package loader

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// A source is where model files come from: the operating system's file
// system (memory-mapped) or an fs.FS (read into memory).
type source interface {
	join(dir, name string) string
	base(name string) string
	stat(name string) (fs.FileInfo, error)
	readDir(name string) ([]fs.DirEntry, error)
	readFile(name string) ([]byte, error)
	// load returns the contents of a safetensors file and a function that
	// releases them (nil when there is nothing to release).
	load(name string) ([]byte, func() error, error)
}

// osSource reads files from the operating system and maps safetensors files.
type osSource struct{}

func (osSource) join(dir, name string) string                   { return filepath.Join(dir, name) }
func (osSource) base(name string) string                        { return filepath.Base(name) }
func (osSource) stat(name string) (fs.FileInfo, error)          { return os.Stat(name) }
func (osSource) readDir(name string) ([]fs.DirEntry, error)     { return os.ReadDir(name) }
func (osSource) readFile(name string) ([]byte, error)           { return os.ReadFile(name) }
func (osSource) load(name string) ([]byte, func() error, error) { return mapFile(name) }

// fsSource reads files from an fs.FS into memory.
type fsSource struct{ fsys fs.FS }

func (s fsSource) join(dir, name string) string               { return path.Join(dir, name) }
func (s fsSource) base(name string) string                    { return path.Base(name) }
func (s fsSource) stat(name string) (fs.FileInfo, error)      { return fs.Stat(s.fsys, name) }
func (s fsSource) readDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(s.fsys, name) }
func (s fsSource) readFile(name string) ([]byte, error)       { return fs.ReadFile(s.fsys, name) }

func (s fsSource) load(name string) ([]byte, func() error, error) {
	data, err := fs.ReadFile(s.fsys, name)
	return data, nil, err
}
