package cpu

import (
	"sync"
	"sync/atomic"
)

// parallel calls fn(lo, hi) over [0, n) in chunks of at least grain,
// spreading the chunks over up to threads goroutines.
func parallel(threads, n, grain int, fn func(lo, hi int)) {
	chunks := (n + grain - 1) / grain
	// Several chunks per thread balance uneven progress.
	if want := 4 * threads; chunks > want {
		grain = (n + want - 1) / want
		chunks = (n + grain - 1) / grain
	}
	workers := min(threads, chunks)
	if workers <= 1 {
		fn(0, n)
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				c := int(next.Add(1)) - 1
				if c >= chunks {
					return
				}
				fn(c*grain, min((c+1)*grain, n))
			}
		})
	}
	wg.Wait()
}
