// Package engine is the contract between mlxq's layers and its compute
// backends, and the place where work is planned.
//
// A backend (cpu, cuda, metal) implements Driver and registers it with
// Register. Callers open a Device by backend name (or "auto"), allocate
// Buffers of device memory, move data with Upload and Download, and record
// kernel dispatches on an Encoder that submits them together on Commit.
// Every dispatch is checked on the host first, whatever the backend, against
// the Kernel catalog: the quantized matrix product kernels of the reference
// design (per-element, tiled, simd, simd4, simd4_gs64, packed_simd4_b4) and
// the unpack kernel that expands packed codes to bytes at load time.
//
// Plan picks the kernel and the weight layout for a layer on a device.
package engine
