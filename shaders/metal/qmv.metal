// qmv: y = x * dequant(W)^T (+ bias) for few rows of x, reading MLX's packed
// words of every mode, width and group size as stored; MLX's qmv_fast
// design, generalized to every K.
//
// Geometry: threadgroups of 64 threads, 2 simdgroups of 32; each simdgroup
// computes 4 consecutive outputs of one row of x, so a threadgroup covers 8
// rows of W; grid = (ceil(N / 8), M) threadgroups; no threadgroup memory.
// K is walked in blocks of 32 * VPT values (VPT = 16 for 2- to 5-bit codes,
// 8 for 6- and 8-bit): lane l takes the run of VPT values at l * VPT of
// each block. A run lies in one group and starts on a 16-bit boundary of
// the packed stream, so the lane loads its activations once (as float, with
// their sum) and, for each of its simdgroup's 4 rows, the run's codes as
// 16-bit halves, and folds the affine bias with the activation sum:
// acc += s * sum(q * x) + b * sum(x), all in float. Rows past N read row
// N - 1 and are never written; simd_sum reduces the lanes and lane 0 adds
// the Linear bias and writes y.

#if MLXQ_BITS >= 6
#define QMV_VPT 8
#else
#define QMV_VPT 16
#endif
#define QMV_BLOCK (32 * QMV_VPT)
// 16-bit halves of the packed stream per run.
#define QMV_HALVES (QMV_VPT * MLXQ_BITS / 16)
#define QMV_ROWS 4

kernel void mlxq_kernel(MLXQ_MATMUL_BUFFERS(uint),
                        uint3 tgid [[threadgroup_position_in_grid]],
                        uint sgid [[simdgroup_index_in_threadgroup]],
                        uint lane [[thread_index_in_simdgroup]]) {
    const uint N = p.N, K = p.K;
    const uint m = tgid.y;
    const uint n0 = tgid.x * 8u + sgid * uint(QMV_ROWS);
    if (n0 >= N) {
        return;
    }
    const device ushort* wh = (const device ushort*)w;
    const ulong halves_per_row = ulong(K) * MLXQ_BITS / 16;
    const uint gpr = K / uint(MLXQ_GROUP);
    ulong woff[QMV_ROWS];
    ulong soff[QMV_ROWS];
    float acc[QMV_ROWS];
    for (int r = 0; r < QMV_ROWS; r++) {
        const uint n = min(n0 + uint(r), N - 1u);
        woff[r] = ulong(n) * halves_per_row;
        soff[r] = ulong(n) * gpr;
        acc[r] = 0.0f;
    }
    const device act_t* xr = x + ulong(m) * K;
    for (uint k = lane * uint(QMV_VPT); k < K; k += uint(QMV_BLOCK)) {
        float xv[QMV_VPT];
        float xsum = 0.0f;
        for (int j = 0; j < QMV_VPT; j++) {
            xv[j] = float(xr[k + uint(j)]);
            xsum += xv[j];
        }
        const uint g = k / uint(MLXQ_GROUP);
        const ulong hk = ulong(k) * MLXQ_BITS / 16;
        for (int r = 0; r < QMV_ROWS; r++) {
            uint h[QMV_HALVES + 1];
            const device ushort* src = wh + woff[r] + hk;
            for (int i = 0; i < QMV_HALVES; i++) {
                h[i] = uint(src[i]);
            }
            h[QMV_HALVES] = 0u;
            float d = 0.0f;
            for (int j = 0; j < QMV_VPT; j++) {
                d = fma(xv[j], mlxq_code_value(mlxq_run_code(h, j)), d);
            }
            const float s = mlxq_scale(scales, soff[r] + g);
#if MLXQ_AFFINE
            const float b = mlxq_load_qbias(biases, soff[r] + g, p.flags);
            acc[r] = fma(s, d, fma(b, xsum, acc[r]));
#else
            acc[r] = fma(s, d, acc[r]);
#endif
        }
    }
    for (int r = 0; r < QMV_ROWS; r++) {
        const float v = simd_sum(acc[r]);
        const uint n = n0 + uint(r);
        if (lane == 0u && n < N) {
            y[ulong(m) * N + n] = act_t(v + mlxq_bias(bias, n, p.flags));
        }
    }
}
