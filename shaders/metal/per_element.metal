// per_element: y = x * dequant(W)^T (+ bias) from unpacked codes (one byte
// per code, [N, K]) of every format: affine of any width and group size,
// mxfp4, mxfp8 and nvfp4. Exact float32 FMA.
//
// Geometry: threadgroups of 16 x 16 threads; thread (tx, ty) of threadgroup
// (bx, by) computes y[16 by + ty][16 bx + tx] on its own, walking k in
// order; grid = (ceil(N / 16), ceil(M / 16)) threadgroups.

kernel void mlxq_kernel(MLXQ_MATMUL_BUFFERS(uchar),
                        uint3 gid [[thread_position_in_grid]]) {
    const uint n = gid.x, m = gid.y;
    const uint M = p.M, N = p.N, K = p.K;
    if (n >= N || m >= M) {
        return;
    }
    const device uchar* codes = w + ulong(n) * K;
    const device act_t* xr = x + ulong(m) * K;
    const uint gpr = K / uint(MLXQ_GROUP);
    float acc = 0.0f;
    for (uint k0 = 0; k0 < K; k0 += uint(MLXQ_GROUP)) {
        const ulong gi = ulong(n) * gpr + k0 / uint(MLXQ_GROUP);
        const float s = mlxq_load_scale(scales, gi);
        const float b = mlxq_load_qbias(biases, gi, p.flags);
        for (uint k = k0; k < k0 + uint(MLXQ_GROUP); k++) {
            acc = fma(float(xr[k]), mlxq_dequant(uint(codes[k]), s, b), acc);
        }
    }
    y[ulong(m) * N + n] = act_t(acc + mlxq_bias(bias, n, p.flags));
}
