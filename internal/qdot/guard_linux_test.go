package qdot

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// guarded returns n bytes that end where an inaccessible page begins, so a
// read past their end faults.
func guarded(t *testing.T, n int) []byte {
	t.Helper()
	page := syscall.Getpagesize()
	size := (n+page-1)/page*page + page
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	require.NoError(t, err)
	t.Cleanup(func() { syscall.Munmap(mem) })
	require.NoError(t, syscall.Mprotect(mem[size-page:], syscall.PROT_NONE))
	return mem[size-page-n : size-page : size-page]
}

// guardedFloats is guarded for float32 values.
func guardedFloats(t *testing.T, v []float32) []float32 {
	b := guarded(t, 4*len(v))
	f := unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(v))
	copy(f, v)
	return f
}

// TestPackedGuard runs every format with the codes and the activations
// ending at an inaccessible page: no kernel reads past the slices.
func TestPackedGuard(t *testing.T) {
	for _, kind := range impls() {
		for _, c := range allCodes() {
			for _, gs := range groupSizes(c)[:2] {
				t.Run(fmt.Sprintf("%s/%v/g%d", kind, c, gs), func(t *testing.T) {
					const n, m = 5, 5
					k := 3 * gs
					l := newPackedLayer(rand.New(rand.NewPCG(17, uint64(gs))), c, n, k, m, gs)
					var want []float32
					withImpl(t, kind, func() { want = l.run(t, MatVec, m, n) })
					w := guarded(t, len(l.w))
					copy(w, l.w)
					l.w = w
					l.x = guardedFloats(t, l.x)
					l.s = guardedFloats(t, l.s)
					if l.b != nil {
						l.b = guardedFloats(t, l.b)
					}
					l.xsum = guardedFloats(t, l.xsum)
					withImpl(t, kind, func() {
						for _, mm := range []int{1, 4, 5} {
							for _, nn := range []int{1, 4, 5} {
								// The last rows, so that they end at the guard.
								sub := *l
								ng := l.ng()
								sub.w = l.w[(n-nn)*c.RowBytes(k):]
								sub.s = l.s[(n-nn)*ng:]
								if l.b != nil {
									sub.b = l.b[(n-nn)*ng:]
								}
								sub.x = l.x[(m-mm)*k:]
								sub.xsum = l.xsum[(m-mm)*ng:]
								var exp []float32
								for i := m - mm; i < m; i++ {
									exp = append(exp, want[i*n+n-nn:(i+1)*n]...)
								}
								bitsEqual(t, exp, sub.run(t, MatVec, mm, nn), fmt.Sprintf("MatVec m=%d n=%d", mm, nn))
								bitsEqual(t, exp, sub.run(t, MatMat, mm, nn), fmt.Sprintf("MatMat m=%d n=%d", mm, nn))
							}
						}
					})
				})
			}
		}
	}
}
