// qmv: y = x * dequant(W)^T (+ bias) for few rows of x, reading MLX's packed
// words of every mode, width and group size as stored. Two designs, by the
// activation dtype.
//
// f16 / bf16 activations (tensor cores). Blocks of nw = 4 warps (8 where
// the grid has at most 512 blocks, so small layers fill the GPU) compute a
// tile of 16 rows of W by 16 rows of x; grid = (ceil(N / 16),
// ceil(M / 16)). K is cut into steps of 4 chunks of 32 codes (a chunk is
// BITS words and lies in one group, or two for group 16); warp v takes the
// steps v, v + nw, ... (first those whose chunks are all whole, compiled
// without bounds checks, then the partial last step, with them) and lane
// (g = lane / 4, t = lane % 4) takes chunk
// 4 * step + t of rows n0 + g and n0 + g + 8, with 8- or 16-byte streaming
// loads (no L1 allocation, 256-byte L2 prefetch), prefetching the words,
// scales and biases of two steps ahead into registers while it multiplies
// the current one. Each code is dequantized in the
// activation's type, round(s*q + b) (affine 4-bit: packed 16-bit FMAs on
// magic-number codes; other formats: float32, then rounded) or
// decode(q)*s, and pairs of codes (8i + j, 8i + j + 4) of word i go straight
// into the A fragments of mma.sync m16n8k16 (rows g and g + 8). Every k of
// the product lands in the same accumulator, so the order of k inside an
// MMA is free as long as x follows it: the same lane loads its chunk's
// activations of tokens m0 + g and m0 + g + 8 (the B fragments) and
// permutes their pairs to match with prmt. Products accumulate in float32
// (two chains per token tile); the warps' partial tiles are summed
// through shared memory, and each output gets the Linear bias and is
// rounded once. Tokens m0 + 8 .. 15 cost a second MMA per fragment only
// when present.
//
// f32 activations (exact float32 FMA, CUDA cores). Blocks of 128 threads
// (4 warps); each warp owns QMV_ROWS consecutive rows of W and QMV_TM rows
// of x; grid = (ceil(N / (4 * QMV_ROWS)), ceil(M / QMV_TM)). Lane l walks
// the chunks c = l, l + 32, ... of its rows (a warp reads 32 consecutive
// chunks of a row per load), loads the chunk's words of every row
// (prefetching the next chunk's words and scales), loads the chunk's 32
// activations of each token once and reuses them for all rows, and folds
// the bias: acc += s * sum(q * x) + b * sum(x), codes turned into floats
// exactly with the 0x4B000000 magic number. The warp sums its lanes with
// shuffles; one lane per (row, token) adds the Linear bias and writes y.
#include "common.cuh"

// Scales per chunk of 32 codes.
#define QMV_SPC MLXQ_SPC
// 16-byte weight loads are safe unless rows may start at odd multiples of
// 8 bytes (nvfp4 with K % 32 == 16).
#define QMV_WIDE (MLXQ_MODE != 3)

#if MLXQ_ACT != 0
// ---------------------------------------------------------------------------
// Tensor-core design (f16 / bf16 activations).

// At most 8 warps per block (4 or 8, by the launch: blockDim.x / 32).
#define QMV_TC_MAXW 8



// At least 16 warps per multiprocessor: at most 128 registers.
#define QMV_TC_MINB 2
// One warp's rows, tokens and accumulators in the tensor-core design.
struct qmv_tc {
    const u32 *wg, *wh;  // rows n0 + g and n0 + g + 8
    size_t sg, sh;       // their first scale
    const u16 *xg, *xh;  // tokens m0 + g and m0 + g + 8
    bool tok_g, tok_h;
    // Two accumulator chains per token tile (even and odd MMAs).
    float acc0[4], acc1[4], acc2[4], acc3[4];
};

// Runs the warp's steps s, s + nw, ... below end. FULL: every chunk of
// these steps is whole (no bounds to check); TWO: tokens m0 + 8 .. 15
// are present.
template <bool FULL, bool TWO>
__device__ __forceinline__ int qmv_steps(qmv_tc& q, const void* scales, const void* biases,
                                         int s, int end, int nw, int t, int nch, int K) {
    if (s >= end) return s;
    // Steps s and s + nw in registers; the loop fetches s + 2 nw.
    mlxq_chunk cg, chh, cg2, ch2;
    {
        const int c = FULL ? 4 * s + t : mlxq_min(4 * s + t, nch - 1);
        mlxq_fetch_chunk<true, QMV_WIDE>(cg, q.wg, scales, biases, q.sg, c, K);
        mlxq_fetch_chunk<true, QMV_WIDE>(chh, q.wh, scales, biases, q.sh, c, K);
        const int c2 = mlxq_min(4 * (s + nw) + t, nch - 1);
        mlxq_fetch_chunk<true, QMV_WIDE>(cg2, q.wg, scales, biases, q.sg, c2, K);
        mlxq_fetch_chunk<true, QMV_WIDE>(ch2, q.wh, scales, biases, q.sh, c2, K);
    }
    for (; s < end; s += nw) {
        // Prefetch two steps ahead (clamped to the last chunk).
        mlxq_chunk ng_, nh_;
        const int cn = mlxq_min(4 * (s + 2 * nw) + t, nch - 1);
        mlxq_fetch_chunk<true, QMV_WIDE>(ng_, q.wg, scales, biases, q.sg, cn, K);
        mlxq_fetch_chunk<true, QMV_WIDE>(nh_, q.wh, scales, biases, q.sh, cn, K);

        const int c = 4 * s + t;
        const int valid = FULL ? 32 : (c < nch ? mlxq_min(32, K - 32 * c) : 0);
        u32 xwg[16], xwh[16];
        mlxq_fetch_x32(q.xg + (size_t)c * 32, q.tok_g ? valid : 0, xwg);
        if (TWO) mlxq_fetch_x32(q.xh + (size_t)c * 32, q.tok_h ? valid : 0, xwh);
        // Word by word: 4 pairs of each row and of x feed two MMAs.
#pragma unroll
        for (int wi = 0; wi < 4; wi++) {
            u32 Ag[4], Ah[4], Bg[4];
            mlxq_dequant_word(cg, wi, valid, Ag);
            mlxq_dequant_word(chh, wi, valid, Ah);
            mlxq_perm_word(xwg, wi, Bg);
            mlxq_mma16816(q.acc0, Ag[0], Ah[0], Ag[1], Ah[1], Bg[0], Bg[1]);
            mlxq_mma16816(q.acc2, Ag[2], Ah[2], Ag[3], Ah[3], Bg[2], Bg[3]);
            if (TWO) {
                u32 Bh[4];
                mlxq_perm_word(xwh, wi, Bh);
                mlxq_mma16816(q.acc1, Ag[0], Ah[0], Ag[1], Ah[1], Bh[0], Bh[1]);
                mlxq_mma16816(q.acc3, Ag[2], Ah[2], Ag[3], Ah[3], Bh[2], Bh[3]);
            }
        }
        cg = cg2;
        chh = ch2;
        cg2 = ng_;
        ch2 = nh_;
    }
    return s;
}

// Runs all the warp's steps: those whose chunks are all whole without
// bounds checks, then the last, partial one.
template <bool TWO>
__device__ __forceinline__ void qmv_all_steps(qmv_tc& q, const void* scales, const void* biases,
                                              int warp, int nw, int t, int K) {
    const int nch = (K + 31) >> 5;
    const int steps = (nch + 3) >> 2;
    const int whole = (K >> 5) >> 2; // steps of 4 whole chunks
    const int s = qmv_steps<true, TWO>(q, scales, biases, warp, whole, nw, t, nch, K);
    qmv_steps<false, TWO>(q, scales, biases, s, steps, nw, t, nch, K);
}

extern "C" __global__ void __launch_bounds__(32 * QMV_TC_MAXW, QMV_TC_MINB)
mlxq_kernel(const void* x, const void* w_, const void* scales, const void* biases,
            const float* bias, void* y, int M, int N, int K) {
    __shared__ float red[QMV_TC_MAXW][16][17];
    const int nw = blockDim.x >> 5;
    const u32* w = (const u32*)w_;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const int n0 = blockIdx.x * 16, m0 = blockIdx.y * 16;
    const int mt = M - m0;
    const size_t wpr = (size_t)K * MLXQ_BITS / 32;
    const size_t gpr = (size_t)(K / MLXQ_GROUP);
    const int ng = mlxq_min(n0 + g, N - 1), nh = mlxq_min(n0 + g + 8, N - 1);
    qmv_tc q;
    q.wg = w + (size_t)ng * wpr;
    q.wh = w + (size_t)nh * wpr;
    q.sg = (size_t)ng * gpr;
    q.sh = (size_t)nh * gpr;
    q.tok_g = g < mt;
    q.tok_h = g + 8 < mt;
    q.xg = (const u16*)x + (size_t)(m0 + (q.tok_g ? g : 0)) * K;
    q.xh = (const u16*)x + (size_t)(m0 + (q.tok_h ? g + 8 : 0)) * K;
#pragma unroll
    for (int e = 0; e < 4; e++) q.acc0[e] = q.acc1[e] = q.acc2[e] = q.acc3[e] = 0.0f;
    if (mt > 8) qmv_all_steps<true>(q, scales, biases, warp, nw, t, K);
    else qmv_all_steps<false>(q, scales, biases, warp, nw, t, K);
    float* acc0 = q.acc0;
    float* acc1 = q.acc1;
    const float* acc2 = q.acc2;
    const float* acc3 = q.acc3;
#pragma unroll
    for (int e = 0; e < 4; e++) {
        acc0[e] += acc2[e];
        acc1[e] += acc3[e];
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
    for (int o = threadIdx.x; o < 256; o += 32 * nw) {
        const int row = o >> 4, tok = o & 15;
        const int n = n0 + row, m = m0 + tok;
        if (n < N && m < M) {
            float v = 0.0f;
            for (int i = 0; i < nw; i++) v += red[i][row][tok];
            if (bias) v += bias[n];
            mlxq_store_act(y, (size_t)m * N + n, v);
        }
    }
}

#else
// ---------------------------------------------------------------------------
// Exact float32 design (f32 activations).

#define QMV_WARPS 4
#define QMV_ROWS (MLXQ_BITS > 4 ? 2 : 4)
#define QMV_TM 4

#define QMV_ACT_BYTES 4

// Dot products of the first and second 16 codes of a chunk with x.
template <int NC>
__device__ __forceinline__ void qmv_dot(const u32* wr, const float* xv, float& d0, float& d1) {
    float a0 = 0.0f, a1 = 0.0f;
#pragma unroll
    for (int j = 0; j < NC; j++) {
        float v = mlxq_code_value(mlxq_code<MLXQ_BITS>(wr, j));
        if (j < 16) a0 = mlxq_fma(v, xv[j], a0);
        else a1 = mlxq_fma(v, xv[j], a1);
    }
    d0 = a0;
    d1 = a1;
}

extern "C" __global__ void __launch_bounds__(128)
mlxq_kernel(const void* x, const void* w_, const void* scales, const void* biases,
            const float* bias, void* y, int M, int N, int K) {
    const u32* w = (const u32*)w_;
    const int lane = threadIdx.x & 31;
    const int n0 = (blockIdx.x * QMV_WARPS + (threadIdx.x >> 5)) * QMV_ROWS;
    if (n0 >= N) return;
    const int m0 = blockIdx.y * QMV_TM;
    const int mt = mlxq_min(QMV_TM, M - m0);
    const size_t wpr = (size_t)K * MLXQ_BITS / 32;
    const size_t gpr = (size_t)(K / MLXQ_GROUP);
    const int nfull = K >> 5;

    const u32* wrow[QMV_ROWS];
    size_t srow[QMV_ROWS];
#pragma unroll
    for (int r = 0; r < QMV_ROWS; r++) {
        int n = mlxq_min(n0 + r, N - 1);
        wrow[r] = w + (size_t)n * wpr;
        srow[r] = (size_t)n * gpr;
    }

    float acc[QMV_ROWS][QMV_TM];
#pragma unroll
    for (int r = 0; r < QMV_ROWS; r++)
#pragma unroll
        for (int t = 0; t < QMV_TM; t++) acc[r][t] = 0.0f;

    const char* xb = (const char*)x + (size_t)m0 * K * QMV_ACT_BYTES;

    if (lane < nfull) {
        u32 cur[QMV_ROWS][MLXQ_BITS];
        float cs[QMV_ROWS][QMV_SPC], cb[QMV_ROWS];
        int c = lane;
#pragma unroll
        for (int r = 0; r < QMV_ROWS; r++) {
            mlxq_load_words<MLXQ_BITS, QMV_WIDE>(wrow[r] + (size_t)c * MLXQ_BITS, cur[r]);
            size_t g = srow[r] + (size_t)c * 32 / MLXQ_GROUP;
#pragma unroll
            for (int h = 0; h < QMV_SPC; h++) cs[r][h] = mlxq_scale(scales, g + h);
            cb[r] = mlxq_load_qbias(biases, g);
        }
        for (; c < nfull; c += 32) {
            // Prefetch the next chunk (clamped to the last one).
            const int cn = mlxq_min(c + 32, nfull - 1);
            u32 nxt[QMV_ROWS][MLXQ_BITS];
            float ns[QMV_ROWS][QMV_SPC], nb[QMV_ROWS];
#pragma unroll
            for (int r = 0; r < QMV_ROWS; r++) {
                mlxq_load_words<MLXQ_BITS, QMV_WIDE>(wrow[r] + (size_t)cn * MLXQ_BITS, nxt[r]);
                size_t g = srow[r] + (size_t)cn * 32 / MLXQ_GROUP;
#pragma unroll
                for (int h = 0; h < QMV_SPC; h++) ns[r][h] = mlxq_scale(scales, g + h);
                nb[r] = mlxq_load_qbias(biases, g);
            }
#pragma unroll
            for (int t = 0; t < QMV_TM; t++) {
                if (t < mt) {
                    float xv[32];
                    mlxq_load_act32(xb + ((size_t)t * K + (size_t)c * 32) * QMV_ACT_BYTES, xv);
#if MLXQ_AFFINE
                    float xs0 = 0.0f, xs1 = 0.0f;
#pragma unroll
                    for (int j = 0; j < 32; j += 2) {
                        xs0 += xv[j];
                        xs1 += xv[j + 1];
                    }
                    const float xs = xs0 + xs1;
#endif
#pragma unroll
                    for (int r = 0; r < QMV_ROWS; r++) {
                        float d0, d1;
                        qmv_dot<32>(cur[r], xv, d0, d1);
#if QMV_SPC == 2
                        acc[r][t] = mlxq_fma(cs[r][1], d1, mlxq_fma(cs[r][0], d0, acc[r][t]));
#elif MLXQ_AFFINE
                        acc[r][t] = mlxq_fma(cb[r], xs, mlxq_fma(cs[r][0], d0 + d1, acc[r][t]));
#else
                        acc[r][t] = mlxq_fma(cs[r][0], d0 + d1, acc[r][t]);
#endif
                    }
                }
            }
#pragma unroll
            for (int r = 0; r < QMV_ROWS; r++) {
#pragma unroll
                for (int i = 0; i < MLXQ_BITS; i++) cur[r][i] = nxt[r][i];
#pragma unroll
                for (int h = 0; h < QMV_SPC; h++) cs[r][h] = ns[r][h];
                cb[r] = nb[r];
            }
        }
    }

#if MLXQ_GROUP == 16
    // nvfp4 rows with K % 32 == 16 end in a half chunk of 16 codes.
    if ((K & 31) && lane == (nfull & 31)) {
        const int c = nfull;
#pragma unroll
        for (int t = 0; t < QMV_TM; t++) {
            if (t < mt) {
                float xv[32];
                mlxq_load_act16(xb + ((size_t)t * K + (size_t)c * 32) * QMV_ACT_BYTES, xv);
#pragma unroll
                for (int r = 0; r < QMV_ROWS; r++) {
                    acc[r][t] = mlxq_half_chunk(wrow[r], scales, srow[r], c, xv, acc[r][t]);
                }
            }
        }
    }
#endif

#pragma unroll
    for (int r = 0; r < QMV_ROWS; r++) {
#pragma unroll
        for (int t = 0; t < QMV_TM; t++) {
            float v = mlxq_warp_sum(acc[r][t]);
            const int n = n0 + r;
            if (lane == r * QMV_TM + t && t < mt && n < N) {
                if (bias) v += bias[n];
                mlxq_store_act(y, (size_t)(m0 + t) * N + n, v);
            }
        }
    }
}

#endif // MLXQ_ACT
