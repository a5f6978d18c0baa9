// Internal to kernels/, CUDA-LibTorch builds only: what every torch adapter of a raw CUDA launcher needs — the
// launcher's dtype for a tensor, the current stream, and launch errors turned into exceptions.
#pragma once

#ifdef FACETEX_HAVE_TORCH_CUDA

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>

#include "core/error.h"
#include "kernels/cuda/launchers.h"

namespace facetex::kernels::detail {

inline cuda::DType launcher_dtype(const at::Tensor& t, const char* op) {
  switch (t.scalar_type()) {
    case at::kFloat: return cuda::DType::kFloat32;
    case at::kHalf: return cuda::DType::kFloat16;
    case at::kDouble: return cuda::DType::kFloat64;
    default: break;
  }
  throw RuntimeError(fmt::format("{}: the CUDA kernel takes float32, float16 or float64, got {}", op,
                                 c10::toString(t.scalar_type())));
}

// The stream ATen is using on t's device (launchers must run there so they order with the surrounding ops).
inline cudaStream_t current_stream(const at::Tensor& t) {
  return at::cuda::getCurrentCUDAStream(t.device().index()).stream();
}

inline void check_launch(cudaError_t status, const char* op) {
  FACETEX_CHECK_RUNTIME(status == cudaSuccess, "{}: CUDA kernel launch failed: {}", op, cudaGetErrorString(status));
}

}  // namespace facetex::kernels::detail

#endif  // FACETEX_HAVE_TORCH_CUDA
