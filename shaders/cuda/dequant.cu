// dequant: expands rows row0 .. row0 + rows - 1 of a packed weight (MLX's
// words of every mode, width and group size, as stored) into the
// activation's 16-bit type, [rows, K] row-major: each weight is computed
// exactly in float32, s*q + b (affine, one fma) or decode(q)*s, and rounded
// once to f16 or bf16. It feeds the cuBLAS GEMM of the backend's large-M
// QMM path.
//
// Geometry: blocks of 256 threads; thread i expands quarter i % 4 (8 codes,
// which lie in at most two words and one group) of chunk i / 4 (32 codes)
// of the rows, the chunks of a row in order, and writes its 16 bytes with
// one store, so a warp reads and writes contiguous memory; grid =
// (ceil(4 * rows * ceil(K / 32) / 256), 1, 1). Quarters past K (the half
// chunk that ends a row of nvfp4 with K % 32 == 16) write nothing.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(256)
mlxq_kernel(const unsigned int* w, const void* scales, const void* biases, void* out,
            int row0, int rows, int K) {
    const int cpr = (K + 31) / 32;
    const size_t i = (size_t)blockIdx.x * 256 + threadIdx.x;
    const size_t ci = i >> 2;
    const int q = (int)(i & 3);
    if (ci >= (size_t)rows * cpr) return;
    const int r = (int)(ci / cpr);
    const int c = (int)(ci % cpr);
    const int k0 = 32 * c + 8 * q;
    if (k0 >= K) return;
    const size_t row = (size_t)row0 + r;
    const u32* wp = w + row * ((size_t)K * MLXQ_BITS / 32) + (size_t)c * MLXQ_BITS;
    const int bit = 8 * q * MLXQ_BITS;
    const int wi = bit >> 5, off = bit & 31;
    u64 v = wp[wi];
    if (off + 8 * MLXQ_BITS > 32) v |= (u64)wp[wi + 1] << 32;
    v >>= off;
    const size_t gi = row * (size_t)(K / MLXQ_GROUP) + (size_t)(k0 / MLXQ_GROUP);
    const float s = mlxq_load_scale(scales, gi);
    const float b = mlxq_load_qbias(biases, gi);
    u32 o[4];
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const u32 qa = (u32)(v >> (2 * j * MLXQ_BITS)) & MLXQ_MASK;
        const u32 qb = (u32)(v >> ((2 * j + 1) * MLXQ_BITS)) & MLXQ_MASK;
        o[j] = mlxq_pack2(mlxq_dequant(qa, s, b), mlxq_dequant(qb, s, b));
    }
    mlxq_u32x4 u;
    u.x = o[0]; u.y = o[1]; u.z = o[2]; u.w = o[3];
    *(mlxq_u32x4*)((u16*)out + (size_t)r * K + k0) = u;
}
