// Shared helpers for the quantized matrix product kernels.
//
// Every compile unit is a preamble of integer #defines followed by one
// kernel file that includes this header:
//   MLXQ_MODE  0 affine, 1 mxfp4, 2 mxfp8, 3 nvfp4
//   MLXQ_BITS  code width: 2, 3, 4, 5, 6 or 8
//   MLXQ_GROUP group size: 16, 32, 64 or 128
//   MLXQ_ACT   dtype of x and y: 0 f32, 1 f16, 2 bf16
//   MLXQ_SCALE dtype of scales and biases: 0 f32, 1 f16, 2 bf16, 3 u8
// The code uses no CUDA headers: NVRTC's built-ins or clang's CUDA built-ins
// (with clang_prelude.h) are all it needs.
#ifndef MLXQ_COMMON_CUH
#define MLXQ_COMMON_CUH

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
// The backend's bias_add unit carries no format.
#if MLXQ_BITS <= 0
#undef MLXQ_BITS
#define MLXQ_BITS 4
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

typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;
typedef unsigned long long u64;

struct alignas(16) mlxq_u32x4 { u32 x, y, z, w; };
struct alignas(8) mlxq_u32x2 { u32 x, y; };
struct alignas(16) mlxq_f32x4 { float x, y, z, w; };

// Bit casts and fused multiply-add that need no device library: clang's
// builtins under clang, CUDA's intrinsics under NVRTC.
#if defined(__clang__)
__device__ __forceinline__ float mlxq_as_float(u32 u) { return __builtin_bit_cast(float, u); }
__device__ __forceinline__ u32 mlxq_as_uint(float f) { return __builtin_bit_cast(u32, f); }
__device__ __forceinline__ float mlxq_fma(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
#else
__device__ __forceinline__ float mlxq_as_float(u32 u) { return __uint_as_float(u); }
__device__ __forceinline__ u32 mlxq_as_uint(float f) { return __float_as_uint(f); }
__device__ __forceinline__ float mlxq_fma(float a, float b, float c) { return __fmaf_rn(a, b, c); }
#endif

__device__ __forceinline__ int mlxq_min(int a, int b) { return a < b ? a : b; }
__device__ __forceinline__ int mlxq_max(int a, int b) { return a > b ? a : b; }

// ---- scalar conversions -------------------------------------------------

__device__ __forceinline__ float mlxq_f16_to_f32(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
__device__ __forceinline__ u16 mlxq_f32_to_f16(float f) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
__device__ __forceinline__ float mlxq_bf16_to_f32(u16 h) {
    return mlxq_as_float(((u32)h) << 16);
}
__device__ __forceinline__ u16 mlxq_f32_to_bf16(float f) {
    u16 h;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
// Two floats rounded to nearest even and packed as a pair of the
// activation's 16-bit type (lo in the low half).
__device__ __forceinline__ u32 mlxq_pack2(float lo, float hi) {
    u32 r;
#if MLXQ_ACT == 2
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
#else
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
#endif
    return r;
}
__device__ __forceinline__ u32 mlxq_tf32(float f) {
    u32 r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(f));
    return r;
}

// Low and high halves of a pair of 16-bit activations as floats.
__device__ __forceinline__ float mlxq_act_lo(u32 v) {
#if MLXQ_ACT == 2
    return mlxq_as_float(v << 16);
#else
    return mlxq_f16_to_f32((u16)(v & 0xFFFFu));
#endif
}
__device__ __forceinline__ float mlxq_act_hi(u32 v) {
#if MLXQ_ACT == 2
    return mlxq_as_float(v & 0xFFFF0000u);
#else
    return mlxq_f16_to_f32((u16)(v >> 16));
#endif
}

// ---- activations ----------------------------------------------------------

__device__ __forceinline__ float mlxq_load_act(const void* p, size_t i) {
#if MLXQ_ACT == 0
    return ((const float*)p)[i];
#elif MLXQ_ACT == 1
    return mlxq_f16_to_f32(((const u16*)p)[i]);
#else
    return mlxq_bf16_to_f32(((const u16*)p)[i]);
#endif
}

__device__ __forceinline__ void mlxq_store_act(void* p, size_t i, float v) {
#if MLXQ_ACT == 0
    ((float*)p)[i] = v;
#elif MLXQ_ACT == 1
    ((u16*)p)[i] = mlxq_f32_to_f16(v);
#else
    ((u16*)p)[i] = mlxq_f32_to_bf16(v);
#endif
}

// Loads 32 consecutive activations (16-byte aligned) as floats.
__device__ __forceinline__ void mlxq_load_act32(const void* p, float* v) {
#if MLXQ_ACT == 0
    const mlxq_f32x4* q = (const mlxq_f32x4*)p;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        mlxq_f32x4 f = q[i];
        v[4 * i] = f.x; v[4 * i + 1] = f.y; v[4 * i + 2] = f.z; v[4 * i + 3] = f.w;
    }
#else
    const mlxq_u32x4* q = (const mlxq_u32x4*)p;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        mlxq_u32x4 u = q[i];
        v[8 * i + 0] = mlxq_act_lo(u.x); v[8 * i + 1] = mlxq_act_hi(u.x);
        v[8 * i + 2] = mlxq_act_lo(u.y); v[8 * i + 3] = mlxq_act_hi(u.y);
        v[8 * i + 4] = mlxq_act_lo(u.z); v[8 * i + 5] = mlxq_act_hi(u.z);
        v[8 * i + 6] = mlxq_act_lo(u.w); v[8 * i + 7] = mlxq_act_hi(u.w);
    }
#endif
}

// Loads 16 consecutive activations (16-byte aligned) as floats.
__device__ __forceinline__ void mlxq_load_act16(const void* p, float* v) {
#if MLXQ_ACT == 0
    const mlxq_f32x4* q = (const mlxq_f32x4*)p;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        mlxq_f32x4 f = q[i];
        v[4 * i] = f.x; v[4 * i + 1] = f.y; v[4 * i + 2] = f.z; v[4 * i + 3] = f.w;
    }
#else
    const mlxq_u32x4* q = (const mlxq_u32x4*)p;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        mlxq_u32x4 u = q[i];
        v[8 * i + 0] = mlxq_act_lo(u.x); v[8 * i + 1] = mlxq_act_hi(u.x);
        v[8 * i + 2] = mlxq_act_lo(u.y); v[8 * i + 3] = mlxq_act_hi(u.y);
        v[8 * i + 4] = mlxq_act_lo(u.z); v[8 * i + 5] = mlxq_act_hi(u.z);
        v[8 * i + 6] = mlxq_act_lo(u.w); v[8 * i + 7] = mlxq_act_hi(u.w);
    }
#endif
}

// ---- scales, biases and code values --------------------------------------

// E8M0: 2^(e-127); e = 0 is 2^-127, e = 255 is +inf.
__device__ __forceinline__ float mlxq_e8m0(u32 e) {
    return mlxq_as_float(e ? (e << 23) : 0x00400000u);
}

// E4M3 (fn, no NaN): sign bit 7, exponent bits 6-3 (bias 7), mantissa 2-0.
__device__ __forceinline__ float mlxq_e4m3(u32 b) {
    u32 e = (b >> 3) & 15u;
    u32 m = b & 7u;
    float mag = e ? mlxq_as_float(((b & 0x7Fu) << 20) + (120u << 23))
                  : (mlxq_as_float(0x4B000000u | m) - 8388608.0f) * 0.001953125f;
    return (b & 0x80u) ? -mag : mag;
}

// Twice the E2M1 value of a 4-bit code, an integer in [-12, 12]: bit 3 is
// the sign, bits 0-2 index {0, 1, 2, 3, 4, 6, 8, 12}.
__device__ __forceinline__ float mlxq_e2m1x2(u32 c) {
    u32 mag = (0xC8643210u >> ((c & 7u) << 2)) & 15u;
    float f = mlxq_as_float(0x4B000000u | mag) - 8388608.0f;
    return mlxq_as_float(mlxq_as_uint(f) | ((c & 8u) << 28));
}

// The exact E2M1 value of a 4-bit code.
__device__ __forceinline__ float mlxq_e2m1(u32 c) { return mlxq_e2m1x2(c) * 0.5f; }

// Affine code (an unsigned integer below 2^23) as a float, exactly.
__device__ __forceinline__ float mlxq_u2f(u32 q) {
    return mlxq_as_float(0x4B000000u | q) - 8388608.0f;
}

// The value of code q before scaling, as the kernels multiply it: q itself
// (affine), twice the E2M1 value (fp4 modes; mlxq_scale halves the scale to
// match) or the E4M3 value (mxfp8).
__device__ __forceinline__ float mlxq_code_value(u32 q) {
#if MLXQ_FP4
    return mlxq_e2m1x2(q);
#elif MLXQ_MODE == 2
    return mlxq_e4m3(q);
#else
    return mlxq_u2f(q);
#endif
}

// Scale i as a float, exactly as stored.
__device__ __forceinline__ float mlxq_load_scale(const void* p, size_t i) {
#if MLXQ_SCALE == 0
    return ((const float*)p)[i];
#elif MLXQ_SCALE == 1
    return mlxq_f16_to_f32(((const u16*)p)[i]);
#elif MLXQ_SCALE == 2
    return mlxq_bf16_to_f32(((const u16*)p)[i]);
#else
    u32 b = ((const u8*)p)[i];
#if MLXQ_MODE == 3
    return mlxq_e4m3(b);
#else
    return mlxq_e8m0(b);
#endif
#endif
}

// Scale i as the kernels multiply it with mlxq_code_value: halved for fp4.
__device__ __forceinline__ float mlxq_scale(const void* p, size_t i) {
#if MLXQ_FP4
    return mlxq_load_scale(p, i) * 0.5f;
#else
    return mlxq_load_scale(p, i);
#endif
}

// Bias i (affine only; same dtype as the scales); 0 for the fp modes.
__device__ __forceinline__ float mlxq_load_qbias(const void* p, size_t i) {
#if MLXQ_AFFINE
    return mlxq_load_scale(p, i);
#else
    (void)p;
    (void)i;
    return 0.0f;
#endif
}

// The exact dequantized weight of code q with scale s and bias b (as loaded
// by mlxq_load_scale / mlxq_load_qbias): s*q + b (affine, one rounding),
// or decode(q)*s.
__device__ __forceinline__ float mlxq_dequant(u32 q, float s, float b) {
#if MLXQ_AFFINE
    return mlxq_fma(s, mlxq_u2f(q), b);
#elif MLXQ_FP4
    (void)b;
    return mlxq_e2m1(q) * s;
#else
    (void)b;
    return mlxq_e4m3(q) * s;
#endif
}

// ---- packed codes ---------------------------------------------------------

// Code j (a compile-time constant after unrolling) of a chunk of 32 codes
// held in BITS words w[], LSB-first.
template <int BITS>
__device__ __forceinline__ u32 mlxq_code(const u32* w, int j) {
    const int p = j * BITS;
    const int wi = p >> 5;
    const int off = p & 31;
    if (off + BITS <= 32) return (w[wi] >> off) & ((1u << BITS) - 1u);
    return ((w[wi] >> off) | (w[wi + 1] << (32 - off))) & ((1u << BITS) - 1u);
}

// Loads the n words of one chunk (n = BITS for 32 codes) from p using the
// widest loads its alignment allows: a chunk of 32 codes starts at a
// multiple of 4*BITS bytes from a row start, and rows start at multiples of
// 4*BITS bytes when K is a multiple of 32. WIDE says whether 16-byte loads
// are allowed (false for the half chunks of nvfp4 rows of K % 32 == 16).
template <int NW, bool WIDE>
__device__ __forceinline__ void mlxq_load_words(const u32* p, u32* w) {
    if (WIDE && (NW % 4) == 0) {
#pragma unroll
        for (int i = 0; i < NW / 4; i++) {
            mlxq_u32x4 v = ((const mlxq_u32x4*)p)[i];
            w[4 * i] = v.x; w[4 * i + 1] = v.y; w[4 * i + 2] = v.z; w[4 * i + 3] = v.w;
        }
    } else if ((NW % 2) == 0) {
#pragma unroll
        for (int i = 0; i < NW / 2; i++) {
            mlxq_u32x2 v = ((const mlxq_u32x2*)p)[i];
            w[2 * i] = v.x; w[2 * i + 1] = v.y;
        }
    } else {
#pragma unroll
        for (int i = 0; i < NW; i++) w[i] = p[i];
    }
}

// acc plus the exact float32 product of the half chunk c (16 codes, the end
// of an nvfp4 row with K % 32 == 16) of a row with x's 16 values xv: the
// codes' dot product with xv, then one fma with the chunk's scale.
__device__ __forceinline__ float mlxq_half_chunk(const u32* wrow, const void* scales, size_t srow, int c,
                                                 const float* xv, float acc) {
    u32 wr[MLXQ_BITS];
    mlxq_load_words<MLXQ_BITS / 2, false>(wrow + (size_t)c * MLXQ_BITS, wr);
    const float s = mlxq_scale(scales, srow + (size_t)c * 2);
    float d0 = 0.0f;
#pragma unroll
    for (int j = 0; j < 16; j++) d0 = mlxq_fma(mlxq_code_value(mlxq_code<MLXQ_BITS>(wr, j)), xv[j], d0);
    return mlxq_fma(s, d0, acc);
}

// ---- warp reductions ------------------------------------------------------

__device__ __forceinline__ float mlxq_warp_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 16);
    v += __shfl_xor_sync(0xffffffffu, v, 8);
    v += __shfl_xor_sync(0xffffffffu, v, 4);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v;
}


// Scales per chunk of 32 codes.
#define MLXQ_SPC (MLXQ_GROUP == 16 ? 2 : 1)

// One row's share of a chunk: its words, scales and bias.
struct mlxq_chunk {
    u32 w[MLXQ_BITS];
    float s[MLXQ_SPC];
    float b;
};

// Loads the n words of a chunk like mlxq_load_words, as a stream: not
// kept in L1 (x and the scales are), with a 256-byte L2 prefetch hint (the
// nw warps of a block read 64 bytes of a row each, side by side).
template <int NW, bool WIDE>
__device__ __forceinline__ void mlxq_load_words_stream(const u32* p, u32* w) {
    if (WIDE && (NW % 4) == 0) {
#pragma unroll
        for (int i = 0; i < NW / 4; i++)
            asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
                : "=r"(w[4 * i]), "=r"(w[4 * i + 1]), "=r"(w[4 * i + 2]), "=r"(w[4 * i + 3])
                : "l"(p + 4 * i));
    } else if ((NW % 2) == 0) {
#pragma unroll
        for (int i = 0; i < NW / 2; i++)
            asm("ld.global.nc.L1::no_allocate.L2::256B.v2.u32 {%0, %1}, [%2];"
                : "=r"(w[2 * i]), "=r"(w[2 * i + 1])
                : "l"(p + 2 * i));
    } else {
#pragma unroll
        for (int i = 0; i < NW; i++)
            asm("ld.global.nc.L1::no_allocate.L2::256B.u32 %0, [%1];" : "=r"(w[i]) : "l"(p + i));
    }
}

// Loads chunk c of a row (a half chunk of 16 codes at the end of nvfp4 rows
// with K % 32 == 16): its words, scales and bias. STREAM loads whole chunks'
// words with mlxq_load_words_stream; WIDE allows their 16-byte loads.
template <bool STREAM, bool WIDE>
__device__ __forceinline__ void mlxq_fetch_chunk(mlxq_chunk& ch, const u32* wrow, const void* scales,
                                                 const void* biases, size_t srow, int c, int K) {
    const u32* p = wrow + (size_t)c * MLXQ_BITS;
    if (c * 32 + 32 <= K) {
        if (STREAM) mlxq_load_words_stream<MLXQ_BITS, WIDE>(p, ch.w);
        else mlxq_load_words<MLXQ_BITS, WIDE>(p, ch.w);
    } else {
        mlxq_load_words<MLXQ_BITS / 2, false>(p, ch.w);
#pragma unroll
        for (int i = MLXQ_BITS / 2; i < MLXQ_BITS; i++) ch.w[i] = 0u;
    }
    const size_t g = srow + (size_t)c * 32 / MLXQ_GROUP;
#pragma unroll
    for (int h = 0; h < MLXQ_SPC; h++) ch.s[h] = mlxq_load_scale(scales, g + (c * 32 + 16 * h < K ? h : 0));
    ch.b = mlxq_load_qbias(biases, g);
}

// ---- pairs of 16-bit values for the tensor-core kernels -------------------
#if MLXQ_ACT != 0
__device__ __forceinline__ u32 mlxq_prmt(u32 a, u32 b, u32 sel) {
    u32 d;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
    return d;
}

__device__ __forceinline__ u32 mlxq_fma2(u32 a, u32 b, u32 c) {
    u32 d;
#if MLXQ_ACT == 2
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
#else
    asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
#endif
    return d;
}

// One mma.sync m16n8k16 of the activation's 16-bit type with float32
// accumulators: c += A (rows g, g + 8) times B (tokens g).
__device__ __forceinline__ void mlxq_mma16816(float* c, u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
#if MLXQ_ACT == 2
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

// Loads a row of x's activations of a chunk (valid of 32 values, as pairs).
__device__ __forceinline__ void mlxq_fetch_x32(const u16* xp, int valid, u32* xw) {
    const mlxq_u32x4* q = (const mlxq_u32x4*)xp;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        mlxq_u32x4 u;
        if (i * 8 < valid) u = q[i];
        else u.x = u.y = u.z = u.w = 0u;
        xw[4 * i] = u.x; xw[4 * i + 1] = u.y; xw[4 * i + 2] = u.z; xw[4 * i + 3] = u.w;
    }
}

// Dequantizes word i of a row's chunk (codes 8i .. 8i + 7) into 4 pairs of
// the activation type: A[j] = (w[8i + j], w[8i + j + 4]), j < 4; codes at
// or past `valid` are zero. Affine 4-bit takes a packed 16-bit path:
// (w >> 4j) & 0x000F000F | magic gives the two codes as 128 + q (bf16) or
// 1024 + q (f16) exactly, one fma removes the offset and one computes
// round(q*s + b).
__device__ __forceinline__ void mlxq_dequant_word(const mlxq_chunk& ch, int i, int valid, u32* A) {
#if MLXQ_AFFINE && MLXQ_BITS == 4
    if (valid == 32) {
#if MLXQ_ACT == 2
        const u32 magic = 0x43004300u, one = 0x3F803F80u, neg = 0xC300C300u;
#else
        const u32 magic = 0x64006400u, one = 0x3C003C00u, neg = 0xE400E400u;
#endif
        const u32 s2 = mlxq_pack2(ch.s[0], ch.s[0]);
        const u32 b2 = mlxq_pack2(ch.b, ch.b);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const u32 p = ((ch.w[i] >> (4 * j)) & 0x000F000Fu) | magic;
            A[j] = mlxq_fma2(mlxq_fma2(p, one, neg), s2, b2);
        }
        return;
    }
#endif
    float v[8];
#pragma unroll
    for (int j = 0; j < 8; j++) {
        const int k = 8 * i + j;
        const float d = mlxq_dequant(mlxq_code<MLXQ_BITS>(ch.w, k), ch.s[MLXQ_SPC == 2 ? (k >> 4) : 0], ch.b);
        v[j] = k < valid ? d : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < 4; j++) A[j] = mlxq_pack2(v[j], v[j + 4]);
}

// Dequantizes a row's chunk into 16 pairs, A[4i + j] as mlxq_dequant_word.
__device__ __forceinline__ void mlxq_dequant_pairs(const mlxq_chunk& ch, int valid, u32* A) {
#pragma unroll
    for (int i = 0; i < 4; i++) mlxq_dequant_word(ch, i, valid, A + 4 * i);
}

// Permutes the activation pairs of word i of a chunk (xw holds the chunk's
// 16 pairs in order) to the order of mlxq_dequant_word.
__device__ __forceinline__ void mlxq_perm_word(const u32* xw, int i, u32* B) {
    B[0] = mlxq_prmt(xw[4 * i], xw[4 * i + 2], 0x5410u);
    B[1] = mlxq_prmt(xw[4 * i], xw[4 * i + 2], 0x7632u);
    B[2] = mlxq_prmt(xw[4 * i + 1], xw[4 * i + 3], 0x5410u);
    B[3] = mlxq_prmt(xw[4 * i + 1], xw[4 * i + 3], 0x7632u);
}

// Permutes a chunk's activation pairs to the order of mlxq_dequant_pairs.
__device__ __forceinline__ void mlxq_perm_pairs(const u32* xw, u32* B) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
        B[4 * i + 0] = mlxq_prmt(xw[4 * i], xw[4 * i + 2], 0x5410u);
        B[4 * i + 1] = mlxq_prmt(xw[4 * i], xw[4 * i + 2], 0x7632u);
        B[4 * i + 2] = mlxq_prmt(xw[4 * i + 1], xw[4 * i + 3], 0x5410u);
        B[4 * i + 3] = mlxq_prmt(xw[4 * i + 1], xw[4 * i + 3], 0x7632u);
    }
}

#endif

// ---- the simd4 family's shared body ---------------------------------------
#ifndef MLXQ_COMMON_SIMD4
#define MLXQ_COMMON_SIMD4

// One 32 x 32 tile of y per block of 128 threads (4 warps), K in steps of
// BK codes (one group of 32 or 64). Per step the block stages x[32][BK] and
// the dequantized w[32][BK] (w = fma(s, q, b) in float32) in shared memory;
// thread (warp v, lane l) accumulates y[m0 + 8v + i][n0 + l], i < 8, over k
// in order with one fma per product. CODE(n, k) returns code k of row n;
// simd4 and packed_simd4_b4 differ only in it, so their results are bitwise
// equal on the same codes.
template <int BK, typename CodeFn>
__device__ __forceinline__ void mlxq_simd4(const void* x, const void* scales, const void* biases,
                                           const float* bias, void* y, int M, int N, int K,
                                           CodeFn code) {
    __shared__ float xs[32][BK + 1];
    __shared__ float ws[32][BK + 1];
    const int tid = threadIdx.x;
    const int lane = tid & 31, warp = tid >> 5;
    const int n0 = blockIdx.x * 32, m0 = blockIdx.y * 32;
    const size_t gpr = (size_t)(K / MLXQ_GROUP);
    float acc[8];
#pragma unroll
    for (int i = 0; i < 8; i++) acc[i] = 0.0f;
    for (int k0 = 0; k0 < K; k0 += BK) {
        for (int e = tid; e < 32 * BK; e += 128) {
            const int r = e / BK, k = e % BK;
            const int m = m0 + r, n = n0 + r;
            xs[r][k] = (m < M) ? mlxq_load_act(x, (size_t)m * K + k0 + k) : 0.0f;
            float wv = 0.0f;
            if (n < N) {
                const size_t gi = (size_t)n * gpr + (size_t)((k0 + k) / MLXQ_GROUP);
                wv = mlxq_dequant(code(n, k0 + k), mlxq_load_scale(scales, gi), mlxq_load_qbias(biases, gi));
            }
            ws[r][k] = wv;
        }
        __syncthreads();
        for (int k = 0; k < BK; k++) {
            const float wv = ws[lane][k];
#pragma unroll
            for (int i = 0; i < 8; i++) acc[i] = mlxq_fma(xs[warp * 8 + i][k], wv, acc[i]);
        }
        __syncthreads();
    }
    const int n = n0 + lane;
    if (n < N) {
        const float bn = bias ? bias[n] : 0.0f;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const int m = m0 + warp * 8 + i;
            if (m < M) mlxq_store_act(y, (size_t)m * N + n, acc[i] + bn);
        }
    }
}

// Code k of row n from one byte per code (the unpack kernel's output).
struct mlxq_codes_u8 {
    const u8* w;
    int K;
    __device__ __forceinline__ u32 operator()(int n, int k) const { return w[(size_t)n * K + k]; }
};

// Code k of row n from MLX's packed 4-bit words.
struct mlxq_codes_packed4 {
    const u32* w;
    int K;
    __device__ __forceinline__ u32 operator()(int n, int k) const {
        return (w[(size_t)n * (K / 8) + (k >> 3)] >> ((k & 7) * 4)) & 15u;
    }
};

#endif // MLXQ_COMMON_SIMD4

// ---- the gathered products' CUDA-core body ----------------------------------
#ifndef MLXQ_COMMON_GATHER
#define MLXQ_COMMON_GATHER

// The routing of a gathered product (engine.Routing) as int32 words: a
// header (the pairs P, TopK, the tiles, flags), the P pairs p = m*TopK + j
// grouped by expert, then per tile its expert, first pair and count.
// Pair p reads row p / TopK of x and writes row p of y.
#define MLXQ_ROUTE_HEADER 4

#define MLXQ_GQ_WARPS 4
#define MLXQ_GQ_ROWS (MLXQ_BITS > 4 ? 2 : 4)
#define MLXQ_GQ_TM 4
// 16-byte weight loads are safe unless rows may start at odd multiples of
// 8 bytes (nvfp4 with K % 32 == 16).
#define MLXQ_GQ_WIDE (MLXQ_MODE != 3)
#define MLXQ_ACT_BYTES (MLXQ_ACT == 0 ? 4 : 2)

// Dot products of the first and second 16 codes of a chunk with x.
__device__ __forceinline__ void mlxq_gq_dot(const u32* wr, const float* xv, float& d0, float& d1) {
    float a0 = 0.0f, a1 = 0.0f;
#pragma unroll
    for (int j = 0; j < 32; j++) {
        const float v = mlxq_code_value(mlxq_code<MLXQ_BITS>(wr, j));
        if (j < 16) a0 = mlxq_fma(v, xv[j], a0);
        else a1 = mlxq_fma(v, xv[j], a1);
    }
    d0 = a0;
    d1 = a1;
}

// One tile of the routing (blockIdx.x) by MLXQ_GQ_WARPS * MLXQ_GQ_ROWS
// rows of its expert's weight (blockIdx.y), exact float32 FMA on CUDA
// cores, for activations of every dtype: qmv's f32 design on gathered rows
// of x. Blocks of 128 threads (4 warps); each warp owns MLXQ_GQ_ROWS
// consecutive rows of the expert and takes the tile's rows of x
// MLXQ_GQ_TM at a time. Lane l walks the chunks c = l, l + 32, ... of its
// rows, loads each chunk's words and scales once per MLXQ_GQ_TM rows of x
// and the chunk's 32 activations of each row of x once for all its weight
// rows, and folds the affine bias: acc += s * sum(q * x) + b * sum(x). The
// warp sums its lanes with shuffles; one lane per (weight row, pair) adds
// the expert's Linear bias and writes the pair's row of y.
__device__ __forceinline__ void mlxq_gather_rows(const void* x, const void* w, const void* scales,
                                                 const void* biases, const float* bias, void* y,
                                                 const int* route, int N, int K) {
    const int npairs = route[0], topk = route[1];
    const int* tile = route + MLXQ_ROUTE_HEADER + npairs + 3 * blockIdx.x;
    const int e = tile[0], count = tile[2];
    const int* pairs = route + MLXQ_ROUTE_HEADER + tile[1];
    const int lane = threadIdx.x & 31;
    const int n0 = (blockIdx.y * MLXQ_GQ_WARPS + (threadIdx.x >> 5)) * MLXQ_GQ_ROWS;
    if (n0 >= N) return;
    const size_t wpr = (size_t)K * MLXQ_BITS / 32;
    const size_t gpr = (size_t)(K / MLXQ_GROUP);
    const int nfull = K >> 5;
    const u32* wrow[MLXQ_GQ_ROWS];
    size_t srow[MLXQ_GQ_ROWS];
#pragma unroll
    for (int r = 0; r < MLXQ_GQ_ROWS; r++) {
        const size_t n = (size_t)e * N + mlxq_min(n0 + r, N - 1);
        wrow[r] = (const u32*)w + n * wpr;
        srow[r] = n * gpr;
    }
    for (int t0 = 0; t0 < count; t0 += MLXQ_GQ_TM) {
        const int mt = mlxq_min(MLXQ_GQ_TM, count - t0);
        const char* xr[MLXQ_GQ_TM];
#pragma unroll
        for (int t = 0; t < MLXQ_GQ_TM; t++) {
            const int pair = pairs[t0 + mlxq_min(t, mt - 1)];
            xr[t] = (const char*)x + (size_t)(pair / topk) * K * MLXQ_ACT_BYTES;
        }
        float acc[MLXQ_GQ_ROWS][MLXQ_GQ_TM];
#pragma unroll
        for (int r = 0; r < MLXQ_GQ_ROWS; r++)
#pragma unroll
            for (int t = 0; t < MLXQ_GQ_TM; t++) acc[r][t] = 0.0f;
        for (int c = lane; c < nfull; c += 32) {
            u32 cur[MLXQ_GQ_ROWS][MLXQ_BITS];
            float cs[MLXQ_GQ_ROWS][MLXQ_SPC], cb[MLXQ_GQ_ROWS];
#pragma unroll
            for (int r = 0; r < MLXQ_GQ_ROWS; r++) {
                mlxq_load_words<MLXQ_BITS, MLXQ_GQ_WIDE>(wrow[r] + (size_t)c * MLXQ_BITS, cur[r]);
                const size_t g = srow[r] + (size_t)c * 32 / MLXQ_GROUP;
#pragma unroll
                for (int h = 0; h < MLXQ_SPC; h++) cs[r][h] = mlxq_scale(scales, g + h);
                cb[r] = mlxq_load_qbias(biases, g);
            }
#pragma unroll
            for (int t = 0; t < MLXQ_GQ_TM; t++) {
                if (t < mt) {
                    float xv[32];
                    mlxq_load_act32(xr[t] + (size_t)c * 32 * MLXQ_ACT_BYTES, xv);
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
                    for (int r = 0; r < MLXQ_GQ_ROWS; r++) {
                        float d0, d1;
                        mlxq_gq_dot(cur[r], xv, d0, d1);
#if MLXQ_SPC == 2
                        acc[r][t] = mlxq_fma(cs[r][1], d1, mlxq_fma(cs[r][0], d0, acc[r][t]));
#elif MLXQ_AFFINE
                        acc[r][t] = mlxq_fma(cb[r], xs, mlxq_fma(cs[r][0], d0 + d1, acc[r][t]));
#else
                        acc[r][t] = mlxq_fma(cs[r][0], d0 + d1, acc[r][t]);
#endif
                    }
                }
            }
        }
#if MLXQ_GROUP == 16
        // nvfp4 rows with K % 32 == 16 end in a half chunk of 16 codes.
        if ((K & 31) && lane == (nfull & 31)) {
            const int c = nfull;
#pragma unroll
            for (int t = 0; t < MLXQ_GQ_TM; t++) {
                if (t < mt) {
                    float xv[32];
                    mlxq_load_act16(xr[t] + (size_t)c * 32 * MLXQ_ACT_BYTES, xv);
#pragma unroll
                    for (int r = 0; r < MLXQ_GQ_ROWS; r++) {
                        acc[r][t] = mlxq_half_chunk(wrow[r], scales, srow[r], c, xv, acc[r][t]);
                    }
                }
            }
        }
#endif
#pragma unroll
        for (int r = 0; r < MLXQ_GQ_ROWS; r++) {
#pragma unroll
            for (int t = 0; t < MLXQ_GQ_TM; t++) {
                float v = mlxq_warp_sum(acc[r][t]);
                const int n = n0 + r;
                if (lane == r * MLXQ_GQ_TM + t && t < mt && n < N) {
                    if (bias) v += bias[(size_t)e * N + n];
                    mlxq_store_act(y, (size_t)pairs[t0 + t] * N + n, v);
                }
            }
        }
    }
}

#endif // MLXQ_COMMON_GATHER

#endif // MLXQ_COMMON_CUH
