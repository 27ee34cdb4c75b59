// Package cuda is mlxq's NVIDIA backend. It drives the CUDA driver API
// (libcuda.so.1) and the NVRTC run-time compiler through purego, without
// cgo, so that it builds everywhere with CGO_ENABLED=0; on machines without
// the driver, and on every OS but Linux, Open reports engine.ErrUnavailable
// and engine.Auto falls back to the next backend. It registers itself as
// backend "cuda" with priority 10; import it for its side effect:
//
//	import _ "github.com/mlxq/mlxq/cuda"
//
// # Threads, context and stream
//
// All CUDA calls of a Driver run on one goroutine locked to its OS thread,
// on which the device's primary context is current; the other methods
// hand their work to it over a channel. The driver owns one non-blocking
// stream: copies and launches are ordered on it, and a Queue's Commit
// issues its work and synchronises the stream once.
//
// # Memory
//
// Alloc is cuMemAlloc: 256-byte aligned, rounded up to 256 bytes, zeroed.
// Upload, Download and Queue.Write go through two banks of page-locked
// host memory (up to 16 MiB each, grown on demand), so the host fills one
// bank while the device copies from the other; Write copies its source
// when it is recorded.
//
// # Kernels
//
// Each engine.Variant is one compile unit: a preamble of #defines
// (MLXQ_MODE, MLXQ_BITS, MLXQ_GROUP, MLXQ_ACT, MLXQ_SCALE) and the kernel
// family's source from package shaders, with common.cuh passed as an NVRTC
// header. NVRTC compiles it to a CUBIN for the device's exact
// architecture. Where NVRTC is missing, or MLXQ_CUDA_PTX=1, the backend
// loads PTX embedded in the binary (shaders/cuda/ptx.bundle, made from
// the same sources by go run ./cuda/internal/ptxgen) and JIT-compiles it
// with the driver's linker (cuLinkAddData/cuLinkComplete). Both results
// are cached on disk under os.UserCacheDir()/mlxq/cuda, keyed by the
// sha256 of the unit's text, the architecture and the driver and compiler
// versions; corrupt entries are ignored and rewritten, and
// MLXQ_CUDA_CACHE=off disables the cache. Launch geometry is in
// geometry.go.
//
// # Environment
//
//	MLXQ_CUDA_DEVICE  device ordinal (default 0)
//	MLXQ_CUDA_PTX     1: load the embedded PTX even where NVRTC exists
//	MLXQ_CUDA_CACHE   off: no on-disk kernel cache
//
// # Timing
//
// Driver implements Timer: it times closures of committed work with CUDA
// events on the device's stream, for benchmarks.
package cuda

//go:generate go run ./internal/ptxgen -src ../shaders/cuda -out ../shaders/cuda/ptx.bundle
