// Internal to kernels/: grid_sample as ATen's fused grid_sampler_2d (bilinear, zeros, align_corners=False) inside
// an autograd Function pair whose backward is itself differentiable with respect to grad_output — StyleGAN2-ADA's
// grid_sample_gradfix. ATen's own grid_sampler_2d_backward has no derivative, so R1 through the augmentation
// (a gradient of a gradient with respect to the images) needs this wrapper.
//
// The second-order derivative with respect to the grid is not provided: asking for it throws a RuntimeError.
// As in the reference, the backward's own derivative ignores the incoming gradient of grad_grid (only a consumer of
// grad_grid, which training never has, would need it). Runs on any device; the public grid_sample() uses it for
// CUDA tensors, and the tests exercise it on the CPU.
#pragma once

#include <ATen/core/Tensor.h>

namespace facetex::kernels::detail {

at::Tensor grid_sample_gradfix(const at::Tensor& input, const at::Tensor& grid);

}  // namespace facetex::kernels::detail
