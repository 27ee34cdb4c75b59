package cuda

import (
	"encoding/binary"
	"errors"
	"hash/fnv"
	"slices"
	"unsafe"
)

// CUDA graphs: a commit of kernel launches that repeats, a decoding step's
// layers for instance, is captured once into a CUDA graph and from then on
// replayed with one cuGraphLaunch, which costs the host one call instead
// of one per kernel. A commit is the same as an earlier one when it
// launches the same kernels with the same grids, blocks, shared memory and
// parameters (device pointers and sizes), in the same order.

const (
	// graphMinLaunches is the fewest kernel launches a commit needs to be
	// replayed as a graph.
	graphMinLaunches = 2
	// graphCap is how many graphs the driver keeps; the least recently
	// used one goes first.
	graphCap = 64
	// streamCaptureModeRelaxed is CU_STREAM_CAPTURE_MODE_RELAXED.
	streamCaptureModeRelaxed = 2
)

// launchKey is what makes two kernel launches the same.
type launchKey struct {
	fn          uintptr
	grid, block [3]uint32
	shared      uint32
	params      [maxParams]uint64
}

// graph is a commit seen before: its launches and, once captured, the
// executable graph that replays them.
type graph struct {
	key    []launchKey
	exec   uintptr // 0 until captured
	failed bool    // capture or instantiation failed: never tried again
	used   uint64  // the graph cache's clock at the last use
}

// graphCache holds the commits seen and their graphs; the executor owns it.
type graphCache struct {
	byHash map[uint64][]*graph
	n      int
	clock  uint64
}

func newGraphCache() *graphCache { return &graphCache{byHash: map[uint64][]*graph{}} }

// keyOf returns the launches of ops, or nil where ops are not all kernel
// launches the driver could capture: a copy, a QMM through cuBLAS, or a
// kernel whose shared memory attribute is not set yet.
func keyOf(ops []op) []launchKey {
	if len(ops) < graphMinLaunches {
		return nil
	}
	key := make([]launchKey, len(ops))
	for i := range ops {
		o := &ops[i]
		if o.k == nil || o.gemm != nil || o.shared > defaultSharedLimit && o.shared > o.k.mod.shared {
			return nil
		}
		key[i] = launchKey{fn: o.k.mod.fn, grid: o.grid, block: o.block, shared: o.shared}
		copy(key[i].params[:], o.params[:o.nparam])
	}
	return key
}

func hashKey(key []launchKey) uint64 {
	h := fnv.New64a()
	for i := range key {
		h.Write(unsafe.Slice((*byte)(unsafe.Pointer(&key[i])), unsafe.Sizeof(key[i])))
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(key)))
	h.Write(n[:])
	return h.Sum64()
}

// runGraph runs ops as a graph where it can: it returns false, and runs
// nothing, for a commit seen for the first time, one it cannot capture,
// or one whose capture failed (the caller launches the ops itself). The
// second time a commit comes, it is captured and replayed; after that,
// replayed. It runs on the executor.
func (d *Driver) runGraph(ops []op, slots *[maxParams]uint64, ptrs *[maxParams]unsafe.Pointer) (bool, error) {
	c := d.graphs
	if c == nil {
		return false, nil
	}
	key := keyOf(ops)
	if key == nil {
		return false, nil
	}
	h := hashKey(key)
	c.clock++
	var g *graph
	for _, e := range c.byHash[h] {
		if slices.Equal(e.key, key) {
			g = e
			break
		}
	}
	if g == nil {
		c.add(d, h, &graph{key: key, used: c.clock})
		return false, nil
	}
	g.used = c.clock
	if g.failed {
		return false, nil
	}
	if g.exec == 0 {
		exec, err := d.capture(ops, slots, ptrs)
		if err != nil {
			g.failed = true
			return false, nil
		}
		g.exec = exec
	}
	return true, d.cu.check("cuGraphLaunch", d.cu.cuGraphLaunch(g.exec, d.stream))
}

// capture records ops into a graph on the stream and instantiates it.
func (d *Driver) capture(ops []op, slots *[maxParams]uint64, ptrs *[maxParams]unsafe.Pointer) (uintptr, error) {
	cu := d.cu
	if err := cu.check("cuStreamBeginCapture_v2", cu.cuStreamBeginCapture(d.stream, streamCaptureModeRelaxed)); err != nil {
		return 0, err
	}
	var err error
	for i := range ops {
		if err = d.launchKernel(&ops[i], slots, ptrs); err != nil {
			break
		}
	}
	var g uintptr
	err = errors.Join(err, cu.check("cuStreamEndCapture", cu.cuStreamEndCapture(d.stream, &g)))
	if err != nil {
		if g != 0 {
			err = errors.Join(err, cu.check("cuGraphDestroy", cu.cuGraphDestroy(g)))
		}
		return 0, err
	}
	var exec uintptr
	err = cu.check("cuGraphInstantiateWithFlags", cu.cuGraphInstantiateWithFlags(&exec, g, 0))
	err = errors.Join(err, cu.check("cuGraphDestroy", cu.cuGraphDestroy(g)))
	if err != nil {
		if exec != 0 {
			err = errors.Join(err, cu.check("cuGraphExecDestroy", cu.cuGraphExecDestroy(exec)))
		}
		return 0, err
	}
	return exec, nil
}

// add keeps g, dropping the least recently used graph when the cache is
// full.
func (c *graphCache) add(d *Driver, h uint64, g *graph) {
	if c.n >= graphCap {
		var oldH uint64
		old := -1
		for hh, gs := range c.byHash {
			for i, e := range gs {
				if old < 0 || e.used < c.byHash[oldH][old].used {
					oldH, old = hh, i
				}
			}
		}
		e := c.byHash[oldH][old]
		if e.exec != 0 {
			// Only a failing driver refuses; the graph is dropped anyway.
			_ = d.cu.cuGraphExecDestroy(e.exec)
		}
		c.byHash[oldH] = slices.Delete(c.byHash[oldH], old, old+1)
		if len(c.byHash[oldH]) == 0 {
			delete(c.byHash, oldH)
		}
		c.n--
	}
	c.byHash[h] = append(c.byHash[h], g)
	c.n++
}

// release destroys every graph; it runs on the executor.
func (c *graphCache) release(d *Driver) error {
	var errs []error
	for _, gs := range c.byHash {
		for _, g := range gs {
			if g.exec != 0 {
				errs = append(errs, d.cu.check("cuGraphExecDestroy", d.cu.cuGraphExecDestroy(g.exec)))
			}
		}
	}
	c.byHash, c.n = map[uint64][]*graph{}, 0
	return errors.Join(errs...)
}
