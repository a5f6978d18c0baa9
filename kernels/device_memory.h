// GPU memory in use, for the facetex_gpu_memory_bytes gauge and the tick line. 0 for CPU devices and in builds
// without a CUDA LibTorch (documented in docs/operations.md).
#pragma once

#include <c10/core/Device.h>

#include <cstdint>

namespace facetex::kernels {

int64_t gpu_memory_used_bytes(const c10::Device& device);

}  // namespace facetex::kernels
