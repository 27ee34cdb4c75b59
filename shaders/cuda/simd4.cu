// simd4: y = x * dequant(W)^T (+ bias) from unpacked affine codes (one byte
// per code, [N, K]), group 32, exact float32 FMA.
//
// Geometry: blocks of 128 threads (4 warps), one 32 x 32 tile of y each
// (32 rows of x by 32 rows of W); grid = (ceil(N / 32), ceil(M / 32)).
// Each step stages 32 codes of K (one group); thread (warp v, lane l)
// computes y[m0 + 8v + i][n0 + l] for i < 8 (see mlxq_simd4 in common.cuh).
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(128)
mlxq_kernel(const void* x, const void* w, const void* scales, const void* biases,
            const float* bias, void* y, int M, int N, int K) {
    mlxq_codes_u8 code{(const u8*)w, K};
    mlxq_simd4<32>(x, scales, biases, bias, y, M, N, K, code);
}
