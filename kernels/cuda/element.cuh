// Shared device helpers of the kernels in this folder: the compute type of each storage type (float16 is
// computed in float32), loads and stores that convert, and integer division that rounds toward minus infinity.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

namespace facetex::kernels::cuda::element {

template <typename T>
struct ComputeType {
  using type = T;
};
template <>
struct ComputeType<__half> {
  using type = float;
};
template <typename T>
using compute_t = typename ComputeType<T>::type;

template <typename T>
__device__ __forceinline__ compute_t<T> load(const T* p, int64_t i) {
  return p[i];
}
template <>
__device__ __forceinline__ float load<__half>(const __half* p, int64_t i) {
  return __half2float(p[i]);
}

template <typename T>
__device__ __forceinline__ void store(T* p, int64_t i, compute_t<T> v) {
  p[i] = v;
}
template <>
__device__ __forceinline__ void store<__half>(__half* p, int64_t i, float v) {
  p[i] = __float2half_rn(v);
}

// floor(a / b) and ceil(a / b) for b > 0 and a of either sign (C++ division truncates toward zero).
__host__ __device__ __forceinline__ int floor_div(int a, int b) { return (a >= 0 ? a : a - b + 1) / b; }
__host__ __device__ __forceinline__ int ceil_div(int a, int b) { return -floor_div(-a, b); }

}  // namespace facetex::kernels::cuda::element
