//go:build !unix

package loader

import "os"

// mapFile reads the file at path into memory, on systems where this package
// does not memory-map files. There is nothing to unmap.
func mapFile(path string) (data []byte, unmap func() error, err error) {
	data, err = os.ReadFile(path)
	return data, nil, err
}
