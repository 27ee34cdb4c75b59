package eval

import (
	"runtime"
	"sync"
	"time"

	"github.com/mlxq/mlxq/engine"
)

// copyBytes is the size of each of the two buffers the host copy
// bandwidth is measured with: well beyond any processor's caches.
const copyBytes = 128 << 20

// CopyBandwidth measures the streaming copy bandwidth of a device in GB/s,
// counting bytes read plus bytes written (STREAM's convention), as a
// ceiling for the GB/s of a memory-bound kernel. It reports false for a
// backend whose device memory it cannot copy: today it measures the cpu
// backend only, with copy() over GOMAXPROCS goroutines, best of five.
func CopyBandwidth(dev *engine.Device) (float64, bool) {
	if dev.Backend() != "cpu" {
		return 0, false
	}
	src, dst := make([]byte, copyBytes), make([]byte, copyBytes)
	for i := range 1 << 20 {
		src[i] = byte(i)
	}
	for off := 1 << 20; off < len(src); off *= 2 {
		copy(src[off:], src[:off])
	}
	threads := runtime.GOMAXPROCS(0)
	parallelCopy := func() time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for t := range threads {
			i, j := t*copyBytes/threads, (t+1)*copyBytes/threads
			wg.Go(func() { copy(dst[i:j], src[i:j]) })
		}
		wg.Wait()
		return time.Since(start)
	}
	parallelCopy() // maps dst's pages
	best := parallelCopy()
	for range 4 {
		best = min(best, parallelCopy())
	}
	return 2 * copyBytes / best.Seconds() / 1e9, true
}
