// Loader batches (uint8 NCHW in [0, 255]) to network inputs (float in [-1, 1]), computed exactly as the
// reference training loop does: x.to(float32) / 127.5 - 1. On a CUDA tensor the batch is uploaded as uint8
// (4x fewer bytes over PCIe than float) and converted by one fused kernel (kernels/cuda/image_normalize.cu).
#pragma once

#include <ATen/core/Tensor.h>

namespace facetex::kernels {

// `images`: uint8, any shape, CPU or CUDA. Returns a float32 tensor on the same device.
at::Tensor normalize_images(const at::Tensor& images);

// Whether this build can run the CUDA kernels (CUDA LibTorch + a visible device).
bool cuda_kernels_available();

}  // namespace facetex::kernels
