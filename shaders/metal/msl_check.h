// A stand-in for <metal_stdlib> that lets a C++17 compiler check the
// syntax and types of the kernels in this folder without a Mac:
//
//   g++ -fsyntax-only -x c++ -std=c++17 -Wno-attributes
//     -Werror=double-promotion -include shaders/metal/msl_check.h UNIT
//
// where UNIT is a compile unit as the metal backend builds it (preamble,
// common.metal, kernel file; go test ./metal -run TestMSLSyntax builds and
// checks every one). Address spaces and the kernel keyword expand to
// nothing and [[...]] attributes are ignored, so what is checked is the C++
// underneath (constant is const): names (a misspelt Metal function is undeclared), overloads,
// conversions and template arguments. Only what the kernels use is
// declared, with Metal's signatures; a kernel that needs more of the Metal
// standard library adds it here. The 16-bit float types convert to float
// implicitly and from float only explicitly, a little stricter than Metal.
// Address-space mismatches (a device pointer passed as threadgroup) are
// not caught here; Metal's compiler catches them.
#ifndef MLXQ_MSL_CHECK_H
#define MLXQ_MSL_CHECK_H

#define MLXQ_MSL_CHECK 1

// threadgroup expands to nothing here, so the [[threadgroup(0)]] attribute
// (a macro in common.metal) is dropped with it.
#define MLXQ_THREADGROUP_MEMORY
#define kernel
#define device
#define threadgroup
// constant memory is read-only: a write through it is an error here too.
#define constant const
#define thread

namespace metal {

typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;
static_assert(sizeof(ulong) == 8, "ulong is 64-bit in Metal");

// 16-bit floats: storage only; arithmetic goes through float.
struct half {
    ushort bits;
    half() = default;
    explicit half(float f);
    operator float() const;
};
struct bfloat {
    ushort bits;
    bfloat() = default;
    explicit bfloat(float f);
    operator float() const;
};

template <typename T>
struct vec2 {
    T x, y;
    vec2() = default;
    explicit vec2(T v) : x(v), y(v) {}
    vec2(T a, T b) : x(a), y(b) {}
};
template <typename T>
struct vec3 {
    T x, y, z;
    vec3() = default;
    explicit vec3(T v) : x(v), y(v), z(v) {}
    vec3(T a, T b, T c) : x(a), y(b), z(c) {}
};
template <typename T>
struct vec4 {
    T x, y, z, w;
    vec4() = default;
    explicit vec4(T v) : x(v), y(v), z(v), w(v) {}
    vec4(T a, T b, T c, T d) : x(a), y(b), z(c), w(d) {}
};
typedef vec2<float> float2;
typedef vec3<float> float3;
typedef vec4<float> float4;
typedef vec2<half> half2;
typedef vec4<half> half4;
typedef vec2<uint> uint2;
typedef vec3<uint> uint3;
typedef vec4<uint> uint4;
typedef vec2<ushort> ushort2;
typedef vec4<uchar> uchar4;
typedef vec2<ulong> ulong2;
typedef vec2<float> packed_float2;
typedef vec4<float> packed_float4;

// Reinterpretation of bits between types of one size.
template <typename T, typename U>
inline T as_type(U u) {
    static_assert(sizeof(T) == sizeof(U), "as_type: source and destination sizes differ");
    T t;
    __builtin_memcpy(&t, &u, sizeof(T));
    return t;
}

float fma(float a, float b, float c);
float abs(float a);
int abs(int a);
float sqrt(float a);
float exp2(float a);
float floor(float a);
float rint(float a);
int min(int a, int b);
uint min(uint a, uint b);
ulong min(ulong a, ulong b);
float min(float a, float b);
int max(int a, int b);
uint max(uint a, uint b);
ulong max(ulong a, ulong b);
float max(float a, float b);
float clamp(float v, float lo, float hi);
int clamp(int v, int lo, int hi);
uint clamp(uint v, uint lo, uint hi);
float select(float a, float b, bool c);
uint select(uint a, uint b, bool c);

// SIMD-group functions.
float simd_sum(float v);
int simd_sum(int v);
uint simd_sum(uint v);
float simd_max(float v);
float simd_shuffle_xor(float v, ushort mask);
int simd_shuffle_xor(int v, ushort mask);
uint simd_shuffle_xor(uint v, ushort mask);
float simd_shuffle(float v, ushort lane);
int simd_shuffle(int v, ushort lane);
uint simd_shuffle(uint v, ushort lane);
float simd_shuffle_down(float v, ushort delta);
uint simd_shuffle_down(uint v, ushort delta);
float simd_broadcast(float v, ushort lane);

// Barriers.
enum class mem_flags { mem_none = 0, mem_device = 1, mem_threadgroup = 2, mem_texture = 4 };
void threadgroup_barrier(mem_flags flags);
void simdgroup_barrier(mem_flags flags);

// SIMD-group matrices.
template <typename T, int Cols, int Rows>
struct simdgroup_matrix {
    simdgroup_matrix() = default;
    // Metal's one-value constructor makes a diagonal matrix.
    explicit simdgroup_matrix(T diagonal);
};
typedef simdgroup_matrix<float, 8, 8> simdgroup_float8x8;
typedef simdgroup_matrix<half, 8, 8> simdgroup_half8x8;
typedef simdgroup_matrix<bfloat, 8, 8> simdgroup_bfloat8x8;

template <typename T, int Cols, int Rows>
simdgroup_matrix<T, Cols, Rows> make_filled_simdgroup_matrix(T value);

template <typename T, int Cols, int Rows>
void simdgroup_load(simdgroup_matrix<T, Cols, Rows>& d, const T* src, ulong elements_per_row = Cols,
                    ulong2 matrix_origin = ulong2(0, 0), bool transpose_matrix = false);

template <typename T, int Cols, int Rows>
void simdgroup_store(simdgroup_matrix<T, Cols, Rows> a, T* dst, ulong elements_per_row = Cols,
                     ulong2 matrix_origin = ulong2(0, 0), bool transpose_matrix = false);

template <typename T, typename U, typename V, int M, int N, int K>
void simdgroup_multiply_accumulate(simdgroup_matrix<T, N, M>& d, simdgroup_matrix<U, K, M> a,
                                   simdgroup_matrix<V, N, K> b, simdgroup_matrix<T, N, M> c);

template <typename T, typename U, typename V, int M, int N, int K>
void simdgroup_multiply(simdgroup_matrix<T, N, M>& d, simdgroup_matrix<U, K, M> a,
                        simdgroup_matrix<V, N, K> b);

} // namespace metal

#endif // MLXQ_MSL_CHECK_H
