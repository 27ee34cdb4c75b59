// Shared helpers for the quantized matrix product kernels (Metal Shading
// Language).
//
// A compile unit is a preamble of integer #defines, this file, then one
// kernel file (the file name is the kernel's catalog name); the backend
// joins them into one source for newLibraryWithSource, since a library
// made from source cannot #include files. The macros:
//   MLXQ_MODE  0 affine, 1 mxfp4, 2 mxfp8, 3 nvfp4
//   MLXQ_BITS  code width: 2, 3, 4, 5, 6 or 8
//   MLXQ_GROUP group size: 16, 32, 64 or 128
//   MLXQ_ACT   dtype of x and y: 0 float, 1 half, 2 bfloat
//   MLXQ_SCALE dtype of scales and biases: 0 float, 1 half, 2 bfloat, 3 uchar
// Every unit's entry point is mlxq_kernel. Buffers are bound in the order
// of metal/geometry.go: matrix products take x, w, scales, biases, bias,
// y and the parameter block (buffer indices 0 to 6); unpack takes w, codes
// and the parameter block (0 to 2); embed and the gathered products take
// the lists their sources give (EmbedBindings and GatherBindings there).
// Absent biases and bias are bound to a dummy buffer and flagged off in
// the parameter block. Threadgroup memory,
// where a kernel uses any, is one float array at [[threadgroup(0)]] of the
// size the geometry table gives.
//
// Products accumulate in float. bfloat needs Metal Shading Language 3.1.
#ifndef MLXQ_COMMON_METAL
#define MLXQ_COMMON_METAL

#ifndef MLXQ_MSL_CHECK
#include <metal_stdlib>
#endif
using namespace metal;

#ifndef MLXQ_MODE
#define MLXQ_MODE 0
#endif
#ifndef MLXQ_BITS
#define MLXQ_BITS 4
#endif
#ifndef MLXQ_GROUP
#define MLXQ_GROUP 64
#endif
// Unpack units carry no group size.
#if MLXQ_GROUP <= 0
#undef MLXQ_GROUP
#define MLXQ_GROUP 32
#endif
#ifndef MLXQ_ACT
#define MLXQ_ACT 0
#endif
#ifndef MLXQ_SCALE
#define MLXQ_SCALE 0
#endif

#define MLXQ_AFFINE (MLXQ_MODE == 0)
#define MLXQ_FP4 (MLXQ_MODE == 1 || MLXQ_MODE == 3)
#define MLXQ_MASK ((1u << MLXQ_BITS) - 1u)

#if MLXQ_ACT == 0
typedef float act_t;
#elif MLXQ_ACT == 1
typedef half act_t;
#else
typedef bfloat act_t;
#endif

#if MLXQ_SCALE == 0
typedef float scale_t;
#elif MLXQ_SCALE == 1
typedef half scale_t;
#elif MLXQ_SCALE == 2
typedef bfloat scale_t;
#else
typedef uchar scale_t;
#endif

// The parameter block, set with setBytes: the product's dimensions (for
// unpack, N is the rows and K the codes per row) and flags.
struct mlxq_params {
    uint M;
    uint N;
    uint K;
    uint flags;
};

// flags: a biases buffer (affine) is bound; a Linear bias is bound.
#define MLXQ_HAS_BIASES 1u
#define MLXQ_HAS_BIAS 2u

// The buffers of a matrix product, in binding order. (A translation of
// the kernels to another API may define its own.)
#ifndef MLXQ_MATMUL_BUFFERS
#define MLXQ_MATMUL_BUFFERS(WT)                                  \
    const device act_t* x [[buffer(0)]],                         \
    const device WT* w [[buffer(1)]],                            \
    const device scale_t* scales [[buffer(2)]],                  \
    const device scale_t* biases [[buffer(3)]],                  \
    const device float* bias [[buffer(4)]],                      \
    device act_t* y [[buffer(5)]],                               \
    constant mlxq_params& p [[buffer(6)]]
#endif

// The attribute of the threadgroup memory argument. It is a macro so that
// checkers whose stand-in for threadgroup expands to nothing can drop it.
#ifndef MLXQ_THREADGROUP_MEMORY
#define MLXQ_THREADGROUP_MEMORY [[threadgroup(0)]]
#endif

// ---- scales, biases and code values ---------------------------------------

// E8M0: 2^(e-127); e = 0 is 2^-127, e = 255 is +inf.
inline float mlxq_e8m0(uint e) {
    return as_type<float>(e ? (e << 23) : 0x00400000u);
}

// E4M3 (fn, no NaN): sign bit 7, exponent bits 6-3 (bias 7), mantissa 2-0.
inline float mlxq_e4m3(uint b) {
    const uint e = (b >> 3) & 15u;
    const uint m = b & 7u;
    const float mag = e ? as_type<float>(((b & 0x7Fu) << 20) + (120u << 23))
                        : float(m) * 0.001953125f;
    return (b & 0x80u) ? -mag : mag;
}

// Twice the E2M1 value of a 4-bit code, an integer in [-12, 12]: bit 3 is
// the sign, bits 0-2 index {0, 1, 2, 3, 4, 6, 8, 12}.
inline float mlxq_e2m1x2(uint c) {
    const uint mag = (0xC8643210u >> ((c & 7u) << 2)) & 15u;
    const float f = float(mag);
    return (c & 8u) ? -f : f;
}

// The exact E2M1 value of a 4-bit code.
inline float mlxq_e2m1(uint c) { return mlxq_e2m1x2(c) * 0.5f; }

// The value of code q before scaling, as the kernels multiply it: q itself
// (affine), twice the E2M1 value (fp4 modes; mlxq_scale halves the scale to
// match) or the E4M3 value (mxfp8).
inline float mlxq_code_value(uint q) {
#if MLXQ_FP4
    return mlxq_e2m1x2(q);
#elif MLXQ_MODE == 2
    return mlxq_e4m3(q);
#else
    return float(q);
#endif
}

// Scale i as a float, exactly as stored.
inline float mlxq_load_scale(const device scale_t* s, ulong i) {
#if MLXQ_SCALE == 3
#if MLXQ_MODE == 3
    return mlxq_e4m3(uint(s[i]));
#else
    return mlxq_e8m0(uint(s[i]));
#endif
#else
    return float(s[i]);
#endif
}

// Scale i as the kernels multiply it with mlxq_code_value: halved for fp4.
inline float mlxq_scale(const device scale_t* s, ulong i) {
#if MLXQ_FP4
    return mlxq_load_scale(s, i) * 0.5f;
#else
    return mlxq_load_scale(s, i);
#endif
}

// Bias i (affine only; same dtype as the scales); 0 for the fp modes and
// when no biases buffer is bound.
inline float mlxq_load_qbias(const device scale_t* b, ulong i, uint flags) {
#if MLXQ_AFFINE
    return (flags & MLXQ_HAS_BIASES) ? float(b[i]) : 0.0f;
#else
    return 0.0f;
#endif
}

// The exact dequantized weight of code q with scale s and bias b (as loaded
// by mlxq_load_scale and mlxq_load_qbias): s*q + b (affine, one rounding),
// or decode(q)*s.
inline float mlxq_dequant(uint q, float s, float b) {
#if MLXQ_AFFINE
    return fma(s, float(q), b);
#elif MLXQ_FP4
    return mlxq_e2m1(q) * s;
#else
    return mlxq_e4m3(q) * s;
#endif
}

// The Linear bias of output n, or 0.
inline float mlxq_bias(const device float* bias, uint n, uint flags) {
    return (flags & MLXQ_HAS_BIAS) ? bias[n] : 0.0f;
}

// ---- packed codes -----------------------------------------------------------

// Code k of a row of packed words (LSB-first bitstream), any width.
inline uint mlxq_packed_code(const device uint* row, uint k) {
    const uint pos = k * uint(MLXQ_BITS);
    const uint wi = pos >> 5;
    const uint off = pos & 31u;
    uint v = row[wi] >> off;
    if (off + uint(MLXQ_BITS) > 32u) {
        v |= row[wi + 1] << (32u - off);
    }
    return v & MLXQ_MASK;
}

// Code j of a run of codes held as 16-bit halves of the packed stream
// (h[0] holds the run's first bits); h has one zero entry past the run.
inline uint mlxq_run_code(thread const uint* h, int j) {
    const int pos = j * MLXQ_BITS;
    const uint v = h[pos >> 4] | (h[(pos >> 4) + 1] << 16);
    return (v >> uint(pos & 15)) & MLXQ_MASK;
}

// ---- the tiled simdgroup-matrix body ------------------------------------------
//
// One threadgroup of 4 simdgroups (2 x 2) computes a BM x BN tile of y
// (BM = 16 FM rows of x, BN = 16 FN rows of W); simdgroup (sm, sn) owns the
// FM x FN 8 x 8 blocks at rows 8 FM sm, columns 8 FN sn of the tile. K is
// walked in steps of BK codes: the 128 threads stage x[BM][BK] and the
// dequantized w[BN][BK] in threadgroup memory as float (rows past M or N,
// and codes past K, as zeros), then each simdgroup multiplies 8 x 8
// simdgroup_float8x8 blocks (w through transposed loads), accumulating in
// float. The tile is stored back through threadgroup memory and written
// with bounds checks, plus the Linear bias. The loader L fills the weight
// tile: L.fill(ws, ld, n0, k0, tid) writes ws[r * ld + c] for r < BN,
// c < BK.
#define MLXQ_PAD 4

template <int FM, int FN, int BK>
struct mlxq_tile_shape {
    static constant constexpr int BM = 16 * FM;
    static constant constexpr int BN = 16 * FN;
    static constant constexpr int LD = BK + MLXQ_PAD;
    // Floats of threadgroup memory: the x and w stages.
    static constant constexpr int FLOATS = (BM + BN) * LD;
};

template <int FM, int FN, int BK, typename L>
inline void mlxq_tile_mma(thread const L& loader, const device act_t* x, const device float* bias,
                          device act_t* y, constant mlxq_params& p, threadgroup float* smem,
                          uint3 tgid, uint tid, uint sgid) {
    typedef mlxq_tile_shape<FM, FN, BK> S;
    const int BM = S::BM, BN = S::BN, LD = S::LD;
    threadgroup float* xs = smem;
    threadgroup float* ws = smem + BM * LD;
    const uint M = p.M, N = p.N, K = p.K;
    const uint n0 = tgid.x * uint(BN), m0 = tgid.y * uint(BM);
    const int sm = int(sgid) >> 1, sn = int(sgid) & 1;

    simdgroup_float8x8 acc[FM][FN];
    for (int i = 0; i < FM; i++) {
        for (int j = 0; j < FN; j++) {
            acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
        }
    }
    for (uint k0 = 0; k0 < K; k0 += uint(BK)) {
        for (int e = int(tid); e < BM * BK; e += 128) {
            const int r = e / BK, c = e % BK;
            const uint m = m0 + uint(r), k = k0 + uint(c);
            xs[r * LD + c] = (m < M && k < K) ? float(x[ulong(m) * K + k]) : 0.0f;
        }
        loader.fill(ws, LD, n0, k0, tid);
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (int kk = 0; kk < BK; kk += 8) {
            simdgroup_float8x8 a[FM];
            simdgroup_float8x8 b[FN];
            for (int i = 0; i < FM; i++) {
                simdgroup_load(a[i], xs + (sm * 8 * FM + 8 * i) * LD + kk, ulong(LD));
            }
            for (int j = 0; j < FN; j++) {
                simdgroup_load(b[j], ws + (sn * 8 * FN + 8 * j) * LD + kk, ulong(LD), ulong2(0, 0), true);
            }
            for (int i = 0; i < FM; i++) {
                for (int j = 0; j < FN; j++) {
                    simdgroup_multiply_accumulate(acc[i][j], a[i], b[j], acc[i][j]);
                }
            }
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    // The stages are free: store the tile there, BM x BN floats.
    for (int i = 0; i < FM; i++) {
        for (int j = 0; j < FN; j++) {
            simdgroup_store(acc[i][j], smem + (sm * 8 * FM + 8 * i) * BN + sn * 8 * FN + 8 * j, ulong(BN));
        }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (int e = int(tid); e < BM * BN; e += 128) {
        const int r = e / BN, c = e % BN;
        const uint m = m0 + uint(r), n = n0 + uint(c);
        if (m < M && n < N) {
            y[ulong(m) * N + n] = act_t(smem[r * BN + c] + mlxq_bias(bias, n, p.flags));
        }
    }
}

// Weight tile loader for one code per element: CODE(n, k) gives code k of
// row n; each element is dequantized with its group's scale and bias. The
// simd4 family differs only in CODE, so packed_simd4_b4 and simd4 agree bit
// for bit on the same codes.
template <int BN, int BK, typename C>
struct mlxq_elem_loader {
    C code;
    const device scale_t* scales;
    const device scale_t* biases;
    uint N;
    uint K;
    uint flags;

    void fill(threadgroup float* ws, int ld, uint n0, uint k0, uint tid) const {
        const uint gpr = K / uint(MLXQ_GROUP);
        for (int e = int(tid); e < BN * BK; e += 128) {
            const int r = e / BK, c = e % BK;
            const uint n = n0 + uint(r), k = k0 + uint(c);
            float v = 0.0f;
            if (n < N && k < K) {
                const ulong gi = ulong(n) * gpr + k / uint(MLXQ_GROUP);
                v = mlxq_dequant(code(n, k), mlxq_load_scale(scales, gi), mlxq_load_qbias(biases, gi, flags));
            }
            ws[r * ld + c] = v;
        }
    }
};

// Code k of row n from one byte per code (the unpack kernel's output).
struct mlxq_codes_u8 {
    const device uchar* w;
    uint K;
    uint operator()(uint n, uint k) const { return uint(w[ulong(n) * K + k]); }
};

// Code k of row n from MLX's packed 4-bit words.
struct mlxq_codes_packed4 {
    const device uint* w;
    uint K;
    uint operator()(uint n, uint k) const {
        return (w[ulong(n) * (K / 8u) + (k >> 3)] >> ((k & 7u) * 4u)) & 15u;
    }
};

// ---- the gathered products' body ----------------------------------------------
//
// The routing of a gathered product (engine.Routing) as int32 words: a
// header (the pairs P, TopK, the tiles, flags: 1 = an expert bias is
// bound), the P pairs p = m * TopK + j grouped by expert, then per tile
// its expert, first pair and count. Pair p reads row p / TopK of x and
// writes row p of y. The parameter block gives N (each expert's rows) and
// K.
//
// One threadgroup of 64 threads (2 simdgroups) computes 8 rows of the
// expert of tile tgid.y, rows 8 tgid.x .. 8 tgid.x + 7, for the tile's (at
// most TR) rows of x: qmv's design (qmv.metal) on gathered rows. Each
// simdgroup owns 4 rows; lane l takes the run of VPT values at l * VPT of
// each block of 32 * VPT values along K, loads the run's codes of its 4
// rows once as 16-bit halves of the packed stream, with their scales and
// biases, and then the run's activations of each of the tile's rows of x
// (with their sum), and folds the affine bias: acc += s * sum(q * x) +
// b * sum(x). Rows past N read row N - 1 and are never written; simd_sum
// reduces the lanes, and lane 0 adds the expert bias and writes the
// pair's row of y.
#define MLXQ_ROUTE_HEADER 4
#define MLXQ_ROUTE_BIAS 1

#if MLXQ_BITS >= 6
#define MLXQ_GQ_VPT 8
#else
#define MLXQ_GQ_VPT 16
#endif
#define MLXQ_GQ_BLOCK (32 * MLXQ_GQ_VPT)
#define MLXQ_GQ_HALVES (MLXQ_GQ_VPT * MLXQ_BITS / 16)
#define MLXQ_GQ_ROWS 4

template <int TR>
inline void mlxq_gather_rows(const device act_t* x, const device uint* w, const device scale_t* scales,
                             const device scale_t* biases, const device float* bias, device act_t* y,
                             const device int* route, constant mlxq_params& p, uint3 tgid, uint sgid, uint lane) {
    const uint N = p.N, K = p.K;
    const int npairs = route[0], topk = route[1];
    const bool has_bias = (route[3] & MLXQ_ROUTE_BIAS) != 0;
    const device int* tile = route + MLXQ_ROUTE_HEADER + npairs + 3 * int(tgid.y);
    const ulong e = ulong(tile[0]);
    const int count = min(tile[2], TR);
    const device int* pairs = route + MLXQ_ROUTE_HEADER + tile[1];
    const uint n0 = tgid.x * 8u + sgid * uint(MLXQ_GQ_ROWS);
    if (n0 >= N) {
        return;
    }
    const device ushort* wh = (const device ushort*)w;
    const ulong halves_per_row = ulong(K) * MLXQ_BITS / 16;
    const uint gpr = K / uint(MLXQ_GROUP);
    ulong woff[MLXQ_GQ_ROWS];
    ulong soff[MLXQ_GQ_ROWS];
    for (int r = 0; r < MLXQ_GQ_ROWS; r++) {
        const ulong n = e * N + min(n0 + uint(r), N - 1u);
        woff[r] = n * halves_per_row;
        soff[r] = n * gpr;
    }
    ulong xoff[TR];
    float acc[MLXQ_GQ_ROWS][TR];
    for (int t = 0; t < TR; t++) {
        xoff[t] = ulong(pairs[min(t, count - 1)] / topk) * K;
        for (int r = 0; r < MLXQ_GQ_ROWS; r++) {
            acc[r][t] = 0.0f;
        }
    }
    for (uint k = lane * uint(MLXQ_GQ_VPT); k < K; k += uint(MLXQ_GQ_BLOCK)) {
        const uint g = k / uint(MLXQ_GROUP);
        const ulong hk = ulong(k) * MLXQ_BITS / 16;
        uint h[MLXQ_GQ_ROWS][MLXQ_GQ_HALVES + 1];
        float s[MLXQ_GQ_ROWS];
        float b[MLXQ_GQ_ROWS];
        for (int r = 0; r < MLXQ_GQ_ROWS; r++) {
            const device ushort* src = wh + woff[r] + hk;
            for (int i = 0; i < MLXQ_GQ_HALVES; i++) {
                h[r][i] = uint(src[i]);
            }
            h[r][MLXQ_GQ_HALVES] = 0u;
            s[r] = mlxq_scale(scales, soff[r] + g);
            b[r] = mlxq_load_qbias(biases, soff[r] + g, MLXQ_HAS_BIASES);
        }
        for (int t = 0; t < count; t++) {
            float xv[MLXQ_GQ_VPT];
            float xsum = 0.0f;
            for (int j = 0; j < MLXQ_GQ_VPT; j++) {
                xv[j] = float(x[xoff[t] + k + uint(j)]);
                xsum += xv[j];
            }
            for (int r = 0; r < MLXQ_GQ_ROWS; r++) {
                float d = 0.0f;
                for (int j = 0; j < MLXQ_GQ_VPT; j++) {
                    d = fma(xv[j], mlxq_code_value(mlxq_run_code(h[r], j)), d);
                }
#if MLXQ_AFFINE
                acc[r][t] = fma(s[r], d, fma(b[r], xsum, acc[r][t]));
#else
                acc[r][t] = fma(s[r], d, acc[r][t]);
#endif
            }
        }
    }
    for (int r = 0; r < MLXQ_GQ_ROWS; r++) {
        for (int t = 0; t < count; t++) {
            const float v = simd_sum(acc[r][t]);
            const uint n = n0 + uint(r);
            if (lane == 0u && n < N) {
                const float eb = has_bias ? bias[e * N + n] : 0.0f;
                y[ulong(pairs[t]) * N + n] = act_t(v + eb);
            }
        }
    }
}

#endif // MLXQ_COMMON_METAL
