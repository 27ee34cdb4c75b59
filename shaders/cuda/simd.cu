// simd: y = x * dequant(W)^T (+ bias) from unpacked affine codes (one byte
// per code, [N, K]), group 32, exact float32 FMA.
//
// Geometry: blocks of 256 threads (8 warps); each warp computes one output
// y[m][n] with m = blockIdx.y and n = 8 blockIdx.x + warp; grid =
// (ceil(N / 8), M). Lane l takes code l of every group of 32 (one group per
// step, so each lane's scale and bias are the group's), accumulates its
// products in float32, and the warp sums the lanes with shuffles.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(256)
mlxq_kernel(const void* x, const void* w, const void* scales, const void* biases,
            const float* bias, void* y, int M, int N, int K) {
    const int lane = threadIdx.x & 31;
    const int n = blockIdx.x * 8 + (threadIdx.x >> 5);
    const int m = blockIdx.y;
    if (n >= N || m >= M) return;
    const u8* codes = (const u8*)w + (size_t)n * K;
    const size_t gpr = (size_t)(K / MLXQ_GROUP);
    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += 32) {
        const size_t gi = (size_t)n * gpr + (size_t)(k0 / MLXQ_GROUP);
        const float wv = mlxq_dequant(codes[k0 + lane], mlxq_load_scale(scales, gi), mlxq_load_qbias(biases, gi));
        acc = mlxq_fma(mlxq_load_act(x, (size_t)m * K + k0 + lane), wv, acc);
    }
    acc = mlxq_warp_sum(acc);
    if (lane == 0) {
        if (bias) acc += bias[n];
        mlxq_store_act(y, (size_t)m * N + n, acc);
    }
}
