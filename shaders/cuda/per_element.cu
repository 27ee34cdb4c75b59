// per_element: y = x * dequant(W)^T (+ bias) from unpacked codes (one byte
// per code, [N, K]) of every format: affine of any width and group size,
// mxfp4, mxfp8 and nvfp4. Exact float32 FMA.
//
// Geometry: blocks of 16 x 16 threads; thread (tx, ty) of block (bx, by)
// computes y[16 by + ty][16 bx + tx] on its own, walking k in order;
// grid = (ceil(N / 16), ceil(M / 16)).
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(256)
mlxq_kernel(const void* x, const void* w, const void* scales, const void* biases,
            const float* bias, void* y, int M, int N, int K) {
    const int n = blockIdx.x * 16 + threadIdx.x;
    const int m = blockIdx.y * 16 + threadIdx.y;
    if (n >= N || m >= M) return;
    const u8* codes = (const u8*)w + (size_t)n * K;
    const size_t gpr = (size_t)(K / MLXQ_GROUP);
    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += MLXQ_GROUP) {
        const size_t gi = (size_t)n * gpr + (size_t)(k0 / MLXQ_GROUP);
        const float s = mlxq_load_scale(scales, gi);
        const float b = mlxq_load_qbias(biases, gi);
        for (int k = k0; k < k0 + MLXQ_GROUP; k++)
            acc = mlxq_fma(mlxq_load_act(x, (size_t)m * K + k), mlxq_dequant(codes[k], s, b), acc);
    }
    if (bias) acc += bias[n];
    mlxq_store_act(y, (size_t)m * N + n, acc);
}
