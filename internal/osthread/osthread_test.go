//go:build linux

package osthread

import (
	"errors"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every function runs on the same OS thread, one at a time, through wrap;
// a panic is an error; Stop ends it.
func TestThread(t *testing.T) {
	wrapped := 0
	var tid int
	th, err := Start("test", func() error { tid = syscall.Gettid(); return nil }, func(f func() error) error { wrapped++; return f() })
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			assert.NoError(t, th.Do(func() error {
				if syscall.Gettid() != tid {
					return errors.New("another thread")
				}
				return nil
			}))
		})
	}
	wg.Wait()
	assert.Equal(t, 9, wrapped, "init and eight calls")
	err = th.Do(func() error { panic("boom") })
	assert.ErrorContains(t, err, "test: panic on the device thread: boom")
	want := errors.New("failed")
	assert.Equal(t, want, th.Do(func() error { return want }))
	th.Stop()
	th.Stop()
	assert.ErrorIs(t, th.Do(func() error { return nil }), ErrStopped)

	_, err = Start("bad", func() error { return want }, nil)
	assert.Equal(t, want, err)
}
