package cuda

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
)

// diskCache keeps compiled module images in files named by their cache
// key. A nil cache holds nothing.
type diskCache struct {
	dir string
}

// cacheMagic starts every cache entry; the payload's sha256 follows, then
// the payload.
var cacheMagic = []byte("MLXQCUDA1\n")

func (c *diskCache) path(key string) string { return filepath.Join(c.dir, key+".cubin") }

// get returns the image cached under key. Missing, short or corrupt
// entries read as absent.
func (c *diskCache) get(key string) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	data, err := os.ReadFile(c.path(key))
	if err != nil || len(data) < len(cacheMagic)+sha256.Size || !bytes.HasPrefix(data, cacheMagic) {
		return nil, false
	}
	sum, payload := data[len(cacheMagic):len(cacheMagic)+sha256.Size], data[len(cacheMagic)+sha256.Size:]
	if got := sha256.Sum256(payload); !bytes.Equal(got[:], sum) || len(payload) == 0 {
		return nil, false
	}
	return payload, true
}

// put writes image under key, atomically: readers see the old entry or
// the new one, never a partial file.
func (c *diskCache) put(key string, image []byte) error {
	if c == nil {
		return nil
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(c.dir, key+".tmp*")
	if err != nil {
		return err
	}
	sum := sha256.Sum256(image)
	_, err = f.Write(append(append(append([]byte(nil), cacheMagic...), sum[:]...), image...))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), c.path(key))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
