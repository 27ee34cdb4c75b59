// gather_qmv: MLX's gather_qmm for few rows of x (decoding): row m of x
// goes through the TopK experts the routing gives it, y[m*TopK + j] =
// x[m] * dequant(W[e])^T (+ bias[e]) for e its j-th expert, reading the
// packed words of every mode, width and group size as stored, and only the
// experts some row picks. The routing (engine.Routing, MLXQ_ROUTE_HEADER)
// cuts each expert's pairs into tiles of at most 4 rows.
//
// Geometry: blocks of 128 threads (4 warps), one tile of the routing by
// 4 * MLXQ_GQ_ROWS rows of its expert (mlxq_gather_rows in common.cuh);
// grid = (tiles, ceil(N / (4 * MLXQ_GQ_ROWS))).
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(128)
mlxq_kernel(const void* x, const void* w, const void* scales, const void* biases,
            const float* bias, void* y, const int* route, int N, int K) {
    mlxq_gather_rows(x, w, scales, biases, bias, y, route, N, K);
}
