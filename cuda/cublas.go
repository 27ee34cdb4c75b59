package cuda

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/quant"
)

// Environment variables of the cuBLAS path of QMM, read by Open.
const (
	// EnvCUBLAS, set to off, disables the cuBLAS path of QMM (on by
	// default where cuBLAS is found).
	EnvCUBLAS = "MLXQ_CUDA_CUBLAS"
	// EnvCUBLASMinM overrides cublasMinM, the smallest M the path takes.
	EnvCUBLASMinM = "MLXQ_CUDA_CUBLAS_MIN_M"
	// EnvCUBLASChunkMB sets the size of the dequantized weight scratch in
	// MiB (default 256).
	EnvCUBLASChunkMB = "MLXQ_CUDA_CUBLAS_CHUNK_MB"
)

// cublasMinM is the smallest M at which QMM runs through dequant + cuBLAS
// when the path is enabled. Measured on the H200 (bench/cudabench, kernels
// "qmm" and "qmm+cublas", docs/perf.md): from M = 64 on the path is faster
// than the own qmm kernel on every benchmark shape (14336 x 4096, 4-bit
// g64, bf16: 125 against 129 us at M = 64 with the old dequant, 174
// against 373 us at M = 512, 705 against 2463 us at M = 4096).
var cublasMinM = 64

// cublasChunkBytes is the default size of the scratch buffer that holds
// the dequantized weight, a chunk of rows at a time. Fewer, larger GEMMs
// are faster: 14336 x 4096 at M = 4096 ran at 0.90x cuBLAS on the dense
// weight in one chunk and 0.73x in chunks of 8192 rows.
var cublasChunkBytes = 256 << 20

// cublasWorkspaceBytes is the workspace given to cuBLAS (NVIDIA advises
// 32 MiB on Hopper).
const cublasWorkspaceBytes = 32 << 20

// cublasRowAlign is the granularity of the rows of a chunk: 128 rows of a
// 16-bit output are 256 bytes, so every chunk's slice of y starts on a
// 256-byte boundary when y does.
const cublasRowAlign = 128

// cublasLibraries are the sonames cuBLAS is tried under, newest first.
var cublasLibraries = []string{"libcublas.so.13", "libcublas.so.12", "libcublas.so"}

// cublasActs are the activation dtypes the cuBLAS path takes.
var cublasActs = []quant.DType{quant.F16, quant.BF16}

// ErrCUBLAS is wrapped by every error a cuBLAS call returns; the
// *CUBLASError in the chain has the call and the status.
var ErrCUBLAS = errors.New("cublas error")

// CUBLASError is a failed cuBLAS call: the call's name and its status, as
// in "cublasGemmEx: CUBLAS_STATUS_INVALID_VALUE".
type CUBLASError struct {
	Call   string
	Status int32
}

func (e *CUBLASError) Error() string { return e.Call + ": " + cublasStatusName(e.Status) }

// Unwrap returns ErrCUBLAS.
func (e *CUBLASError) Unwrap() error { return ErrCUBLAS }

// cublasStatusNames are the names of cublasStatus_t (cublas_api.h).
var cublasStatusNames = map[int32]string{
	0:  "CUBLAS_STATUS_SUCCESS",
	1:  "CUBLAS_STATUS_NOT_INITIALIZED",
	3:  "CUBLAS_STATUS_ALLOC_FAILED",
	7:  "CUBLAS_STATUS_INVALID_VALUE",
	8:  "CUBLAS_STATUS_ARCH_MISMATCH",
	11: "CUBLAS_STATUS_MAPPING_ERROR",
	13: "CUBLAS_STATUS_EXECUTION_FAILED",
	14: "CUBLAS_STATUS_INTERNAL_ERROR",
	15: "CUBLAS_STATUS_NOT_SUPPORTED",
	16: "CUBLAS_STATUS_LICENSE_ERROR",
}

func cublasStatusName(s int32) string {
	if n, ok := cublasStatusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("cublasStatus(%d)", s)
}

// checkCUBLAS turns a cublasStatus_t into an error naming the call, or
// nil on success.
func checkCUBLAS(call string, status int32) error {
	if status == 0 {
		return nil
	}
	return &CUBLASError{Call: call, Status: status}
}

// cuBLAS and CUDA library constants (cublas_api.h, library_types.h).
const (
	cublasOpN        = 0  // CUBLAS_OP_N
	cublasOpT        = 1  // CUBLAS_OP_T
	cudaR16F         = 2  // CUDA_R_16F
	cudaR16BF        = 14 // CUDA_R_16BF
	cublasCompute32F = 68 // CUBLAS_COMPUTE_32F
	cublasGemmDflt   = -1 // CUBLAS_GEMM_DEFAULT
	libMajorVersion  = 0  // MAJOR_VERSION of libraryPropertyType
	libMinorVersion  = 1
	libPatchLevel    = 2
)

// cublasAPI is the part of cuBLAS the backend calls, with C's argument
// types: cublasStatus_t and the enums are int32, handles and streams
// uintptr, device pointers uint64. Tests fill it with fakes.
type cublasAPI struct {
	cublasCreate       func(handle *uintptr) int32
	cublasDestroy      func(handle uintptr) int32
	cublasSetStream    func(handle, stream uintptr) int32
	cublasSetWorkspace func(handle uintptr, workspace uint64, bytes uint64) int32
	cublasGetProperty  func(prop int32, value *int32) int32
	cublasGemmEx       func(handle uintptr, transa, transb, m, n, k int32, alpha unsafe.Pointer,
		a uint64, atype, lda int32, b uint64, btype, ldb int32, beta unsafe.Pointer,
		c uint64, ctype, ldc int32, compute, algo int32) int32

	// lib is the library that was loaded, set by the loader.
	lib string
}

func (a *cublasAPI) symbols() []symbol {
	return []symbol{
		{&a.cublasCreate, "cublasCreate_v2"},
		{&a.cublasDestroy, "cublasDestroy_v2"},
		{&a.cublasSetStream, "cublasSetStream_v2"},
		{&a.cublasSetWorkspace, "cublasSetWorkspace_v2"},
		{&a.cublasGetProperty, "cublasGetProperty"},
		{&a.cublasGemmEx, "cublasGemmEx"},
	}
}

// version returns the library's version, such as "13.1.0", or "" if it
// cannot tell.
func (a *cublasAPI) version() string {
	if a.cublasGetProperty == nil {
		return ""
	}
	var v [3]int32
	for i, p := range []int32{libMajorVersion, libMinorVersion, libPatchLevel} {
		if a.cublasGetProperty(p, &v[i]) != 0 {
			return ""
		}
	}
	return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2])
}

// cublasConfig is the part of config the cuBLAS path reads.
type cublasConfig struct {
	on         bool
	minM       int // 0: cublasMinM
	chunkBytes int // 0: cublasChunkBytes
	// load loads cuBLAS; nil: loadCUBLAS.
	load func() (*cublasAPI, error)
}

// cublasConfigFromEnv reads the cuBLAS path's settings.
func cublasConfigFromEnv() (cublasConfig, error) {
	var c cublasConfig
	switch s := strings.ToLower(strings.TrimSpace(os.Getenv(EnvCUBLAS))); s {
	case "0", "off", "false", "no":
	case "", "1", "on", "true", "yes":
		c.on = true
	default:
		return c, fmt.Errorf("%s=%q, want on or off", EnvCUBLAS, s)
	}
	if s := strings.TrimSpace(os.Getenv(EnvCUBLASMinM)); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return c, fmt.Errorf("%s=%q, want a row count >= 1", EnvCUBLASMinM, s)
		}
		c.minM = n
	}
	if s := strings.TrimSpace(os.Getenv(EnvCUBLASChunkMB)); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1<<14 {
			return c, fmt.Errorf("%s=%q, want MiB in 1..16384", EnvCUBLASChunkMB, s)
		}
		c.chunkBytes = n << 20
	}
	return c, nil
}

// cublasPath is the state of the driver's second QMM implementation: the
// weight dequantized into a scratch buffer of the activation dtype, a
// chunk of rows at a time, each chunk multiplied by one cublasGemmEx, and
// the Linear bias added by bias_add.
type cublasPath struct {
	load func() (*cublasAPI, error)

	mu      sync.Mutex
	api     *cublasAPI // nil until loaded
	ready   bool       // the handle exists
	why     string     // why the path is unavailable, once it failed
	on      bool
	minM    int
	chunk   int                        // scratch bytes per chunk
	kernels map[engine.Variant]*kernel // dequant and bias_add, compiled on first use
	gemms   int                        // GEMMs issued, for tests

	// Owned by the executor's thread.
	handle       uintptr
	work         uint64
	scratch      uint64
	scratchBytes int
	consts       *[2]float32 // alpha = 1, beta = 0, host memory
}

func newCUBLASPath(c cublasConfig) *cublasPath {
	p := &cublasPath{load: c.load, on: c.on, minM: c.minM, chunk: c.chunkBytes, kernels: map[engine.Variant]*kernel{}}
	if p.load == nil {
		p.load = loadCUBLAS
	}
	if p.minM <= 0 {
		p.minM = cublasMinM
	}
	if p.chunk <= 0 {
		p.chunk = cublasChunkBytes
	}
	return p
}

// cublasSelects is the selection rule: QMM with F16 or BF16 activations
// runs through dequant + cuBLAS when the path is enabled and usable (cuBLAS
// loaded and its handle created, or not tried yet) and M >= minM.
func cublasSelects(ready bool, minM int, v engine.Variant, m int) bool {
	return ready && v.Kernel == engine.QMM && slices.Contains(cublasActs, v.Act) && m >= minM
}

// selects applies the rule and returns the scratch budget.
func (p *cublasPath) selects(v engine.Variant, m int) (bool, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return cublasSelects(p.on && p.why == "", p.minM, v, m), p.chunk
}

// SetCUBLAS enables or disables the cuBLAS path of QMM. Enabling loads
// cuBLAS and creates its handle on first use; if that fails, the path
// stays off, the error says why, and QMM keeps running the backend's own
// kernel.
func (d *Driver) SetCUBLAS(on bool) error {
	p := d.gemm
	if !on {
		p.mu.Lock()
		p.on = false
		p.mu.Unlock()
		return nil
	}
	if err := d.readyCUBLAS(); err != nil {
		return err
	}
	p.mu.Lock()
	p.on = true
	p.mu.Unlock()
	return nil
}

// SetCUBLASMinM sets the smallest M the cuBLAS path takes (at least 1).
func (d *Driver) SetCUBLASMinM(m int) {
	p := d.gemm
	p.mu.Lock()
	p.minM = max(m, 1)
	p.mu.Unlock()
}

// CUBLASMinM returns the smallest M at which QMM with F16 or BF16
// activations takes the cuBLAS path, or 0 where the path is off or
// cuBLAS failed to load.
func (d *Driver) CUBLASMinM() int {
	p := d.gemm
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.on || p.why != "" {
		return 0
	}
	return p.minM
}

// setCUBLASChunk sets the scratch budget of later dispatches, in bytes.
func (d *Driver) setCUBLASChunk(n int) {
	p := d.gemm
	p.mu.Lock()
	p.chunk = max(n, 1)
	p.mu.Unlock()
}

// CUBLAS describes the cuBLAS path of QMM: "cuBLAS 13.1.0
// (libcublas.so.13): on for QMM with F16/BF16 activations at M >= 512",
// "off", or why it is unavailable.
func (d *Driver) CUBLAS() string {
	p := d.gemm
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.why != "":
		return "cuBLAS unavailable (" + p.why + ")"
	case p.api == nil && !p.on:
		return "cuBLAS off (" + EnvCUBLAS + "=on enables it)"
	}
	s := "cuBLAS"
	if p.api == nil {
		s += " (loaded at first use)"
	} else {
		if v := p.api.version(); v != "" {
			s += " " + v
		}
		if p.api.lib != "" {
			s += " (" + p.api.lib + ")"
		}
	}
	if !p.on {
		return s + ": off"
	}
	return fmt.Sprintf("%s: on for QMM with F16/BF16 activations at M >= %d", s, p.minM)
}

// readyCUBLAS loads cuBLAS and creates its handle on the device's thread,
// once; a failure is remembered and returned again.
func (d *Driver) readyCUBLAS() error {
	p := d.gemm
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ready {
		return nil
	}
	if p.why != "" {
		return errors.New(p.why)
	}
	fail := func(err error) error {
		p.why = err.Error()
		return err
	}
	if p.api == nil {
		api, err := p.load()
		if err != nil {
			return fail(err)
		}
		p.api = api
	}
	if err := d.do(p.create(d)); err != nil {
		return fail(err)
	}
	p.ready = true
	return nil
}

// create returns the executor function that creates the handle, binds it
// to the device's stream and gives it its workspace.
func (p *cublasPath) create(d *Driver) func() error {
	return func() error {
		a, cu := p.api, d.cu
		if err := checkCUBLAS("cublasCreate_v2", a.cublasCreate(&p.handle)); err != nil {
			return err
		}
		// cublasSetStream resets the workspace, so it comes first.
		err := checkCUBLAS("cublasSetStream_v2", a.cublasSetStream(p.handle, d.stream))
		if err == nil {
			err = cu.check("cuMemAlloc_v2", cu.cuMemAlloc(&p.work, cublasWorkspaceBytes))
		}
		if err == nil {
			err = checkCUBLAS("cublasSetWorkspace_v2", a.cublasSetWorkspace(p.handle, p.work, cublasWorkspaceBytes))
		}
		if err != nil {
			return errors.Join(err, p.release(d))
		}
		p.consts = &[2]float32{1, 0}
		return nil
	}
}

// release destroys the handle and frees the workspace and the scratch;
// it runs on the executor with the stream idle.
func (p *cublasPath) release(d *Driver) error {
	var errs []error
	cu := d.cu
	if p.handle != 0 {
		errs = append(errs, checkCUBLAS("cublasDestroy_v2", p.api.cublasDestroy(p.handle)))
		p.handle = 0
	}
	for _, m := range []*uint64{&p.work, &p.scratch} {
		if *m != 0 {
			errs = append(errs, cu.check("cuMemFree_v2", cu.cuMemFree(*m)))
			*m = 0
		}
	}
	p.scratchBytes = 0
	return errors.Join(errs...)
}

// gemmOp is one QMM through the cuBLAS path, recorded by Matmul and run by
// runGEMM on the executor.
type gemmOp struct {
	variant                          engine.Variant
	dequant                          *kernel
	bias                             *kernel // nil without a Linear bias
	x, w, scales, biases, linBias, y uint64
	m, n, k                          int
	chunkBytes                       int // scratch budget
}

// gemmFor returns the cuBLAS path's op for a QMM launch of k on a, or nil
// where the own kernel runs.
func (d *Driver) gemmFor(k *kernel, a *engine.MatmulArgs) (*gemmOp, error) {
	v := k.variant
	ok, budget := d.gemm.selects(v, a.M)
	if !ok {
		return nil, nil
	}
	if err := d.readyCUBLAS(); err != nil {
		// cuBLAS is missing or failed: the own kernel runs, and CUBLAS
		// says why.
		return nil, nil
	}
	dv := v
	dv.Kernel = kernelDequant
	dq, err := d.internalKernel(dv)
	if err != nil {
		return nil, err
	}
	g := &gemmOp{variant: v, dequant: dq, x: ptrOf(a.X), w: ptrOf(a.W), scales: ptrOf(a.Scales), biases: ptrOf(a.Biases),
		linBias: ptrOf(a.Bias), y: ptrOf(a.Y), m: a.M, n: a.N, k: a.K, chunkBytes: budget}
	if a.Bias != nil {
		if g.bias, err = d.internalKernel(engine.Variant{Kernel: kernelBiasAdd, Act: v.Act}); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// internalKernel compiles one of the backend's own kernels once.
func (d *Driver) internalKernel(v engine.Variant) (*kernel, error) {
	p := d.gemm
	p.mu.Lock()
	k, ok := p.kernels[v]
	p.mu.Unlock()
	if ok {
		return k, nil
	}
	c, err := d.Compile(v)
	if err != nil {
		return nil, fmt.Errorf("%s for %v: %w", familyName(v.Kernel), v.Format, err)
	}
	k = c.(*kernel)
	p.mu.Lock()
	p.kernels[v] = k
	p.mu.Unlock()
	return k, nil
}

// chunkRows returns the rows of the weight dequantized per chunk: all n
// rows if they fit in budget bytes of elem-byte values, else the most
// multiple of cublasRowAlign rows that fit (at least cublasRowAlign).
func chunkRows(n, k, elem, budget int) int {
	rowBytes := k * elem
	if n*rowBytes <= budget {
		return n
	}
	rows := budget / rowBytes / cublasRowAlign * cublasRowAlign
	return min(max(rows, cublasRowAlign), n)
}

// chunk is rows r0 .. r0 + rows - 1 of the weight.
type chunk struct{ r0, rows int }

// chunks splits n rows into chunks of per rows.
func chunks(n, per int) []chunk {
	var out []chunk
	for r0 := 0; r0 < n; r0 += per {
		out = append(out, chunk{r0, min(per, n-r0)})
	}
	return out
}

// gemmArgs are the arguments of one cublasGemmEx call.
type gemmArgs struct {
	transa, transb int32
	m, n, k        int32
	a              uint64
	atype, lda     int32
	b              uint64
	btype, ldb     int32
	c              uint64
	ctype, ldc     int32
	compute, algo  int32
}

// cudaDataType returns CUDA's data type of a 16-bit activation dtype.
func cudaDataType(act quant.DType) int32 {
	if act == quant.BF16 {
		return cudaR16BF
	}
	return cudaR16F
}

// gemmArgsFor maps the product of one chunk onto cuBLAS's column-major
// GEMM, C = op(A)·op(B). Row-major x [M, K], the chunk's dequantized rows
// wdq [rows, K] and y [M, N] are, read column-major, x^T (K x M, ld K),
// wdq^T (K x rows, ld K) and y^T (N x M, ld N); so y^T[r0:r0+rows, :] =
// wdq · x^T is m = rows, n = M, k = K with op(A) = T on A = wdq (lda K),
// op(B) = N on B = x (ldb K), and C = y + r0 elements (ldc N), all in
// the activation dtype, computed in float32.
func gemmArgsFor(act quant.DType, x, wdq, y uint64, m, n, k int, c chunk) gemmArgs {
	dt := cudaDataType(act)
	return gemmArgs{
		transa: cublasOpT, transb: cublasOpN,
		m: int32(c.rows), n: int32(m), k: int32(k),
		a: wdq, atype: dt, lda: int32(k),
		b: x, btype: dt, ldb: int32(k),
		c: y + uint64(c.r0*act.Size()), ctype: dt, ldc: int32(n),
		compute: cublasCompute32F, algo: cublasGemmDflt,
	}
}

// gemmEx calls cublasGemmEx with alpha = 1 and beta = 0.
func (p *cublasPath) gemmEx(g gemmArgs) error {
	var pin runtime.Pinner
	pin.Pin(p.consts)
	defer pin.Unpin()
	alpha, beta := unsafe.Pointer(&p.consts[0]), unsafe.Pointer(&p.consts[1])
	code := p.api.cublasGemmEx(p.handle, g.transa, g.transb, g.m, g.n, g.k, alpha,
		g.a, g.atype, g.lda, g.b, g.btype, g.ldb, beta, g.c, g.ctype, g.ldc, g.compute, g.algo)
	p.gemms++
	return checkCUBLAS("cublasGemmEx", code)
}

// reserveScratch makes the scratch hold at least n bytes; growing it
// waits for the stream, which may still read the old one.
func (p *cublasPath) reserveScratch(d *Driver, n int) error {
	if p.scratchBytes >= n {
		return nil
	}
	cu := d.cu
	if p.scratch != 0 {
		if err := cu.check("cuStreamSynchronize", cu.cuStreamSynchronize(d.stream)); err != nil {
			return err
		}
		if err := cu.check("cuMemFree_v2", cu.cuMemFree(p.scratch)); err != nil {
			return err
		}
		p.scratch, p.scratchBytes = 0, 0
	}
	size := roundUp(n, allocAlign)
	if err := cu.check("cuMemAlloc_v2", cu.cuMemAlloc(&p.scratch, uint64(size))); err != nil {
		return fmt.Errorf("cuBLAS path scratch of %d bytes: %w", size, err)
	}
	p.scratchBytes = size
	return nil
}

// runGEMM issues one QMM through the cuBLAS path on the stream: per chunk
// of rows, dequant into the scratch and one GEMM into the chunk's columns
// of y; then bias_add. The stream orders each chunk's dequant after the
// previous chunk's GEMM. It runs on the executor.
func (d *Driver) runGEMM(g *gemmOp, slots *[maxParams]uint64, ptrs *[maxParams]unsafe.Pointer) error {
	p := d.gemm
	if p.handle == 0 {
		return errors.New("cuBLAS path: no cuBLAS handle")
	}
	elem := g.variant.Act.Size()
	per := chunkRows(g.n, g.k, elem, g.chunkBytes)
	if err := p.reserveScratch(d, per*g.k*elem); err != nil {
		return err
	}
	where := func(step string, c chunk) string {
		return fmt.Sprintf("%v through cuBLAS (M=%d, N=%d, K=%d), %s of rows %d..%d", g.variant, g.m, g.n, g.k, step, c.r0, c.r0+c.rows-1)
	}
	for _, c := range chunks(g.n, per) {
		o, err := d.launchOf(g.dequant, engine.Params{N: c.rows, K: g.k})
		if err == nil {
			o.add(g.w, g.scales, g.biases, p.scratch, i32(c.r0), i32(c.rows), i32(g.k))
			err = d.launchKernel(&o, slots, ptrs)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", where("dequant", c), err)
		}
		if err := p.gemmEx(gemmArgsFor(g.variant.Act, g.x, p.scratch, g.y, g.m, g.n, g.k, c)); err != nil {
			return fmt.Errorf("%s: %w", where("GEMM", c), err)
		}
	}
	if g.bias != nil {
		o, err := d.launchOf(g.bias, engine.Params{M: g.m, N: g.n})
		if err == nil {
			o.add(g.y, g.linBias, i32(g.m), i32(g.n))
			err = d.launchKernel(&o, slots, ptrs)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", where("bias_add", chunk{0, g.n}), err)
		}
	}
	return nil
}
