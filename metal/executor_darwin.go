package metal

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
)

// executor runs functions one at a time on a goroutine locked to its OS
// thread, each inside an autorelease pool: Objective-C pools are per
// thread, and a pool drained on another thread crashes the process.
type executor struct {
	work chan func()
	done chan struct{}

	mu      sync.Mutex
	stopped bool
}

// newExecutor starts the executor's goroutine and runs init on it first;
// if init fails, the goroutine ends and the error is returned.
func newExecutor(init func() error) (*executor, error) {
	e := &executor{work: make(chan func()), done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer close(e.done)
		if err := protect(init); err != nil {
			started <- err
			return
		}
		started <- nil
		for f := range e.work {
			f()
		}
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return e, nil
}

// do runs f on the executor's thread in an autorelease pool and returns
// its error; a panic in f comes back as an error with its stack.
func (e *executor) do(f func() error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return errClosed
	}
	res := make(chan error, 1)
	e.work <- func() { res <- protect(f) }
	return <-res
}

// stop ends the executor once the work sent before it is done.
func (e *executor) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return
	}
	e.stopped = true
	close(e.work)
	<-e.done
}

func protect(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("metal: panic on the device thread: %v\n%s", r, debug.Stack())
		}
	}()
	return withPool(f)
}
