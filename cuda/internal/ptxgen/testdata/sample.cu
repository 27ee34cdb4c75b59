// A tiny kernel in the ABI's shape, for the generator's own test.
#include "common.cuh"

extern "C" __global__ void mlxq_kernel(const unsigned int* w, unsigned char* codes, int rows, int cols) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < rows * cols) codes[i] = (unsigned char)((w[i / 8] >> (4 * (i % 8))) & MLXQ_BITS);
}
