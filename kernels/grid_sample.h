// Bilinear grid_sample with zero padding and align_corners=False (the AugmentPipe's geometric warp), whose
// backward is itself differentiable with respect to grad_output — what R1 through the augmentation needs
// (StyleGAN2-ADA's grid_sample_gradfix). The second derivative with respect to the grid is not needed by
// training; the ATen reference supports it anyway, the CUDA path does not (and says so).
#pragma once

#include <ATen/core/Tensor.h>

#include "kernels/dispatch.h"

namespace facetex::kernels {

// input: [N, C, H, W]; grid: [N, Ho, Wo, 2] in normalised coordinates (x, y) in [-1, 1].
at::Tensor grid_sample(const at::Tensor& input, const at::Tensor& grid, Impl impl = Impl::kAuto);

}  // namespace facetex::kernels
