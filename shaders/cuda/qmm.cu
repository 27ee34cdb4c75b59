// qmm: y = x * dequant(W)^T (+ bias) for many rows of x, on tensor cores,
// reading MLX's packed words of every mode, width and group size as stored.
//
// Geometry: blocks of 256 threads (8 warps) compute a 128 x 128 tile of y
// (128 rows of x by 128 rows of W); grid = (ceil(N / 128), ceil(M / 128));
// 73728 bytes of dynamic shared memory hold two stages of the x and W tiles
// (128 rows of 32 words each, padded to 36). The K loop steps by BK codes:
// 64 for f16/bf16 activations, 32 for f32 (TF32). Per step thread t loads
// into registers the next tile's share of row t / 2 of W (chunk t % 2 of 32
// codes, or half of the single chunk for TF32: its words, scales and
// biases) and of row t / 2 of x, multiplies the current stage meanwhile,
// then dequantizes in float32 or with packed 16-bit FMA (round(s*q + b),
// or decode(q)*s) and stores the next stage; one barrier per step.
// For f16/bf16 the pairs of codes (8i + j, 8i + j + 4) of each word are
// packed together, and x is permuted the same way with prmt when stored:
// the order of k inside a product is free as long as both operands agree.
// Codes and activations past K are zeros; rows past M or N are clamped to
// the last valid row and never written. Each warp multiplies a 64 x 32
// sub-tile with mma.sync m16n8k16 (fragments through ldmatrix) or m16n8k8
// TF32 (fragments through 32-bit shared loads), accumulating in float32; the
// epilogue adds the Linear bias and writes y with bounds checks.
#include "common.cuh"

#define QMM_BM 128
#define QMM_BN 128
#if MLXQ_ACT == 0
#define QMM_BK 32
#else
#define QMM_BK 64
#endif
// Shared memory row stride in 32-bit words: 32 words of data plus 4 of
// padding, so fragment loads are free of bank conflicts.
#define QMM_LD 36
#define QMM_STAGE (2 * 128 * QMM_LD)
#define QMM_SPC MLXQ_SPC
#define QMM_WIDE (MLXQ_MODE != 3)

#if MLXQ_ACT == 0
#define QMM_ACT_BYTES 4
#else
#define QMM_ACT_BYTES 2
#endif

__device__ __forceinline__ void qmm_mma(float* c, const u32* a, u32 b0, u32 b1) {
#if MLXQ_ACT == 0
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#elif MLXQ_ACT == 1
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

__device__ __forceinline__ u32 qmm_smem_addr(const void* p) {
    u32 a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

__device__ __forceinline__ void qmm_ldsm4(u32 addr, u32* r) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

extern "C" __global__ void __launch_bounds__(256)
mlxq_kernel(const void* x, const void* w_, const void* scales, const void* biases,
            const float* bias, void* y, int M, int N, int K) {
    extern __shared__ mlxq_u32x4 qmm_smem[];
    u32* smem = (u32*)qmm_smem;

    const u32* w = (const u32*)w_;
    const int tid = threadIdx.x;
    const int warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t = lane & 3;
    const int n0 = blockIdx.x * QMM_BN;
    const int m0 = blockIdx.y * QMM_BM;
    const int lr = tid >> 1, part = tid & 1;

    const size_t wpr = (size_t)K * MLXQ_BITS / 32;
    const size_t gpr = (size_t)(K / MLXQ_GROUP);
    const int wn = mlxq_min(n0 + lr, N - 1);
    const int xm = mlxq_min(m0 + lr, M - 1);
    const u32* wrow = w + (size_t)wn * wpr;
    const size_t srow = (size_t)wn * gpr;
    const char* xrow = (const char*)x + (size_t)xm * K * QMM_ACT_BYTES;
    // Stage layout: x tile (As) then W tile (Bs), each 128 rows of QMM_LD words.
    const int dst_off = lr * QMM_LD + part * 16;

    const int wm = warp >> 2, wc = warp & 3;

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

    // Registers of this thread's share of the next tile.
    mlxq_chunk ch;
    u32 xv[16];

#if MLXQ_ACT == 0
    // TF32: the thread's share is codes 16*part .. 16*part + 15 of the
    // tile's single chunk, and the same 16 activations.
    auto fetch = [&](int k0) {
        const int k = k0;
        if (k < K) {
            if (k + 32 <= K) mlxq_load_words<MLXQ_BITS, QMM_WIDE>(wrow + (size_t)(k / 32) * MLXQ_BITS, ch.w);
            else mlxq_load_words<MLXQ_BITS / 2, false>(wrow + (size_t)(k / 32) * MLXQ_BITS, ch.w);
            const size_t gi = srow + (size_t)(k / MLXQ_GROUP);
#pragma unroll
            for (int h = 0; h < QMM_SPC; h++) ch.s[h] = mlxq_load_scale(scales, gi + (k + 16 * h < K ? h : 0));
            ch.b = mlxq_load_qbias(biases, gi);
        }
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int kk = k0 + 16 * part + 4 * i;
            if (kk < K) {
                mlxq_u32x4 u = *(const mlxq_u32x4*)(xrow + (size_t)kk * 4);
                xv[4 * i] = u.x; xv[4 * i + 1] = u.y; xv[4 * i + 2] = u.z; xv[4 * i + 3] = u.w;
            } else {
                xv[4 * i] = xv[4 * i + 1] = xv[4 * i + 2] = xv[4 * i + 3] = 0u;
            }
        }
    };
    auto store = [&](u32* st, int k0) {
        u32 wv[16];
#pragma unroll
        for (int j = 0; j < 16; j++) {
            const int jj = 16 * part + j;
            const float d = mlxq_dequant(mlxq_code<MLXQ_BITS>(ch.w, jj), ch.s[QMM_SPC == 2 ? (jj >> 4) : 0], ch.b);
            wv[j] = mlxq_tf32(k0 + jj < K ? d : 0.0f);
        }
        mlxq_u32x4* bw = (mlxq_u32x4*)(st + 128 * QMM_LD + dst_off);
        mlxq_u32x4* aw = (mlxq_u32x4*)(st + dst_off);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            mlxq_u32x4 u;
            u.x = wv[4 * i]; u.y = wv[4 * i + 1]; u.z = wv[4 * i + 2]; u.w = wv[4 * i + 3];
            bw[i] = u;
            u.x = mlxq_tf32(mlxq_as_float(xv[4 * i])); u.y = mlxq_tf32(mlxq_as_float(xv[4 * i + 1]));
            u.z = mlxq_tf32(mlxq_as_float(xv[4 * i + 2])); u.w = mlxq_tf32(mlxq_as_float(xv[4 * i + 3]));
            aw[i] = u;
        }
    };
#else
    // 16-bit: the thread's share is chunk `part` of the tile (32 codes) and
    // the same 32 activations.
    auto fetch = [&](int k0) {
        const int k = k0 + 32 * part;
        if (k < K) {
            if (k + 32 <= K) mlxq_load_words<MLXQ_BITS, QMM_WIDE>(wrow + (size_t)(k / 32) * MLXQ_BITS, ch.w);
            else mlxq_load_words<MLXQ_BITS / 2, false>(wrow + (size_t)(k / 32) * MLXQ_BITS, ch.w);
            const size_t gi = srow + (size_t)(k / MLXQ_GROUP);
#pragma unroll
            for (int h = 0; h < QMM_SPC; h++) ch.s[h] = mlxq_load_scale(scales, gi + (k + 16 * h < K ? h : 0));
            ch.b = mlxq_load_qbias(biases, gi);
        }
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int kk = k + 8 * i;
            if (kk < K) {
                mlxq_u32x4 u = *(const mlxq_u32x4*)(xrow + (size_t)kk * 2);
                xv[4 * i] = u.x; xv[4 * i + 1] = u.y; xv[4 * i + 2] = u.z; xv[4 * i + 3] = u.w;
            } else {
                xv[4 * i] = xv[4 * i + 1] = xv[4 * i + 2] = xv[4 * i + 3] = 0u;
            }
        }
    };
    auto store = [&](u32* st, int k0) {
        const int k = k0 + 32 * part;
        const int valid = mlxq_max(0, mlxq_min(32, K - k));
        u32 wv[16], xp[16];
        mlxq_dequant_pairs(ch, valid, wv);
        mlxq_perm_pairs(xv, xp);
        mlxq_u32x4* bw = (mlxq_u32x4*)(st + 128 * QMM_LD + dst_off);
        mlxq_u32x4* aw = (mlxq_u32x4*)(st + dst_off);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            mlxq_u32x4 u;
            u.x = wv[4 * i]; u.y = wv[4 * i + 1]; u.z = wv[4 * i + 2]; u.w = wv[4 * i + 3];
            bw[i] = u;
            u.x = xp[4 * i]; u.y = xp[4 * i + 1]; u.z = xp[4 * i + 2]; u.w = xp[4 * i + 3];
            aw[i] = u;
        }
    };
#endif

    const int nk = (K + QMM_BK - 1) / QMM_BK;
    fetch(0);
    store(smem, 0);
    __syncthreads();
    for (int kt = 0; kt < nk; kt++) {
        const u32* As = smem + (kt & 1) * QMM_STAGE;
        const u32* Bs = As + 128 * QMM_LD;
        const bool more = kt + 1 < nk;
        if (more) fetch((kt + 1) * QMM_BK);
#if MLXQ_ACT == 0
#pragma unroll
        for (int kw = 0; kw < 32; kw += 8) {
            u32 a[4][4], b[4][2];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const u32* p = As + (wm * 64 + i * 16 + g) * QMM_LD + kw + t;
                a[i][0] = p[0];
                a[i][1] = p[8 * QMM_LD];
                a[i][2] = p[4];
                a[i][3] = p[8 * QMM_LD + 4];
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const u32* p = Bs + (wc * 32 + j * 8 + g) * QMM_LD + kw + t;
                b[j][0] = p[0];
                b[j][1] = p[4];
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) qmm_mma(acc[i][j], a[i], b[j][0], b[j][1]);
        }
#else
        const u32 a_base = qmm_smem_addr(As + (wm * 64 + (lane & 15)) * QMM_LD + (lane >> 4) * 4);
        const u32 b_base = qmm_smem_addr(Bs + (wc * 32 + (lane & 7) + ((lane >> 4) << 3)) * QMM_LD + ((lane >> 3) & 1) * 4);
#pragma unroll
        for (int kw = 0; kw < 32; kw += 8) {
            u32 a[4][4], b[4][2];
#pragma unroll
            for (int i = 0; i < 4; i++) qmm_ldsm4(a_base + (u32)((i * 16 * QMM_LD + kw) * 4), a[i]);
#pragma unroll
            for (int jp = 0; jp < 2; jp++) {
                u32 r[4];
                qmm_ldsm4(b_base + (u32)((jp * 16 * QMM_LD + kw) * 4), r);
                b[2 * jp][0] = r[0];
                b[2 * jp][1] = r[1];
                b[2 * jp + 1][0] = r[2];
                b[2 * jp + 1][1] = r[3];
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) qmm_mma(acc[i][j], a[i], b[j][0], b[j][1]);
        }
#endif
        if (more) store(smem + ((kt + 1) & 1) * QMM_STAGE, (kt + 1) * QMM_BK);
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < 4; i++) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int col = n0 + wc * 32 + j * 8 + 2 * t;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int m = m0 + wm * 64 + i * 16 + g + (e >= 2 ? 8 : 0);
                const int n = col + (e & 1);
                if (m < M && n < N) {
                    float v = acc[i][j][e];
                    if (bias) v += bias[n];
                    mlxq_store_act(y, (size_t)m * N + n, v);
                }
            }
        }
    }
}
