// gather_qmm: MLX's gather_qmm for many rows of x (prefill): row m of x
// goes through the TopK experts the routing gives it, y[m * TopK + j] =
// x[m] * dequant(W[e])^T (+ bias[e]) for e its j-th expert, reading the
// packed words of every mode, width and group size as stored. The routing
// (engine.Routing) groups the rows by expert into tiles of at most 16, and
// each threadgroup decodes its expert's codes once for all its tile's rows
// of x.
//
// Geometry: threadgroups of 64 threads, 8 rows of the expert of one tile
// (mlxq_gather_rows in common.metal); grid = (ceil(N / 8), tiles)
// threadgroups; no threadgroup memory. Buffers: x (0), w (1), scales (2),
// biases (3), bias (4), y (5), the routing (6), the parameter block (7).

kernel void mlxq_kernel(const device act_t* x [[buffer(0)]],
                        const device uint* w [[buffer(1)]],
                        const device scale_t* scales [[buffer(2)]],
                        const device scale_t* biases [[buffer(3)]],
                        const device float* bias [[buffer(4)]],
                        device act_t* y [[buffer(5)]],
                        const device int* route [[buffer(6)]],
                        constant mlxq_params& p [[buffer(7)]],
                        uint3 tgid [[threadgroup_position_in_grid]],
                        uint sgid [[simdgroup_index_in_threadgroup]],
                        uint lane [[thread_index_in_simdgroup]]) {
    mlxq_gather_rows<16>(x, w, scales, biases, bias, y, route, p, tgid, sgid, lane);
}
