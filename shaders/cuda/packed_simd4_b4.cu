// packed_simd4_b4: simd4 reading MLX's packed 4-bit words directly (affine,
// group 32), with no unpack pass.
//
// Geometry: blocks of 128 threads (4 warps), one 32 x 32 tile of y each;
// grid = (ceil(N / 32), ceil(M / 32)). The body is simd4's (mlxq_simd4 in
// common.cuh) with codes read from the packed words, so the results equal
// simd4's bit for bit on the same codes.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(128)
mlxq_kernel(const void* x, const void* w, const void* scales, const void* biases,
            const float* bias, void* y, int M, int N, int K) {
    mlxq_codes_packed4 code{(const u32*)w, K};
    mlxq_simd4<32>(x, scales, biases, bias, y, M, N, K, code);
}
