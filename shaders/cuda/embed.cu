// embed: y[m, k] = dequant(W[ids[m], k]) for the M ids, from MLX's packed
// words of every mode, width and group size as stored: the quantized
// embedding lookup. Each weight is computed exactly in float32, s*q + b
// (affine, one fma) or decode(q)*s, and rounded once to the activation
// dtype. The host checks the ids; one out of [0, V) gives a row of NaNs
// and reads nothing.
//
// Geometry: blocks of 256 threads; thread t of block (bx, by) writes
// y[bx][256 by + t]; grid = (M, ceil(K / 256)).
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(256)
mlxq_kernel(const int* ids, const unsigned int* w, const void* scales, const void* biases,
            void* y, int V, int K) {
    const int k = blockIdx.y * 256 + threadIdx.x;
    if (k >= K) return;
    const size_t out = (size_t)blockIdx.x * K + k;
    const int id = ids[blockIdx.x];
    if (id < 0 || id >= V) {
        mlxq_store_act(y, out, mlxq_as_float(0x7FC00000u));
        return;
    }
    const u32* row = w + (size_t)id * ((size_t)K * MLXQ_BITS / 32);
    const int p = k * MLXQ_BITS;
    const int wi = p >> 5, off = p & 31;
    u32 q = row[wi] >> off;
    if (off + MLXQ_BITS > 32) q |= row[wi + 1] << (32 - off);
    q &= MLXQ_MASK;
    const size_t gi = (size_t)id * (size_t)(K / MLXQ_GROUP) + (size_t)(k / MLXQ_GROUP);
    mlxq_store_act(y, out, mlxq_dequant(q, mlxq_load_scale(scales, gi), mlxq_load_qbias(biases, gi)));
}
