// qmm: y = x * dequant(W)^T (+ bias) for many rows of x, reading MLX's packed
// words of every mode, width and group size as stored; MLX's qmm_t design.
//
// Geometry: threadgroups of 128 threads (4 simdgroups, 2 x 2) compute a
// 32 x 32 tile of y (32 rows of x by 32 rows of W); grid = (ceil(N / 32),
// ceil(M / 32)) threadgroups; (32 + 32) x 36 floats of threadgroup memory.
// K is walked in steps of 32 codes. Per step thread t dequantizes codes
// 8 (t % 4) .. 8 (t % 4) + 7 of row t / 4 of the W tile: the 8 codes are
// BITS consecutive bytes of the packed row and lie in one group, so they
// take one scale and bias; each is dequantized in float (s*q + b, or
// decode(q)*s) and stored as float in threadgroup memory, x beside it.
// Each simdgroup multiplies a 16 x 16 sub-tile with simdgroup_float8x8,
// accumulating in float (mlxq_tile_mma in common.metal). Codes past K and
// rows past M or N are zeros and never written.

struct qmm_loader {
    const device uint* w;
    const device scale_t* scales;
    const device scale_t* biases;
    uint N;
    uint K;
    uint flags;

    void fill(threadgroup float* ws, int ld, uint n0, uint k0, uint tid) const {
        const int r = int(tid) >> 2, part = int(tid) & 3;
        const uint n = n0 + uint(r), k = k0 + 8u * uint(part);
        float v[8];
        for (int j = 0; j < 8; j++) {
            v[j] = 0.0f;
        }
        // K is a multiple of 16, so a run that starts before K ends by it.
        if (n < N && k < K) {
            const device uchar* src = (const device uchar*)w + ulong(n) * (ulong(K) * MLXQ_BITS / 8) + ulong(k) * MLXQ_BITS / 8;
            ulong bits = 0;
            for (int i = 0; i < MLXQ_BITS; i++) {
                bits |= ulong(src[i]) << (8 * i);
            }
            const ulong gi = ulong(n) * (K / uint(MLXQ_GROUP)) + k / uint(MLXQ_GROUP);
            const float s = mlxq_load_scale(scales, gi);
            const float b = mlxq_load_qbias(biases, gi, flags);
            for (int j = 0; j < 8; j++) {
                v[j] = mlxq_dequant(uint(bits >> (j * MLXQ_BITS)) & MLXQ_MASK, s, b);
            }
        }
        for (int j = 0; j < 8; j++) {
            ws[r * ld + 8 * part + j] = v[j];
        }
    }
};

kernel void mlxq_kernel(MLXQ_MATMUL_BUFFERS(uint),
                        threadgroup float* smem MLXQ_THREADGROUP_MEMORY,
                        uint3 tgid [[threadgroup_position_in_grid]],
                        uint tid [[thread_index_in_threadgroup]],
                        uint sgid [[simdgroup_index_in_threadgroup]]) {
    const qmm_loader loader{w, scales, biases, p.N, p.K, p.flags};
    mlxq_tile_mma<2, 2, 32>(loader, x, bias, y, p, smem, tgid, tid, sgid);
}
