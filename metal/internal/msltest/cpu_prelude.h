// Runs Metal kernels (after Translate) as C++ on the CPU, one OS thread per
// Metal thread: threadgroup_barrier is a std::barrier of the threadgroup's
// threads; SIMD-group functions and SIMD-group matrices exchange values
// through per-SIMD-group slots between two waits on a barrier of the
// group's 32 threads. A SIMD-group matrix is held as Metal holds it, two
// elements per thread (thread l holds row l / 4, columns 2 (l % 4) and
// 2 (l % 4) + 1). Threadgroup memory starts as NaNs, so a read of an
// unwritten element shows. For tests (cpu_harness.h); g++ -std=c++20.
#ifndef MLXQ_CPU_PRELUDE_H
#define MLXQ_CPU_PRELUDE_H

// Every standard header the harness uses comes first: the address-space
// macros below would break them.
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <tuple>
#include <vector>

#define MLXQ_MSL_CHECK 1
#define MLXQ_ENTRY
#define MLXQ_THREADGROUP_MEMORY
#define device
#define threadgroup
#define constant const
#define thread

typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;

template <typename T>
struct mlxq_vec3 {
    T x, y, z;
};
typedef mlxq_vec3<uint> uint3;

// The running thread's place, set by the harness.
struct mlxq_group_ctx {
    std::barrier<>* tg;
    std::barrier<>** sg;
    float** slots; // per SIMD group: 2 x 64 floats
    void* memory;
};
struct mlxq_thread_ctx {
    mlxq_group_ctx* g;
    uint3 tgid, tpos, tgsize;
    uint flat;
};
inline thread_local mlxq_thread_ctx mlxq_t;

inline uint3 mlxq_id_threadgroup_position_in_grid() { return mlxq_t.tgid; }
inline uint3 mlxq_id_thread_position_in_threadgroup() { return mlxq_t.tpos; }
inline uint3 mlxq_id_thread_position_in_grid() {
    return uint3{mlxq_t.tgid.x * mlxq_t.tgsize.x + mlxq_t.tpos.x, mlxq_t.tgid.y * mlxq_t.tgsize.y + mlxq_t.tpos.y,
                 mlxq_t.tgid.z * mlxq_t.tgsize.z + mlxq_t.tpos.z};
}
inline uint mlxq_id_thread_index_in_threadgroup() { return mlxq_t.flat; }
inline uint mlxq_id_simdgroup_index_in_threadgroup() { return mlxq_t.flat / 32; }
inline uint mlxq_id_thread_index_in_simdgroup() { return mlxq_t.flat % 32; }
inline void* mlxq_threadgroup_memory() { return mlxq_t.g->memory; }

inline void mlxq_sg_wait() { mlxq_t.g->sg[mlxq_t.flat / 32]->arrive_and_wait(); }
inline float* mlxq_sg_slots() { return mlxq_t.g->slots[mlxq_t.flat / 32]; }

#define MLXQ_MATMUL_BUFFERS(WT)                                                                  \
    const act_t *x, const WT *w, const scale_t *scales, const scale_t *biases, const float *bias, \
        act_t *y, int mlxq_M, int mlxq_N, int mlxq_K

namespace metal {

struct half {
    _Float16 v;
    half() = default;
    explicit half(float f) : v((_Float16)f) {}
    operator float() const { return (float)v; }
};
struct bfloat {
    ushort bits;
    bfloat() = default;
    explicit bfloat(float f) {
        uint u;
        std::memcpy(&u, &f, 4);
        if ((u & 0x7FFFFFFFu) > 0x7F800000u) {
            bits = ushort((u >> 16) | 0x40u);
        } else {
            bits = ushort((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
        }
    }
    operator float() const {
        uint u = uint(bits) << 16;
        float f;
        std::memcpy(&f, &u, 4);
        return f;
    }
};

template <typename T>
struct vec2 {
    T x, y;
    vec2() = default;
    vec2(T a, T b) : x(a), y(b) {}
};
typedef vec2<ulong> ulong2;
typedef vec2<float> float2;

template <typename T, typename U>
inline T as_type(U u) {
    static_assert(sizeof(T) == sizeof(U), "as_type: sizes differ");
    T t;
    std::memcpy(&t, &u, sizeof(T));
    return t;
}

inline float fma(float a, float b, float c) { return std::fmaf(a, b, c); }
inline int min(int a, int b) { return a < b ? a : b; }
inline uint min(uint a, uint b) { return a < b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline int max(int a, int b) { return a > b ? a : b; }
inline uint max(uint a, uint b) { return a > b ? a : b; }
inline float max(float a, float b) { return std::fmax(a, b); }

inline float simd_sum(float v) {
    float* s = mlxq_sg_slots();
    const uint lane = mlxq_t.flat % 32;
    s[lane] = v;
    mlxq_sg_wait();
    // The butterfly order of a shuffle reduction.
    float r[32];
    for (int i = 0; i < 32; i++) r[i] = s[i];
    for (int d = 16; d >= 1; d /= 2)
        for (int i = 0; i < d; i++) r[i] = r[i] + r[i + d];
    mlxq_sg_wait();
    return r[0];
}
inline float simd_shuffle_xor(float v, ushort mask) {
    float* s = mlxq_sg_slots();
    const uint lane = mlxq_t.flat % 32;
    s[lane] = v;
    mlxq_sg_wait();
    const float r = s[(lane ^ mask) & 31u];
    mlxq_sg_wait();
    return r;
}
inline float simd_shuffle(float v, ushort src) {
    float* s = mlxq_sg_slots();
    s[mlxq_t.flat % 32] = v;
    mlxq_sg_wait();
    const float r = s[src & 31u];
    mlxq_sg_wait();
    return r;
}

enum class mem_flags { mem_none = 0, mem_device = 1, mem_threadgroup = 2, mem_texture = 4 };
inline void threadgroup_barrier(mem_flags) { mlxq_t.g->tg->arrive_and_wait(); }
inline void simdgroup_barrier(mem_flags) { mlxq_sg_wait(); }

template <typename T, int Cols, int Rows>
struct simdgroup_matrix {
    static_assert(Cols == 8 && Rows == 8, "8 x 8 only");
    T e[2];
    simdgroup_matrix() = default;
    explicit simdgroup_matrix(T diagonal) {
        const uint l = mlxq_t.flat % 32, r = l / 4, c = 2 * (l % 4);
        e[0] = r == c ? diagonal : T(0.0f);
        e[1] = r == c + 1 ? diagonal : T(0.0f);
    }
};
typedef simdgroup_matrix<float, 8, 8> simdgroup_float8x8;

template <typename T, int Cols, int Rows>
simdgroup_matrix<T, Cols, Rows> make_filled_simdgroup_matrix(T value) {
    simdgroup_matrix<T, Cols, Rows> m;
    m.e[0] = m.e[1] = value;
    return m;
}

// Element (i, j) is src[(origin.y + i) * epr + origin.x + j], or with
// transpose src[(origin.y + j) * epr + origin.x + i].
template <typename T, int Cols, int Rows>
void simdgroup_load(simdgroup_matrix<T, Cols, Rows>& d, const T* src, ulong epr = Cols,
                    ulong2 origin = ulong2(0, 0), bool transpose = false) {
    const uint l = mlxq_t.flat % 32, r = l / 4;
    for (uint i = 0; i < 2; i++) {
        const uint c = 2 * (l % 4) + i;
        d.e[i] = transpose ? src[(origin.y + c) * epr + origin.x + r] : src[(origin.y + r) * epr + origin.x + c];
    }
}

template <typename T, int Cols, int Rows>
void simdgroup_store(simdgroup_matrix<T, Cols, Rows> a, T* dst, ulong epr = Cols,
                     ulong2 origin = ulong2(0, 0), bool transpose = false) {
    const uint l = mlxq_t.flat % 32, r = l / 4;
    for (uint i = 0; i < 2; i++) {
        const uint c = 2 * (l % 4) + i;
        if (transpose) dst[(origin.y + c) * epr + origin.x + r] = a.e[i];
        else dst[(origin.y + r) * epr + origin.x + c] = a.e[i];
    }
}

// d = a * b + c, in float.
template <typename T, typename U, typename V, int M, int N, int K>
void simdgroup_multiply_accumulate(simdgroup_matrix<T, N, M>& d, simdgroup_matrix<U, K, M> a,
                                   simdgroup_matrix<V, N, K> b, simdgroup_matrix<T, N, M> c) {
    float* s = mlxq_sg_slots();
    float* A = s;
    float* B = s + 64;
    const uint l = mlxq_t.flat % 32, r = l / 4;
    for (uint i = 0; i < 2; i++) {
        const uint col = 2 * (l % 4) + i;
        A[r * 8 + col] = float(a.e[i]);
        B[r * 8 + col] = float(b.e[i]);
    }
    mlxq_sg_wait();
    T out[2];
    for (uint i = 0; i < 2; i++) {
        const uint col = 2 * (l % 4) + i;
        float acc = float(c.e[i]);
        for (uint k = 0; k < 8; k++) acc = std::fmaf(A[r * 8 + k], B[k * 8 + col], acc);
        out[i] = T(acc);
    }
    mlxq_sg_wait();
    d.e[0] = out[0];
    d.e[1] = out[1];
}

} // namespace metal

#endif // MLXQ_CPU_PRELUDE_H
