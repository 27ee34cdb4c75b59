// Package metal is mlxq's Apple GPU backend. It drives Metal through the
// Objective-C runtime with purego, without cgo, so that it builds
// everywhere with CGO_ENABLED=0; on every OS but macOS, and on Macs without
// an Apple GPU, Open reports engine.ErrUnavailable and engine.Auto falls
// back to the next backend. It registers itself as backend "metal" with
// priority 20 (above cuda and cpu); import it for its side effect:
//
//	import _ "github.com/mlxq/mlxq/metal"
//
// # Threads and objects
//
// All Objective-C calls of a Driver run on one goroutine locked to its OS
// thread, each call of work inside its own autorelease pool; the other
// methods hand their work to it over a channel. Objects the backend
// creates (new*, alloc/init: the device, the command queue, buffers,
// libraries, functions, pipelines, strings, compile options) are released
// when done with; command buffers and encoders are autoreleased with their
// pool. NSError descriptions become the text of Go errors.
//
// # Memory
//
// Alloc is newBufferWithLength:options: in shared storage (one memory for
// CPU and GPU on Apple silicon), rounded up to 256 bytes and zeroed.
// Upload and Download copy through the buffer's contents, so a source of
// any alignment (an MLX tensor in an mmap'ed file often starts at an odd
// offset) lands in a page-aligned Metal buffer that every kernel binds at
// offset 0. Queue.Write copies its source when it is recorded and becomes
// a blit in the command buffer, ordered with the dispatches around it.
//
// # Kernels
//
// Each engine.Variant is one compile unit (CompileUnit): a preamble of
// #defines (MLXQ_MODE, MLXQ_BITS, MLXQ_GROUP, MLXQ_ACT, MLXQ_SCALE),
// shaders/metal/common.metal and the kernel family's source, compiled at
// first use with newLibraryWithSource:options:error: (safe math, Metal
// Shading Language 3.1 where the unit uses bfloat; before macOS 14 those
// variants report engine.ErrUnsupported) into a compute pipeline cached by
// unit. Launch geometry, threadgroup memory and the buffer binding order
// are plain data in geometry.go (Geometry), the same on every OS. A
// Queue's Commit encodes all its dispatches into one command buffer (one
// compute encoder between writes), commits it and waits once.
//
// # Timing
//
// Driver implements engine.Timer with the command buffers' GPU start and
// end times, for benchmarks.
//
// # Off a Mac
//
// On machines without a Mac, go test ./metal checks every compile unit's
// syntax and types with g++ against shaders/metal/msl_check.h, and the test
// tools in metal/internal/msltest run the same MSL text, translated, on the
// CPU (one OS thread per Metal thread) against the float64 reference, and
// compile it as CUDA to PTX (MLXQ_MSLTEST_CPU=1 go test ./metal/...).
package metal
