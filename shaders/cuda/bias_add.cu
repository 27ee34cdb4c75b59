// bias_add: y[m, n] += bias[n] for the m < M rows of an [M, N] output of
// the activation dtype, in float32 with one rounding: the Linear bias of
// the backend's cuBLAS QMM path, whose GEMM writes y already rounded.
//
// Geometry: blocks of 256 threads; thread t of block (bx, by) owns column
// n = 256 bx + t and walks rows m = by, by + gridDim.y, ...;
// grid = (ceil(N / 256), min(M, 65535), 1).
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(256)
mlxq_kernel(void* y, const float* bias, int M, int N) {
    const int n = blockIdx.x * 256 + threadIdx.x;
    if (n >= N) return;
    const float b = bias[n];
    for (int m = blockIdx.y; m < M; m += gridDim.y) {
        const size_t i = (size_t)m * N + n;
        mlxq_store_act(y, i, mlxq_load_act(y, i) + b);
    }
}
