// Prelude for compiling the kernels in this folder to PTX with clang
// (no CUDA toolkit, no device library):
//   clang -x cuda --cuda-device-only --cuda-gpu-arch=sm_80 -nocudainc -nocudalib \
//     -Xclang -target-feature -Xclang +ptx80 -O3 -include clang_prelude.h \
//     -I shaders/cuda -D<preamble macros> -S -o out.ptx shaders/cuda/qmv.cu
// The kernels use only what is defined here and clang's own builtins, so
// the PTX has no external functions.
#ifndef MLXQ_CLANG_PRELUDE_H
#define MLXQ_CLANG_PRELUDE_H

#define __device__ __attribute__((device))
#define __global__ __attribute__((global))
#define __shared__ __attribute__((shared))
#define __constant__ __attribute__((constant))
#define __host__ __attribute__((host))
#define __forceinline__ __inline__ __attribute__((always_inline))
#define __launch_bounds__(...) __attribute__((launch_bounds(__VA_ARGS__)))
typedef __SIZE_TYPE__ size_t;
#include <__clang_cuda_builtin_vars.h>

__device__ inline float __shfl_xor_sync(unsigned m, float v, int l) { return __nvvm_shfl_sync_bfly_f32(m, v, l, 0x1f); }
__device__ inline int __shfl_xor_sync(unsigned m, int v, int l) { return __nvvm_shfl_sync_bfly_i32(m, v, l, 0x1f); }
__device__ inline float __shfl_sync(unsigned m, float v, int l) { return __nvvm_shfl_sync_idx_f32(m, v, l, 0x1f); }
__device__ inline int __shfl_sync(unsigned m, int v, int l) { return __nvvm_shfl_sync_idx_i32(m, v, l, 0x1f); }

#endif
