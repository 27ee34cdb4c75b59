// tiled: y = x * dequant(W)^T (+ bias) from unpacked affine codes (one byte
// per code, [N, K]), group 32, exact float32 FMA.
//
// Geometry: blocks of 16 x 16 threads compute one 16 x 16 tile of y;
// grid = (ceil(N / 16), ceil(M / 16)). Per step of 32 codes (one group) the
// block stages x[16][32] and the dequantized w[16][32] in shared memory (two
// elements per thread), then thread (tx, ty) accumulates
// y[16 by + ty][16 bx + tx] over the step's k in order.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(256)
mlxq_kernel(const void* x, const void* w, const void* scales, const void* biases,
            const float* bias, void* y, int M, int N, int K) {
    __shared__ float xs[16][33];
    __shared__ float ws[16][33];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * 16 + tx;
    const int n0 = blockIdx.x * 16, m0 = blockIdx.y * 16;
    const u8* codes = (const u8*)w;
    const size_t gpr = (size_t)(K / MLXQ_GROUP);
    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += 32) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int e = tid + 256 * h;
            const int r = e >> 5, k = e & 31;
            const int m = m0 + r, n = n0 + r;
            xs[r][k] = (m < M) ? mlxq_load_act(x, (size_t)m * K + k0 + k) : 0.0f;
            float wv = 0.0f;
            if (n < N) {
                const size_t gi = (size_t)n * gpr + (size_t)((k0 + k) / MLXQ_GROUP);
                wv = mlxq_dequant(codes[(size_t)n * K + k0 + k], mlxq_load_scale(scales, gi),
                                  mlxq_load_qbias(biases, gi));
            }
            ws[r][k] = wv;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < 32; k++) acc = mlxq_fma(xs[ty][k], ws[tx][k], acc);
        __syncthreads();
    }
    const int n = n0 + tx, m = m0 + ty;
    if (n < N && m < M) {
        if (bias) acc += bias[n];
        mlxq_store_act(y, (size_t)m * N + n, acc);
    }
}
