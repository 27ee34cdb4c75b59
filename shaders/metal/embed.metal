// embed: y[m, k] = dequant(W[ids[m], k]) for the M ids, from MLX's packed
// words of every mode, width and group size as stored: the quantized
// embedding lookup. Each weight is computed in float, s*q + b (affine, one
// fma) or decode(q)*s, and converted once to the activation type. The
// parameter block holds the vocabulary (W's rows) in N and the features
// in K. The host checks the ids; one out of [0, N) gives a row of NaNs and
// reads nothing.
//
// Geometry: threadgroups of 256 threads; thread t of threadgroup (gx, gy)
// writes y[gy][256 gx + t]; grid = (ceil(K / 256), M) threadgroups.
// Buffers: ids (0), w (1), scales (2), biases (3), y (4), the parameter
// block (5).

kernel void mlxq_kernel(const device int* ids [[buffer(0)]],
                        const device uint* w [[buffer(1)]],
                        const device scale_t* scales [[buffer(2)]],
                        const device scale_t* biases [[buffer(3)]],
                        device act_t* y [[buffer(4)]],
                        constant mlxq_params& p [[buffer(5)]],
                        uint3 tgid [[threadgroup_position_in_grid]],
                        uint tid [[thread_index_in_threadgroup]]) {
    const uint V = p.N, K = p.K;
    const uint k = tgid.x * 256u + tid;
    if (k >= K) {
        return;
    }
    const ulong out = ulong(tgid.y) * K + k;
    const int id = ids[tgid.y];
    if (id < 0 || uint(id) >= V) {
        y[out] = act_t(as_type<float>(0x7FC00000u));
        return;
    }
    const device uint* row = w + ulong(id) * (ulong(K) * MLXQ_BITS / 32);
    const ulong gi = ulong(id) * (K / uint(MLXQ_GROUP)) + k / uint(MLXQ_GROUP);
    const float s = mlxq_load_scale(scales, gi);
    const float b = mlxq_load_qbias(biases, gi, MLXQ_HAS_BIASES);
    y[out] = act_t(mlxq_dequant(mlxq_packed_code(row, k), s, b));
}
