// unpack: expands MLX's packed codes of width MLXQ_BITS (rows of cols codes,
// LSB-first bitstreams over uint32 words, each row starting on a word) into
// one byte per code, [rows, cols].
//
// Geometry: blocks of 256 threads; thread i writes codes 4i .. 4i + 3 of the
// flattened [rows, cols] output as one 32-bit store (cols is a multiple of 4
// for every width); grid = (ceil(rows * cols / 1024), 1, 1).
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(256)
mlxq_kernel(const unsigned int* w, unsigned char* codes, int rows, int cols) {
    const size_t i = (size_t)blockIdx.x * 256 + threadIdx.x;
    const size_t total = (size_t)rows * cols / 4;
    if (i >= total) return;
    const size_t e = i * 4;
    const size_t row = e / cols;
    const int j = (int)(e % cols);
    const u32* wr = w + row * ((size_t)cols * MLXQ_BITS / 32);
    u32 out = 0;
#pragma unroll
    for (int c = 0; c < 4; c++) {
        const int p = (j + c) * MLXQ_BITS;
        const int wi = p >> 5, off = p & 31;
        u32 v = wr[wi] >> off;
        if (off + MLXQ_BITS > 32) v |= wr[wi + 1] << (32 - off);
        out |= (v & MLXQ_MASK) << (8 * c);
    }
    ((u32*)codes)[i] = out;
}
