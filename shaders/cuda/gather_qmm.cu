// gather_qmm: MLX's gather_qmm for many rows of x (prefill): row m of x goes
// through the TopK experts the routing gives it, y[m*TopK + j] =
// x[m] * dequant(W[e])^T (+ bias[e]) for e its j-th expert, reading the
// packed words of every mode, width and group size as stored. The routing
// (engine.Routing, MLXQ_ROUTE_HEADER in common.cuh) groups the rows by
// expert into tiles of at most 16, so each block decodes its expert's
// weight rows once for up to 16 rows of x.
//
// f16 / bf16 activations: qmv's tensor-core design (qmv.cu) on gathered
// rows of x. Blocks of 128 threads (4 warps) compute 16 rows of the tile's
// expert by the tile's rows of x; grid = (tiles, ceil(N / 16)). K is cut
// into steps of 4 chunks of 32 codes; warp v takes the steps v, v + 4, ...
// and lane (g = lane / 4, t = lane % 4) takes chunk 4 * step + t of weight
// rows n0 + g and n0 + g + 8 and of the tile's rows of x g and g + 8,
// prefetching the next step's words, scales and biases. Codes are
// dequantized in the activation's type straight into the A fragments of
// mma.sync m16n8k16, the activations permuted to match into the B
// fragments, products accumulated in float32; the warps' partial tiles are
// summed through shared memory, and each output gets the expert's Linear
// bias, is rounded once and goes to its pair's row of y.
//
// f32 activations: exact float32 FMA on CUDA cores (mlxq_gather_rows in
// common.cuh, as gather_qmv), four rows of x of the tile at a time; grid =
// (tiles, ceil(N / (4 * MLXQ_GQ_ROWS))).
#include "common.cuh"

#if MLXQ_ACT != 0

#define GQM_WARPS 4
// At least 4 blocks (16 warps) per multiprocessor: at most 128 registers.
#define GQM_MINB 4

extern "C" __global__ void __launch_bounds__(32 * GQM_WARPS, GQM_MINB)
mlxq_kernel(const void* x, const void* w, const void* scales, const void* biases,
            const float* bias, void* y, const int* route, int N, int K) {
    __shared__ float red[GQM_WARPS][16][17];
    const int npairs = route[0], topk = route[1];
    const int* tile = route + MLXQ_ROUTE_HEADER + npairs + 3 * blockIdx.x;
    const int e = tile[0], count = tile[2];
    const int* pairs = route + MLXQ_ROUTE_HEADER + tile[1];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const int n0 = blockIdx.y * 16;
    const size_t wpr = (size_t)K * MLXQ_BITS / 32;
    const size_t gpr = (size_t)(K / MLXQ_GROUP);
    const size_t ng = (size_t)e * N + mlxq_min(n0 + g, N - 1);
    const size_t nh = (size_t)e * N + mlxq_min(n0 + g + 8, N - 1);
    const u32* wg = (const u32*)w + ng * wpr;
    const u32* wh = (const u32*)w + nh * wpr;
    const size_t sg = ng * gpr, sh = nh * gpr;
    const bool tok_g = g < count, tok_h = g + 8 < count;
    const bool two = count > 8;
    const u16* xg = (const u16*)x + (size_t)(pairs[tok_g ? g : 0] / topk) * K;
    const u16* xh = (const u16*)x + (size_t)(pairs[tok_h ? g + 8 : 0] / topk) * K;
    const int nch = (K + 31) >> 5;
    const int steps = (nch + 3) >> 2;

    // Two accumulator chains per tile of 8 rows of x (even and odd MMAs).
    float acc0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, acc1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    float acc2[4] = {0.0f, 0.0f, 0.0f, 0.0f}, acc3[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    mlxq_chunk cg, chh;
    int s = warp;
    if (s < steps) {
        const int c = mlxq_min(4 * s + t, nch - 1);
        mlxq_fetch_chunk<false, MLXQ_GQ_WIDE>(cg, wg, scales, biases, sg, c, K);
        mlxq_fetch_chunk<false, MLXQ_GQ_WIDE>(chh, wh, scales, biases, sh, c, K);
    }
    for (; s < steps; s += GQM_WARPS) {
        // Prefetch the next step's words and scales (clamped to the last chunk).
        mlxq_chunk ng_, nh_;
        const int cn = mlxq_min(4 * (s + GQM_WARPS) + t, nch - 1);
        mlxq_fetch_chunk<false, MLXQ_GQ_WIDE>(ng_, wg, scales, biases, sg, cn, K);
        mlxq_fetch_chunk<false, MLXQ_GQ_WIDE>(nh_, wh, scales, biases, sh, cn, K);

        const int c = 4 * s + t;
        const int valid = c < nch ? mlxq_min(32, K - 32 * c) : 0;
        u32 xwg[16], xwh[16];
        mlxq_fetch_x32(xg + (size_t)c * 32, tok_g ? valid : 0, xwg);
        if (two) mlxq_fetch_x32(xh + (size_t)c * 32, tok_h ? valid : 0, xwh);
        // Word by word: 4 pairs of each weight row and of x feed two MMAs.
#pragma unroll
        for (int wi = 0; wi < 4; wi++) {
            u32 Ag[4], Ah[4], Bg[4];
            mlxq_dequant_word(cg, wi, valid, Ag);
            mlxq_dequant_word(chh, wi, valid, Ah);
            mlxq_perm_word(xwg, wi, Bg);
            mlxq_mma16816(acc0, Ag[0], Ah[0], Ag[1], Ah[1], Bg[0], Bg[1]);
            mlxq_mma16816(acc2, Ag[2], Ah[2], Ag[3], Ah[3], Bg[2], Bg[3]);
            if (two) {
                u32 Bh[4];
                mlxq_perm_word(xwh, wi, Bh);
                mlxq_mma16816(acc1, Ag[0], Ah[0], Ag[1], Ah[1], Bh[0], Bh[1]);
                mlxq_mma16816(acc3, Ag[2], Ah[2], Ag[3], Ah[3], Bh[2], Bh[3]);
            }
        }
        cg = ng_;
        chh = nh_;
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        acc0[i] += acc2[i];
        acc1[i] += acc3[i];
    }

    red[warp][g][2 * t] = acc0[0];
    red[warp][g][2 * t + 1] = acc0[1];
    red[warp][g + 8][2 * t] = acc0[2];
    red[warp][g + 8][2 * t + 1] = acc0[3];
    red[warp][g][8 + 2 * t] = acc1[0];
    red[warp][g][8 + 2 * t + 1] = acc1[1];
    red[warp][g + 8][8 + 2 * t] = acc1[2];
    red[warp][g + 8][8 + 2 * t + 1] = acc1[3];
    __syncthreads();
    for (int o = threadIdx.x; o < 256; o += 32 * GQM_WARPS) {
        const int row = o >> 4, tok = o & 15;
        const int n = n0 + row;
        if (n < N && tok < count) {
            float v = red[0][row][tok] + red[1][row][tok] + red[2][row][tok] + red[3][row][tok];
            if (bias) v += bias[(size_t)e * N + n];
            mlxq_store_act(y, (size_t)pairs[tok] * N + n, v);
        }
    }
}

#else

extern "C" __global__ void __launch_bounds__(128)
mlxq_kernel(const void* x, const void* w, const void* scales, const void* biases,
            const float* bias, void* y, const int* route, int N, int K) {
    mlxq_gather_rows(x, w, scales, biases, bias, y, route, N, K);
}

#endif // MLXQ_ACT
