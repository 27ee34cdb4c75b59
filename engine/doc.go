// Package engine is the contract between mlxq's layers and its compute
// backends, and the place where work is planned.
//
// A backend (cpu, cuda, metal) implements Driver and registers it with
// Register. Callers open a Device by backend name (or "auto"), allocate
// Buffers of device memory, move data with Upload and Download, and record
// kernel dispatches on an Encoder that submits them together on Commit.
// Every dispatch is checked on the host first, whatever the backend, against
// the Kernel catalog: the quantized matrix product kernels of the reference
// design (per-element, tiled, simd, simd4, simd4_gs64, packed_simd4_b4), the
// unpack kernel that expands packed codes to bytes at load time, and the
// packed kernels qmv and qmm that read MLX's words of every format as
// stored; and, on the same packed words, the embedding lookup Embed
// (EmbedArgs: rows by token id) and the gathered products GatherQMV and
// GatherQMM (GatherArgs: MLX's gather_qmm, rows of x through their top-k
// of stacked experts, routed on the host by Route into tiles of rows per
// expert). x and y are F32, F16 or BF16 (Params.Act); a backend compiles one
// Variant per kernel, format, activation dtype and scale dtype, and says
// in which Precision it computes, which fixes its tolerance.
//
// Plan picks the kernel and the weight layout for a layer on a device: qmv
// up to the device's measured Crossover M and qmm above it where both
// exist, the reference design's rules elsewhere. PlanGather picks between
// the two gathered products by the rows per expert.
package engine
