package cuda

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/internal/osthread"
	"github.com/mlxq/mlxq/quant"
)

// EnvNVLS is NCCL's switch for NVLink multicast (NVLS). NewComm sets it
// to 0 in the process environment before NCCL initialises, unless it is
// set already: multicast needs the NVSwitch fabric's multicast objects,
// which many hosts, virtual machines in particular, do not provide, and a
// tensor-parallel layer's all-reduces run on NVLink without it.
const EnvNVLS = "NCCL_NVLS_ENABLE"

// ncclLibraries are the sonames NCCL is tried under.
var ncclLibraries = []string{"libnccl.so.2", "libnccl.so"}

// ErrNCCL is wrapped by every error an NCCL call returns; the *NCCLError
// in the chain has the call and the result.
var ErrNCCL = errors.New("nccl error")

// NCCLError is a failed NCCL call: the call's name, its ncclResult_t and
// NCCL's description, as in "ncclCommInitAll: ncclInvalidUsage: invalid
// usage (run with NCCL_DEBUG=WARN for details)".
type NCCLError struct {
	Call string
	Code int32
	Desc string
}

func (e *NCCLError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.Call, ncclResultName(e.Code), e.Desc)
}

// Unwrap returns ErrNCCL.
func (e *NCCLError) Unwrap() error { return ErrNCCL }

// ncclResultNames are the names of ncclResult_t (nccl.h).
var ncclResultNames = []string{"ncclSuccess", "ncclUnhandledCudaError", "ncclSystemError", "ncclInternalError",
	"ncclInvalidArgument", "ncclInvalidUsage", "ncclRemoteError", "ncclInProgress"}

func ncclResultName(code int32) string {
	if code >= 0 && int(code) < len(ncclResultNames) {
		return ncclResultNames[code]
	}
	return fmt.Sprintf("ncclResult(%d)", code)
}

// NCCL constants (nccl.h): ncclDataType_t and ncclRedOp_t.
const (
	ncclFloat16  = 6
	ncclFloat32  = 7
	ncclBfloat16 = 9
	ncclSum      = 0
)

// ncclType returns NCCL's data type of an activation dtype.
func ncclType(dt quant.DType) int32 {
	switch dt {
	case quant.F16:
		return ncclFloat16
	case quant.BF16:
		return ncclBfloat16
	}
	return ncclFloat32
}

// ncclAPI is the part of NCCL the backend calls, with C's argument types:
// ncclResult_t and the enums are int32, communicators and streams
// uintptr, device pointers uint64, size_t uint64. Tests fill it with
// fakes.
type ncclAPI struct {
	ncclGetVersion     func(version *int32) int32
	ncclGetErrorString func(code int32) *byte
	ncclCommInitAll    func(comms *uintptr, ndev int32, devlist *int32) int32
	ncclCommDestroy    func(comm uintptr) int32
	ncclGroupStart     func() int32
	ncclGroupEnd       func() int32
	ncclAllReduce      func(send, recv uint64, count uint64, dtype, op int32, comm, stream uintptr) int32
	ncclAllGather      func(send, recv uint64, count uint64, dtype int32, comm, stream uintptr) int32

	// lib is the library that was loaded, set by the loader.
	lib string
}

func (a *ncclAPI) symbols() []symbol {
	return []symbol{
		{&a.ncclGetVersion, "ncclGetVersion"},
		{&a.ncclGetErrorString, "ncclGetErrorString"},
		{&a.ncclCommInitAll, "ncclCommInitAll"},
		{&a.ncclCommDestroy, "ncclCommDestroy"},
		{&a.ncclGroupStart, "ncclGroupStart"},
		{&a.ncclGroupEnd, "ncclGroupEnd"},
		{&a.ncclAllReduce, "ncclAllReduce"},
		{&a.ncclAllGather, "ncclAllGather"},
	}
}

// check turns an ncclResult_t into an error naming the call, or nil on
// success.
func (a *ncclAPI) check(call string, code int32) error {
	if code == 0 {
		return nil
	}
	desc := goString(a.ncclGetErrorString(code))
	if desc == "" {
		desc = "unknown error"
	}
	return &NCCLError{Call: call, Code: code, Desc: desc}
}

// version returns the library's version, such as "2.28.3", or "" if it
// cannot tell.
func (a *ncclAPI) version() string {
	var v int32
	if a.ncclGetVersion(&v) != 0 {
		return ""
	}
	// NCCL_VERSION_CODE: major·10000 + minor·100 + patch since 2.9.
	return fmt.Sprintf("%d.%d.%d", v/10000, v/100%100, v%100)
}

// ncclLibrary loads NCCL once per process.
var ncclLibrary = sync.OnceValues(loadNCCL)

// NCCL describes the NCCL library collectives run through, as "NCCL
// 2.28.3 (libnccl.so.2)", or why it is unavailable.
func NCCL() string {
	a, err := ncclLibrary()
	if err != nil {
		return "NCCL unavailable (" + err.Error() + ")"
	}
	s := "NCCL"
	if v := a.version(); v != "" {
		s += " " + v
	}
	return s + " (" + a.lib + ")"
}

// NewComm builds an NCCL communicator over CUDA drivers of distinct
// devices, rank r on drivers[r]'s device, with ncclCommInitAll in this
// process. Collectives run on each driver's stream, in one NCCL group
// issued from a thread of the communicator's own, and return once every
// stream is done. NCCL is loaded at the first communicator; NVLink
// multicast stays off unless NCCL_NVLS_ENABLE says otherwise (EnvNVLS).
func (d *Driver) NewComm(drivers []engine.Driver) (engine.Comm, error) {
	ds := make([]*Driver, len(drivers))
	for r, drv := range drivers {
		cd, ok := drv.(*Driver)
		if !ok {
			return nil, fmt.Errorf("%w: rank %d's driver %T is not from the cuda backend", engine.ErrArgs, r, drv)
		}
		ds[r] = cd
	}
	api, err := ncclLibrary()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
	}
	return newComm(api, ds)
}

// ncclComm is the CUDA backend's engine.Comm: one NCCL communicator per
// rank, created and driven from one OS thread.
type ncclComm struct {
	api     *ncclAPI
	exec    *osthread.Thread
	drivers []*Driver
	comms   []uintptr
}

// newComm checks that the drivers' devices are distinct, keeps NVLink
// multicast off unless the environment says otherwise, and creates the
// communicators.
func newComm(api *ncclAPI, drivers []*Driver) (*ncclComm, error) {
	devs := make([]int32, len(drivers))
	for r, d := range drivers {
		devs[r] = int32(d.ordinal)
		if q := slices.Index(devs[:r], devs[r]); q >= 0 {
			return nil, fmt.Errorf("%w: ranks %d and %d are both CUDA device %d: want distinct GPUs", engine.ErrArgs, q, r, d.ordinal)
		}
	}
	if _, ok := os.LookupEnv(EnvNVLS); !ok {
		if err := os.Setenv(EnvNVLS, "0"); err != nil {
			return nil, err
		}
	}
	c := &ncclComm{api: api, drivers: drivers, comms: make([]uintptr, len(drivers))}
	exec, err := osthread.Start("nccl", func() error {
		return api.check("ncclCommInitAll", api.ncclCommInitAll(&c.comms[0], int32(len(devs)), &devs[0]))
	}, nil)
	if err != nil {
		return nil, err
	}
	c.exec = exec
	return c, nil
}

// pointers returns the device address of each rank's memory.
func (c *ncclComm) pointers(mem []engine.Memory) ([]uint64, error) {
	ptrs := make([]uint64, len(mem))
	for r, m := range mem {
		dm, err := c.drivers[r].memoryOf(m)
		if err != nil {
			return nil, fmt.Errorf("rank %d: %w", r, err)
		}
		ptrs[r] = dm.ptr
	}
	return ptrs, nil
}

// AllReduce sums in place with ncclAllReduce, one call per rank in one
// group.
func (c *ncclComm) AllReduce(bufs []engine.Memory, dt quant.DType, count int) error {
	p, err := c.pointers(bufs)
	if err != nil {
		return err
	}
	t := ncclType(dt)
	return c.run("ncclAllReduce", func(r int) int32 {
		return c.api.ncclAllReduce(p[r], p[r], uint64(count), t, ncclSum, c.comms[r], c.drivers[r].stream)
	})
}

// AllGather gathers with ncclAllGather, one call per rank in one group.
func (c *ncclComm) AllGather(dst, src []engine.Memory, dt quant.DType, count int) error {
	dp, err := c.pointers(dst)
	if err != nil {
		return err
	}
	sp, err := c.pointers(src)
	if err != nil {
		return err
	}
	t := ncclType(dt)
	return c.run("ncclAllGather", func(r int) int32 {
		return c.api.ncclAllGather(sp[r], dp[r], uint64(count), t, c.comms[r], c.drivers[r].stream)
	})
}

// run issues call for every rank inside ncclGroupStart and ncclGroupEnd
// on the communicator's thread, the group closed even when a call fails,
// then waits for every rank's stream on its driver's thread.
func (c *ncclComm) run(name string, call func(r int) int32) error {
	a := c.api
	err := c.exec.Do(func() error {
		if err := a.check("ncclGroupStart", a.ncclGroupStart()); err != nil {
			return err
		}
		var failed error
		for r := range c.comms {
			if err := a.check(name, call(r)); err != nil {
				failed = fmt.Errorf("rank %d (CUDA device %d): %w", r, c.drivers[r].ordinal, err)
				break
			}
		}
		return errors.Join(failed, a.check("ncclGroupEnd", a.ncclGroupEnd()))
	})
	if errors.Is(err, osthread.ErrStopped) {
		return fmt.Errorf("%w: nccl communicator is closed", engine.ErrClosed)
	}
	if err != nil {
		return err
	}
	var errs []error
	for r, d := range c.drivers {
		err := d.do(func() error { return d.cu.check("cuStreamSynchronize", d.cu.cuStreamSynchronize(d.stream)) })
		if err != nil {
			errs = append(errs, fmt.Errorf("rank %d (CUDA device %d): %w", r, d.ordinal, err))
		}
	}
	return errors.Join(errs...)
}

// Close destroys the communicators; the devices stay open.
func (c *ncclComm) Close() error {
	err := c.exec.Do(func() error {
		var errs []error
		for _, comm := range c.comms {
			errs = append(errs, c.api.check("ncclCommDestroy", c.api.ncclCommDestroy(comm)))
		}
		return errors.Join(errs...)
	})
	c.exec.Stop()
	return err
}
