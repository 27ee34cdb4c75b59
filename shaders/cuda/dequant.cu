// dequant: expands rows row0 .. row0 + rows - 1 of a packed weight (MLX's
// words of every mode, width and group size, as stored) into the
// activation's 16-bit type, [rows, K] row-major: each weight is computed
// exactly in float32, s*q + b (affine, one fma) or decode(q)*s, and rounded
// once to f16 or bf16. It feeds the cuBLAS GEMM of the backend's large-M
// QMM path.
//
// Geometry: blocks of 256 threads; thread i expands chunk i % ceil(K / 32)
// of row i / ceil(K / 32) (32 codes: its BITS words, one or two scales and
// the bias), with the widest loads the row's alignment allows, and writes
// its 64 bytes with four 16-byte stores (32 bytes for the half chunk that
// ends a row of nvfp4 with K % 32 == 16); grid = (ceil(rows * ceil(K / 32)
// / 256), 1, 1).
#include "common.cuh"

// 16-byte weight loads are safe unless rows may start at odd multiples of
// 8 bytes (nvfp4 with K % 32 == 16).
#define DQ_WIDE (MLXQ_MODE != 3)

extern "C" __global__ void __launch_bounds__(256)
mlxq_kernel(const unsigned int* w, const void* scales, const void* biases, void* out,
            int row0, int rows, int K) {
    const int cpr = (K + 31) / 32;
    const size_t i = (size_t)blockIdx.x * 256 + threadIdx.x;
    if (i >= (size_t)rows * cpr) return;
    const int r = (int)(i / cpr);
    const int c = (int)(i % cpr);
    const size_t row = (size_t)row0 + r;
    const int k0 = 32 * c;
    const bool full = k0 + 32 <= K;
    const u32* wp = w + row * ((size_t)K * MLXQ_BITS / 32) + (size_t)c * MLXQ_BITS;
    u32 words[MLXQ_BITS];
#pragma unroll
    for (int j = 0; j < MLXQ_BITS; j++) words[j] = 0u;
    if (full) mlxq_load_words<MLXQ_BITS, DQ_WIDE>(wp, words);
    else mlxq_load_words<MLXQ_BITS / 2, false>(wp, words);
    const size_t gi = row * (size_t)(K / MLXQ_GROUP) + (size_t)(k0 / MLXQ_GROUP);
    float s[MLXQ_SPC];
#pragma unroll
    for (int h = 0; h < MLXQ_SPC; h++) s[h] = mlxq_load_scale(scales, gi + (k0 + 16 * h < K ? h : 0));
    const float b = mlxq_load_qbias(biases, gi);
    u32 v[16];
#pragma unroll
    for (int j = 0; j < 16; j++) {
        const int ka = 2 * j, kb = 2 * j + 1;
        const float da = mlxq_dequant(mlxq_code<MLXQ_BITS>(words, ka), s[MLXQ_SPC == 2 ? (ka >> 4) : 0], b);
        const float db = mlxq_dequant(mlxq_code<MLXQ_BITS>(words, kb), s[MLXQ_SPC == 2 ? (kb >> 4) : 0], b);
        v[j] = mlxq_pack2(da, db);
    }
    mlxq_u32x4* o = (mlxq_u32x4*)((u16*)out + (size_t)r * K + k0);
#pragma unroll
    for (int q = 0; q < 4; q++) {
        if (q < 2 || full) {
            mlxq_u32x4 u;
            u.x = v[4 * q]; u.y = v[4 * q + 1]; u.z = v[4 * q + 2]; u.w = v[4 * q + 3];
            o[q] = u;
        }
    }
}
