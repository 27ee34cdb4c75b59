package cuda

import (
	"errors"
	"fmt"
	"unsafe"
)

// ErrCUDA is wrapped by every error a CUDA driver call returns; test with
// errors.Is. The *Error in the chain has the call and CUDA's error code.
var ErrCUDA = errors.New("cuda driver error")

// ErrNVRTC is wrapped by every error of the NVRTC run-time compiler,
// compile failures included (their log is in the message).
var ErrNVRTC = errors.New("nvrtc error")

// Error is a failed CUDA driver call: the call's name and CUDA's result
// code, error name and description, as in
// "cuLaunchKernel: CUDA_ERROR_INVALID_VALUE: invalid argument".
type Error struct {
	Call string
	Code int32
	Name string
	Desc string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s: %s", e.Call, e.Name, e.Desc) }

// Unwrap returns ErrCUDA.
func (e *Error) Unwrap() error { return ErrCUDA }

// CUDA driver API constants (cuda.h).
const (
	cudaSuccess           = 0
	cudaErrorNoDevice     = 100
	cudaErrorInvalidImage = 200

	attrMaxThreadsPerBlock   = 1
	attrMultiprocessorCount  = 16
	attrComputeCapMajor      = 75
	attrComputeCapMinor      = 76
	attrMaxSharedPerBlockOpt = 97

	funcAttrMaxDynamicShared = 8

	streamNonBlocking  = 1
	eventDisableTiming = 2
	jitErrorLogBuffer  = 5
	jitErrorLogSize    = 6
	jitInputPTX        = 1
	defaultSharedLimit = 48 << 10
	kernelName         = "mlxq_kernel"
)

// cuAPI is the part of the CUDA driver API the backend calls, one field
// per function, with C's argument types: CUresult is int32, CUdevice int32,
// CUdeviceptr uint64, size_t uint64 and every other handle uintptr. Each
// field holds the versioned ABI symbol where cuda.h maps the name to one
// (cuMemAlloc is cuMemAlloc_v2, and so on). Tests fill it with fakes.
type cuAPI struct {
	cuInit                      func(flags uint32) int32
	cuDriverGetVersion          func(version *int32) int32
	cuGetErrorName              func(code int32, str **byte) int32
	cuGetErrorString            func(code int32, str **byte) int32
	cuDeviceGetCount            func(count *int32) int32
	cuDeviceGet                 func(dev *int32, ordinal int32) int32
	cuDeviceGetName             func(name *byte, n int32, dev int32) int32
	cuDeviceGetAttribute        func(v *int32, attr int32, dev int32) int32
	cuDeviceTotalMem            func(bytes *uint64, dev int32) int32
	cuDevicePrimaryCtxRetain    func(ctx *uintptr, dev int32) int32
	cuDevicePrimaryCtxRelease   func(dev int32) int32
	cuCtxSetCurrent             func(ctx uintptr) int32
	cuStreamCreate              func(stream *uintptr, flags uint32) int32
	cuStreamDestroy             func(stream uintptr) int32
	cuStreamSynchronize         func(stream uintptr) int32
	cuMemAlloc                  func(ptr *uint64, bytes uint64) int32
	cuMemFree                   func(ptr uint64) int32
	cuMemAllocHost              func(ptr *unsafe.Pointer, bytes uint64) int32
	cuMemFreeHost               func(ptr unsafe.Pointer) int32
	cuMemGetInfo                func(free, total *uint64) int32
	cuMemsetD8Async             func(dst uint64, value uint8, n uint64, stream uintptr) int32
	cuMemcpyHtoDAsync           func(dst uint64, src unsafe.Pointer, n uint64, stream uintptr) int32
	cuMemcpyDtoHAsync           func(dst unsafe.Pointer, src uint64, n uint64, stream uintptr) int32
	cuModuleLoadData            func(mod *uintptr, image unsafe.Pointer) int32
	cuModuleUnload              func(mod uintptr) int32
	cuModuleGetFunction         func(fn *uintptr, mod uintptr, name string) int32
	cuFuncSetAttribute          func(fn uintptr, attr int32, value int32) int32
	cuLaunchKernel              func(fn uintptr, gx, gy, gz, bx, by, bz, shared uint32, stream uintptr, params *unsafe.Pointer, extra *unsafe.Pointer) int32
	cuEventCreate               func(ev *uintptr, flags uint32) int32
	cuEventDestroy              func(ev uintptr) int32
	cuEventRecord               func(ev uintptr, stream uintptr) int32
	cuEventSynchronize          func(ev uintptr) int32
	cuEventElapsedTime          func(ms *float32, start, end uintptr) int32
	cuLinkCreate                func(n uint32, opts *int32, vals *uintptr, state *uintptr) int32
	cuLinkAddData               func(state uintptr, kind int32, data unsafe.Pointer, size uint64, name string, n uint32, opts *int32, vals *uintptr) int32
	cuLinkComplete              func(state uintptr, cubin *unsafe.Pointer, size *uint64) int32
	cuLinkDestroy               func(state uintptr) int32
	cuStreamBeginCapture        func(stream uintptr, mode int32) int32
	cuStreamEndCapture          func(stream uintptr, graph *uintptr) int32
	cuGraphInstantiateWithFlags func(exec *uintptr, graph uintptr, flags uint64) int32
	cuGraphLaunch               func(exec uintptr, stream uintptr) int32
	cuGraphExecDestroy          func(exec uintptr) int32
	cuGraphDestroy              func(graph uintptr) int32
}

// symbol is one function of a library: the Go function variable it is
// bound to, and the library's symbol.
type symbol struct {
	fn   any
	name string
}

// symbols lists the symbol bound to each field of a.
func (a *cuAPI) symbols() []symbol {
	return []symbol{
		{&a.cuInit, "cuInit"},
		{&a.cuDriverGetVersion, "cuDriverGetVersion"},
		{&a.cuGetErrorName, "cuGetErrorName"},
		{&a.cuGetErrorString, "cuGetErrorString"},
		{&a.cuDeviceGetCount, "cuDeviceGetCount"},
		{&a.cuDeviceGet, "cuDeviceGet"},
		{&a.cuDeviceGetName, "cuDeviceGetName"},
		{&a.cuDeviceGetAttribute, "cuDeviceGetAttribute"},
		{&a.cuDeviceTotalMem, "cuDeviceTotalMem_v2"},
		{&a.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"},
		{&a.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"},
		{&a.cuCtxSetCurrent, "cuCtxSetCurrent"},
		{&a.cuStreamCreate, "cuStreamCreate"},
		{&a.cuStreamDestroy, "cuStreamDestroy_v2"},
		{&a.cuStreamSynchronize, "cuStreamSynchronize"},
		{&a.cuMemAlloc, "cuMemAlloc_v2"},
		{&a.cuMemFree, "cuMemFree_v2"},
		{&a.cuMemAllocHost, "cuMemAllocHost_v2"},
		{&a.cuMemFreeHost, "cuMemFreeHost"},
		{&a.cuMemGetInfo, "cuMemGetInfo_v2"},
		{&a.cuMemsetD8Async, "cuMemsetD8Async"},
		{&a.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"},
		{&a.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"},
		{&a.cuModuleLoadData, "cuModuleLoadData"},
		{&a.cuModuleUnload, "cuModuleUnload"},
		{&a.cuModuleGetFunction, "cuModuleGetFunction"},
		{&a.cuFuncSetAttribute, "cuFuncSetAttribute"},
		{&a.cuLaunchKernel, "cuLaunchKernel"},
		{&a.cuEventCreate, "cuEventCreate"},
		{&a.cuEventDestroy, "cuEventDestroy_v2"},
		{&a.cuEventRecord, "cuEventRecord"},
		{&a.cuEventSynchronize, "cuEventSynchronize"},
		{&a.cuEventElapsedTime, "cuEventElapsedTime"},
		{&a.cuLinkCreate, "cuLinkCreate_v2"},
		{&a.cuLinkAddData, "cuLinkAddData_v2"},
		{&a.cuLinkComplete, "cuLinkComplete"},
		{&a.cuLinkDestroy, "cuLinkDestroy"},
		{&a.cuStreamBeginCapture, "cuStreamBeginCapture_v2"},
		{&a.cuStreamEndCapture, "cuStreamEndCapture"},
		{&a.cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags"},
		{&a.cuGraphLaunch, "cuGraphLaunch"},
		{&a.cuGraphExecDestroy, "cuGraphExecDestroy"},
		{&a.cuGraphDestroy, "cuGraphDestroy"},
	}
}

// check turns the result of a driver call into an error naming the call,
// or nil on success.
func (a *cuAPI) check(call string, code int32) error {
	if code == cudaSuccess {
		return nil
	}
	e := &Error{Call: call, Code: code}
	e.Name = a.errorText(a.cuGetErrorName, code)
	if e.Name == "" {
		e.Name = fmt.Sprintf("CUresult(%d)", code)
	}
	e.Desc = a.errorText(a.cuGetErrorString, code)
	if e.Desc == "" {
		e.Desc = "unknown error"
	}
	return e
}

func (a *cuAPI) errorText(f func(int32, **byte) int32, code int32) string {
	if f == nil {
		return ""
	}
	var s *byte
	if f(code, &s) != cudaSuccess || s == nil {
		return ""
	}
	return goString(s)
}

// goString copies the NUL-terminated C string at p.
func goString(p *byte) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// cString returns s as a NUL-terminated byte slice.
func cString(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}
