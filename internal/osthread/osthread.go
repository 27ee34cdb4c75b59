// Package osthread runs functions one at a time on a goroutine locked to
// its OS thread, for libraries whose state belongs to a thread: a CUDA
// context current on it, Objective-C autorelease pools.
package osthread

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
)

// ErrStopped reports a Do on a stopped Thread.
var ErrStopped = errors.New("thread stopped")

// Thread is a goroutine locked to its OS thread that runs the functions
// given to Do.
type Thread struct {
	name string
	wrap func(func() error) error
	work chan func()
	done chan struct{}

	mu      sync.Mutex // held while a function runs
	stopped bool
}

// Start starts a thread named name (it names the thread in panics) and
// runs init on it first; if init fails, the thread ends and the error is
// returned. Every function the thread runs, init included, runs through
// wrap (such as one that sets up an autorelease pool), or directly where
// wrap is nil. The OS thread stays locked for the goroutine's life: when
// it exits, the runtime ends the thread and what was current on it.
func Start(name string, init func() error, wrap func(func() error) error) (*Thread, error) {
	if wrap == nil {
		wrap = func(f func() error) error { return f() }
	}
	t := &Thread{name: name, wrap: wrap, work: make(chan func()), done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer close(t.done)
		if err := t.protect(init); err != nil {
			started <- err
			return
		}
		started <- nil
		for f := range t.work {
			f()
		}
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return t, nil
}

// Do runs f on the thread and returns its error; a panic in f comes back
// as an error with its stack. After Stop it returns ErrStopped.
func (t *Thread) Do(f func() error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return ErrStopped
	}
	res := make(chan error, 1)
	t.work <- func() { res <- t.protect(f) }
	return <-res
}

// Stop ends the thread once the work sent before it is done.
func (t *Thread) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.stopped = true
	close(t.work)
	<-t.done
}

func (t *Thread) protect(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: panic on the device thread: %v\n%s", t.name, r, debug.Stack())
		}
	}()
	return t.wrap(f)
}
