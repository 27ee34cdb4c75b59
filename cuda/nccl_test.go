package cuda

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/engine/enginetest"
	"github.com/mlxq/mlxq/quant"
)

// fakeNCCL implements ncclAPI on a fake GPU's memory: the collectives of
// a group run at ncclGroupEnd, in Go.
type fakeNCCL struct {
	gpu      *fakeGPU
	initDevs []int32
	calls    []string
	group    []fakeCollective
	inGroup  bool
	fail     map[string]int32 // call name: the result it returns
	live     int              // communicators not destroyed
	nvls     string           // NCCL_NVLS_ENABLE at ncclCommInitAll
}

type fakeCollective struct {
	gather     bool
	send, recv uint64
	count      uint64
	dtype      int32
}

func (f *fakeNCCL) dtype(t int32) quant.DType {
	return map[int32]quant.DType{ncclFloat32: quant.F32, ncclFloat16: quant.F16, ncclBfloat16: quant.BF16}[t]
}

// end runs the group's collectives, all of one kind, rank r's being the
// r-th.
func (f *fakeNCCL) end() {
	g := f.gpu
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(f.group) == 0 {
		return
	}
	dt := f.dtype(f.group[0].dtype)
	n := int(f.group[0].count)
	size := uint64(n * dt.Size())
	if f.group[0].gather {
		for _, dst := range f.group {
			for r, src := range f.group {
				copy(g.find(dst.recv+uint64(r)*size, size), g.find(src.send, size))
			}
		}
		return
	}
	sum := make([]float32, n)
	part := make([]float32, n)
	for _, c := range f.group {
		dt.Decode(part, g.find(c.send, size))
		for i, v := range part {
			sum[i] += v
		}
	}
	for _, c := range f.group {
		dt.Encode(g.find(c.recv, size), sum)
	}
}

func (f *fakeNCCL) result(call string) int32 {
	f.calls = append(f.calls, call)
	return f.fail[call]
}

func (f *fakeNCCL) api() *ncclAPI {
	return &ncclAPI{
		lib:            "fake",
		ncclGetVersion: func(v *int32) int32 { *v = 22803; return 0 },
		ncclGetErrorString: func(code int32) *byte {
			return fakeCString(map[int32]string{4: "invalid argument (run with NCCL_DEBUG=WARN for details)"}[code])
		},
		ncclCommInitAll: func(comms *uintptr, n int32, devs *int32) int32 {
			f.initDevs = slices.Clone(unsafe.Slice(devs, n))
			f.nvls = os.Getenv(EnvNVLS)
			cs := unsafe.Slice(comms, n)
			for i := range cs {
				cs[i] = uintptr(900 + i)
			}
			f.live += int(n)
			return f.result("ncclCommInitAll")
		},
		ncclCommDestroy: func(uintptr) int32 { f.live--; return f.result("ncclCommDestroy") },
		ncclGroupStart:  func() int32 { f.inGroup = true; f.group = nil; return f.result("ncclGroupStart") },
		ncclGroupEnd: func() int32 {
			f.inGroup = false
			f.end()
			return f.result("ncclGroupEnd")
		},
		ncclAllReduce: func(send, recv, count uint64, dtype, op int32, comm, stream uintptr) int32 {
			if !f.inGroup || op != ncclSum || send != recv {
				return 5
			}
			f.group = append(f.group, fakeCollective{send: send, recv: recv, count: count, dtype: dtype})
			return f.result("ncclAllReduce")
		},
		ncclAllGather: func(send, recv, count uint64, dtype int32, comm, stream uintptr) int32 {
			if !f.inGroup {
				return 5
			}
			f.group = append(f.group, fakeCollective{gather: true, send: send, recv: recv, count: count, dtype: dtype})
			return f.result("ncclAllGather")
		},
	}
}

// fakeDevices opens n drivers on devices 0 to n-1 of one fake GPU, and
// makes NCCL the fake one.
func fakeDevices(t *testing.T, n int) (*fakeNCCL, []*engine.Device) {
	t.Helper()
	gpu := newFakeGPU()
	gpu.deviceCount = int32(n)
	nccl := &fakeNCCL{gpu: gpu, fail: map[string]int32{}}
	load := ncclLibrary
	ncclLibrary = func() (*ncclAPI, error) { return nccl.api(), nil }
	t.Cleanup(func() { ncclLibrary = load })
	devs := make([]*engine.Device, n)
	for r := range devs {
		d, err := open(gpu.api(), fakeNVRTCLoader, config{device: r})
		require.NoError(t, err)
		devs[r] = engine.NewDevice(Name, d)
		t.Cleanup(func() { devs[r].Close() })
	}
	return nccl, devs
}

// The collectives run through NCCL on every rank's buffers, streams and
// communicator, in one group, and pass the engine's collective checks.
func TestNCCLFake(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		nccl, devs := fakeDevices(t, n)
		c, err := engine.NewCollective(devs...)
		require.NoError(t, err)
		assert.Equal(t, []int32{0, 1, 2}[:n], nccl.initDevs)
		enginetest.TestCollective(t, c)
		require.NoError(t, c.Close())
		assert.Zero(t, nccl.live, "communicators left")
	}
}

func TestNCCLEnvironment(t *testing.T) {
	t.Setenv(EnvNVLS, "1")
	nccl, devs := fakeDevices(t, 2)
	c, err := engine.NewCollective(devs...)
	require.NoError(t, err)
	c.Close()
	assert.Equal(t, "1", nccl.nvls, "a value the user set stays")

	os.Unsetenv(EnvNVLS)
	c, err = engine.NewCollective(devs...)
	require.NoError(t, err)
	c.Close()
	assert.Equal(t, "0", nccl.nvls, "NVLink multicast is off by default")
}

// NCCL's failures come back as errors naming the call, the rank and
// NCCL's result; the group is closed all the same.
func TestNCCLErrors(t *testing.T) {
	nccl, devs := fakeDevices(t, 2)
	c, err := engine.NewCollective(devs...)
	require.NoError(t, err)
	defer c.Close()
	bufs := make([]*engine.Buffer, 2)
	for r, d := range devs {
		bufs[r], err = d.Alloc(quant.BF16, 16)
		require.NoError(t, err)
	}
	nccl.fail["ncclAllReduce"] = 4
	nccl.calls = nil
	err = c.AllReduce(bufs, 16)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrNCCL)
	assert.ErrorContains(t, err, "rank 0 (CUDA device 0): ncclAllReduce: ncclInvalidArgument: invalid argument")
	assert.Equal(t, []string{"ncclGroupStart", "ncclAllReduce", "ncclGroupEnd"}, nccl.calls)
	delete(nccl.fail, "ncclAllReduce")
	require.NoError(t, c.AllReduce(bufs, 16))

	nccl.fail["ncclCommInitAll"] = 4
	_, err = engine.NewCollective(devs...)
	assert.ErrorIs(t, err, ErrNCCL)
	assert.ErrorContains(t, err, "ncclCommInitAll: ncclInvalidArgument")
	delete(nccl.fail, "ncclCommInitAll")

	gpu := nccl.gpu
	d, err := open(gpu.api(), fakeNVRTCLoader, config{device: 1})
	require.NoError(t, err)
	again := engine.NewDevice(Name, d)
	defer again.Close()
	_, err = engine.NewCollective(devs[1], again)
	assert.ErrorIs(t, err, engine.ErrArgs)
	assert.ErrorContains(t, err, "ranks 0 and 1 are both CUDA device 1: want distinct GPUs")
}

func TestNCCLResultNames(t *testing.T) {
	for code, name := range map[int32]string{0: "ncclSuccess", 5: "ncclInvalidUsage", 7: "ncclInProgress", 42: "ncclResult(42)"} {
		assert.Equal(t, name, ncclResultName(code), fmt.Sprint(code))
	}
	assert.Equal(t, "2.28.3", (&fakeNCCL{}).api().version())
}
