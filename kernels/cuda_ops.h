// Internal to kernels/: the torch-side entry points of the hand-written CUDA kernels, each an autograd Function
// (kernels/*_cuda.cpp). They exist only in builds with a CUDA LibTorch (FACETEX_HAVE_TORCH_CUDA); the public
// functions in upfirdn2d.h / bias_act.h call them after validating arguments and choosing the implementation,
// so these assume valid, CUDA-resident inputs.
#pragma once

#ifdef FACETEX_HAVE_TORCH_CUDA

#include <ATen/core/Tensor.h>

#include "kernels/bias_act.h"
#include "kernels/upfirdn2d.h"

namespace facetex::kernels::detail {

// Differentiable to any order: the backward is again upfirdn2d_cuda (up/down swapped, filter flipped).
at::Tensor upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& f, const Upfirdn2dArgs& args);

// `alpha`, `gain` resolved; clamp < 0 means none. Differentiable twice (the reference's BiasActCuda/Grad pair).
at::Tensor bias_act_cuda(const at::Tensor& x, const at::Tensor& b, Activation act, int dim, double alpha, double gain,
                         double clamp);

}  // namespace facetex::kernels::detail

#endif  // FACETEX_HAVE_TORCH_CUDA
