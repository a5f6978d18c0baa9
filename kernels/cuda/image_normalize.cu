#include "kernels/cuda/launchers.h"

namespace facetex::kernels::cuda {
namespace {

// Four bytes per thread: one 32-bit load, four float stores.
__global__ void normalize_u8_to_f32_kernel(const uint8_t* __restrict__ in, float* __restrict__ out, int64_t n) {
  const int64_t base = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 4;
  if (base + 4 <= n && (reinterpret_cast<uintptr_t>(in + base) & 3) == 0) {
    const uint32_t packed = *reinterpret_cast<const uint32_t*>(in + base);
#pragma unroll
    for (int k = 0; k < 4; ++k) out[base + k] = static_cast<float>((packed >> (8 * k)) & 0xFF) / 127.5f - 1.0f;
  } else {
    for (int64_t i = base; i < n && i < base + 4; ++i) out[i] = static_cast<float>(in[i]) / 127.5f - 1.0f;
  }
}

}  // namespace

cudaError_t normalize_u8_to_f32(const uint8_t* in, float* out, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const int64_t blocks = (n + 4 * kThreads - 1) / (4 * kThreads);
  normalize_u8_to_f32_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(in, out, n);
  return cudaGetLastError();
}

}  // namespace facetex::kernels::cuda
