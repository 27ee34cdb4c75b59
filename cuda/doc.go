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
// header; the backend's own dequant and bias_add kernels (below) are
// compiled the same way. NVRTC compiles it to a CUBIN for the device's exact
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
// # QMM through cuBLAS
//
// QMM has a second implementation inside the driver, for large M: the
// packed weight is dequantized (every mode, width and group size, each
// weight computed in float32 and rounded once to the activation dtype) by
// the backend's own dequant kernel into a scratch buffer of the
// activation dtype, [rows, K] row-major, a chunk of rows at a time (256 MiB
// of scratch by default, allocated on first use, grown when needed, freed
// on Close); each chunk is multiplied by one cublasGemmEx on the driver's
// stream (column-major: C = y^T, m = rows, n = M, k = K, op(A) = T on the
// chunk, lda = ldb = K, ldc = N, CUBLAS_COMPUTE_32F, output in the
// activation dtype); then the bias_add kernel adds the optional Linear
// bias (y is rounded once by the GEMM and once after the bias). The
// precision is that of the activation dtype, as for the own kernel.
//
// The rule: a QMM dispatch with F16 or BF16 activations runs through
// cuBLAS when the path is enabled (the default), cuBLAS can be loaded and
// M >= cublasMinM (64); everything else runs the own kernels. The plan
// picks QMM only above Crossover, so at decode sizes qmv runs either way.
// The threshold and the default come from the benchmark (bench/cudabench
// times QMM both ways, kernels "qmm" and "qmm+cublas"; docs/perf.md): the
// path is 2 to 3.5 times faster than the own qmm kernel from M = 64 on.
// MLXQ_CUDA_CUBLAS=off (or Driver.SetCUBLAS(false)) disables it. cuBLAS
// is loaded with purego at the first dispatch that takes the path
// (libcublas.so.13, .12 or libcublas.so, from the library path, the CUDA
// toolkit under $CUDA_HOME, $CUDA_PATH or /usr/local/cuda, or pip's
// nvidia wheels); its handle is created on the driver's thread, in the
// primary context, bound to the driver's stream with a 32 MiB workspace
// of the driver's. Without cuBLAS the own kernel runs and Driver.CUBLAS
// says why.
//
// # Collectives
//
// Driver implements engine.Communicator through NCCL, loaded with purego
// at the first communicator (libnccl.so.2 or libnccl.so, from the library
// path, the CUDA toolkit or pip's nvidia-nccl wheels, nvidia/nccl/lib):
// engine.NewCollective over devices opened by ordinal (OpenOrdinal,
// engine.OpenDevice("cuda:1")) creates one communicator per device with
// ncclCommInitAll, on a thread of its own. An all-reduce or all-gather
// issues ncclAllReduce (sum, in place) or ncclAllGather for every rank on
// that rank's driver stream inside one ncclGroupStart/ncclGroupEnd, then
// waits for every stream. Errors name the call, the rank and NCCL's
// result and description (ncclGetErrorString); NCCL_DEBUG=WARN makes NCCL
// say more. NVLink multicast is kept off: NCCL_NVLS_ENABLE is set to 0 in
// the process environment before NCCL initialises, unless it is set
// already.
//
// # CUDA graphs
//
// A commit of two or more kernel launches (no copies, no QMM through
// cuBLAS) that comes again with the same kernels, grids, blocks, shared
// memory and parameters, as a decoding step's layers do, is captured into
// a CUDA graph the second time and replayed with one cuGraphLaunch from
// then on: the host pays one call per commit instead of one per kernel.
// The driver keeps the 64 most recently used graphs. A capture that fails
// leaves that commit to plain launches. MLXQ_CUDA_GRAPHS=off disables
// graphs.
//
// # Environment
//
//	MLXQ_CUDA_DEVICE           device ordinal (default 0)
//	MLXQ_CUDA_PTX              1: load the embedded PTX even where NVRTC exists
//	MLXQ_CUDA_CACHE            off: no on-disk kernel cache
//	MLXQ_CUDA_GRAPHS           off: no replay of repeated commits as CUDA graphs
//	MLXQ_CUDA_CUBLAS           off: QMM of F16/BF16 activations never through cuBLAS (default on)
//	MLXQ_CUDA_CUBLAS_MIN_M     the smallest M of that path (default 64)
//	MLXQ_CUDA_CUBLAS_CHUNK_MB  MiB of dequantized weight per GEMM (default 256)
//	NCCL_NVLS_ENABLE           NCCL's NVLink multicast; set to 0 unless given
//
// # Timing
//
// Driver implements Timer: it times closures of committed work with CUDA
// events on the device's stream, for benchmarks.
package cuda

//go:generate go run ./internal/ptxgen -src ../shaders/cuda -out ../shaders/cuda/ptx.bundle
