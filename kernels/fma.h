// fma(a, b, c) = a * b + c with broadcasting, as StyleGAN2-ADA's torch_utils/misc/fma: one fused op on the
// non-fused modulated-convolution path; gradients are summed back to each input's shape. Any derivative order.
#pragma once

#include <ATen/core/Tensor.h>

namespace facetex::kernels {

at::Tensor fma(const at::Tensor& a, const at::Tensor& b, const at::Tensor& c);

}  // namespace facetex::kernels
