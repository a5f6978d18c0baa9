// Torch-free C++ entry points of the CUDA kernels in this folder. Each takes raw device pointers and a stream
// and returns the launch status; the torch adapters (kernels/*.cpp, built only with a CUDA LibTorch) call them.
// Keeping torch out of .cu files keeps nvcc fast (a torch header costs ~40-90 s per .cu) and lets CI compile-check
// the kernels wherever nvcc exists, even against a CPU-only LibTorch.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace facetex::kernels::cuda {

// out[i] = float(in[i]) / 127.5f - 1.0f  (the reference's x / 127.5 - 1 in float32).
cudaError_t normalize_u8_to_f32(const uint8_t* in, float* out, int64_t n, cudaStream_t stream);

}  // namespace facetex::kernels::cuda
