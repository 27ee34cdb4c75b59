// tiled: y = x * dequant(W)^T (+ bias) from unpacked affine codes (one byte
// per code, [N, K]), group 32, exact float32 FMA.
//
// Geometry: threadgroups of 16 x 16 threads compute one 16 x 16 tile of y;
// grid = (ceil(N / 16), ceil(M / 16)) threadgroups; 2 x 16 x 33 floats of
// threadgroup memory. Per step of 32 codes (one group) the threadgroup
// stages x[16][32] and the dequantized w[16][32], two elements per thread,
// then thread (tx, ty) accumulates y[16 by + ty][16 bx + tx] over the
// step's k in order.

#define TILED_LD 33

kernel void mlxq_kernel(MLXQ_MATMUL_BUFFERS(uchar),
                        threadgroup float* smem MLXQ_THREADGROUP_MEMORY,
                        uint3 tgid [[threadgroup_position_in_grid]],
                        uint3 tpos [[thread_position_in_threadgroup]]) {
    threadgroup float* xs = smem;
    threadgroup float* ws = smem + 16 * TILED_LD;
    const uint M = p.M, N = p.N, K = p.K;
    const uint tx = tpos.x, ty = tpos.y;
    const uint tid = ty * 16u + tx;
    const uint n0 = tgid.x * 16u, m0 = tgid.y * 16u;
    const uint gpr = K / uint(MLXQ_GROUP);
    float acc = 0.0f;
    for (uint k0 = 0; k0 < K; k0 += 32u) {
        for (uint h = 0; h < 2u; h++) {
            const uint e = tid + 256u * h;
            const uint r = e >> 5, k = e & 31u;
            const uint m = m0 + r, n = n0 + r;
            xs[r * TILED_LD + k] = (m < M) ? float(x[ulong(m) * K + k0 + k]) : 0.0f;
            float wv = 0.0f;
            if (n < N) {
                const ulong gi = ulong(n) * gpr + (k0 + k) / uint(MLXQ_GROUP);
                wv = mlxq_dequant(uint(w[ulong(n) * K + k0 + k]), mlxq_load_scale(scales, gi),
                                  mlxq_load_qbias(biases, gi, p.flags));
            }
            ws[r * TILED_LD + k] = wv;
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (uint k = 0; k < 32u; k++) {
            acc = fma(xs[ty * TILED_LD + k], ws[tx * TILED_LD + k], acc);
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    const uint n = n0 + tx, m = m0 + ty;
    if (n < N && m < M) {
        y[ulong(m) * N + n] = act_t(acc + mlxq_bias(bias, n, p.flags));
    }
}
