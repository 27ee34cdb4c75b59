// Compiles Metal kernels (after Translate) as CUDA: address spaces and
// attributes dropped (constant is const), threadgroup memory as dynamic
// shared memory, threadgroup_barrier as __syncthreads, SIMD groups as warps
// (simd_sum and simd_shuffle_xor as shuffles), SIMD-group matrices held as
// Metal holds them, two elements per lane (lane l: row l / 4, columns
// 2 (l % 4) and 2 (l % 4) + 1), multiplied with shuffles, and half and
// bfloat as 16-bit storage converted with cvt. Thread indices come from
// blockIdx and threadIdx in Metal's flattening (x fastest), so SIMD group
// g of a threadgroup is warp g of the block.
//
// With clang (no CUDA toolkit) pass -I shaders/cuda so that clang_prelude.h
// is found:
//   clang-19 -x cuda --cuda-device-only --cuda-gpu-arch=sm_90 -nocudainc
//     -nocudalib -Xclang -target-feature -Xclang +ptx80 -I shaders/cuda
//     -include metal/internal/msltest/cuda_prelude.h -S UNIT.cu
// Every function of the unit becomes a device function (clang's
// force_cuda_host_device pragma; NVRTC with -default-device does the same).
#ifndef MLXQ_CUDA_PRELUDE_H
#define MLXQ_CUDA_PRELUDE_H

#if defined(__clang__) && !defined(__CUDACC_RTC__)
#include "clang_prelude.h"
#endif

struct uint3 {
    unsigned int x, y, z;
};

#define MLXQ_MSL_CHECK 1
#define MLXQ_ENTRY extern "C" __global__
#define MLXQ_THREADGROUP_MEMORY

typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;

#define MLXQ_MATMUL_BUFFERS(WT)                                                                  \
    const act_t *x, const WT *w, const scale_t *scales, const scale_t *biases, const float *bias, \
        act_t *y, int mlxq_M, int mlxq_N, int mlxq_K

__device__ __forceinline__ unsigned mlxq_flat() {
    return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}
__device__ __forceinline__ uint3 mlxq_id_threadgroup_position_in_grid() { return uint3{blockIdx.x, blockIdx.y, blockIdx.z}; }
__device__ __forceinline__ uint3 mlxq_id_thread_position_in_threadgroup() { return uint3{threadIdx.x, threadIdx.y, threadIdx.z}; }
__device__ __forceinline__ uint3 mlxq_id_thread_position_in_grid() {
    return uint3{blockIdx.x * blockDim.x + threadIdx.x, blockIdx.y * blockDim.y + threadIdx.y, blockIdx.z * blockDim.z + threadIdx.z};
}
__device__ __forceinline__ unsigned mlxq_id_thread_index_in_threadgroup() { return mlxq_flat(); }
__device__ __forceinline__ unsigned mlxq_id_simdgroup_index_in_threadgroup() { return mlxq_flat() >> 5; }
__device__ __forceinline__ unsigned mlxq_id_thread_index_in_simdgroup() { return mlxq_flat() & 31u; }
__device__ __forceinline__ void* mlxq_threadgroup_memory() {
    extern __shared__ float mlxq_dynamic_shared[];
    return mlxq_dynamic_shared;
}

namespace metal {

struct half {
    unsigned short bits;
    half() = default;
    __device__ explicit half(float f) { asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(f)); }
    __device__ operator float() const {
        float f;
        asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(bits));
        return f;
    }
};
struct bfloat {
    unsigned short bits;
    bfloat() = default;
    __device__ explicit bfloat(float f) { asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(bits) : "f"(f)); }
    __device__ operator float() const { return __builtin_bit_cast(float, (unsigned)bits << 16); }
};

template <typename T>
struct vec2 {
    T x, y;
    vec2() = default;
    __device__ vec2(T a, T b) : x(a), y(b) {}
};
typedef vec2<ulong> ulong2;
typedef vec2<float> float2;

template <typename T, typename U>
__device__ __forceinline__ T as_type(U u) {
    static_assert(sizeof(T) == sizeof(U), "as_type: sizes differ");
    return __builtin_bit_cast(T, u);
}

__device__ __forceinline__ float fma(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
__device__ __forceinline__ int min(int a, int b) { return a < b ? a : b; }
__device__ __forceinline__ uint min(uint a, uint b) { return a < b ? a : b; }
__device__ __forceinline__ float min(float a, float b) { return __builtin_fminf(a, b); }
__device__ __forceinline__ int max(int a, int b) { return a > b ? a : b; }
__device__ __forceinline__ uint max(uint a, uint b) { return a > b ? a : b; }
__device__ __forceinline__ float max(float a, float b) { return __builtin_fmaxf(a, b); }

__device__ __forceinline__ float simd_shuffle_xor(float v, ushort mask) { return __shfl_xor_sync(0xffffffffu, v, mask); }
__device__ __forceinline__ float simd_shuffle(float v, ushort lane) { return __shfl_sync(0xffffffffu, v, lane); }
__device__ __forceinline__ float simd_sum(float v) {
    for (int d = 16; d >= 1; d >>= 1) v += __shfl_xor_sync(0xffffffffu, v, d);
    return v;
}

enum class mem_flags { mem_none = 0, mem_device = 1, mem_threadgroup = 2, mem_texture = 4 };
__device__ __forceinline__ void threadgroup_barrier(mem_flags) { __nvvm_barrier_sync(0); }

template <typename T, int Cols, int Rows>
struct simdgroup_matrix {
    static_assert(Cols == 8 && Rows == 8, "8 x 8 only");
    T e[2];
};
typedef simdgroup_matrix<float, 8, 8> simdgroup_float8x8;

template <typename T, int Cols, int Rows>
__device__ __forceinline__ simdgroup_matrix<T, Cols, Rows> make_filled_simdgroup_matrix(T value) {
    simdgroup_matrix<T, Cols, Rows> m;
    m.e[0] = m.e[1] = value;
    return m;
}

template <typename T, int Cols, int Rows>
__device__ __forceinline__ void simdgroup_load(simdgroup_matrix<T, Cols, Rows>& d, const T* src, ulong epr = Cols,
                                               ulong2 origin = ulong2(0, 0), bool transpose = false) {
    const unsigned l = mlxq_flat() & 31u, r = l >> 2;
    for (unsigned i = 0; i < 2; i++) {
        const unsigned c = 2 * (l & 3u) + i;
        d.e[i] = transpose ? src[(origin.y + c) * epr + origin.x + r] : src[(origin.y + r) * epr + origin.x + c];
    }
}

template <typename T, int Cols, int Rows>
__device__ __forceinline__ void simdgroup_store(simdgroup_matrix<T, Cols, Rows> a, T* dst, ulong epr = Cols,
                                                ulong2 origin = ulong2(0, 0), bool transpose = false) {
    const unsigned l = mlxq_flat() & 31u, r = l >> 2;
    for (unsigned i = 0; i < 2; i++) {
        const unsigned c = 2 * (l & 3u) + i;
        if (transpose) dst[(origin.y + c) * epr + origin.x + r] = a.e[i];
        else dst[(origin.y + r) * epr + origin.x + c] = a.e[i];
    }
}

// d = a * b + c in float: row r of a and columns of b gathered by shuffles.
template <typename T, typename U, typename V, int M, int N, int K>
__device__ __forceinline__ void simdgroup_multiply_accumulate(simdgroup_matrix<T, N, M>& d, simdgroup_matrix<U, K, M> a,
                                                              simdgroup_matrix<V, N, K> b, simdgroup_matrix<T, N, M> c) {
    const unsigned l = mlxq_flat() & 31u, r = l >> 2, q = l & 3u;
    float acc0 = float(c.e[0]), acc1 = float(c.e[1]);
#pragma unroll
    for (int k = 0; k < 8; k++) {
        const float ark = __shfl_sync(0xffffffffu, float(a.e[k & 1]), 4 * r + (k >> 1));
        const float b0 = __shfl_sync(0xffffffffu, float(b.e[0]), 4 * k + q);
        const float b1 = __shfl_sync(0xffffffffu, float(b.e[1]), 4 * k + q);
        acc0 = __builtin_fmaf(ark, b0, acc0);
        acc1 = __builtin_fmaf(ark, b1, acc1);
    }
    d.e[0] = T(acc0);
    d.e[1] = T(acc1);
}

} // namespace metal

// Metal's address-space words, last: __device__ is
// __attribute__((device)), which an empty device macro would break.
#define device
#define threadgroup
#define constant const
#define thread

// The unit's own functions are device functions.
#if defined(__clang__) && !defined(__CUDACC_RTC__)
#pragma clang force_cuda_host_device begin
#endif

#endif // MLXQ_CUDA_PRELUDE_H
