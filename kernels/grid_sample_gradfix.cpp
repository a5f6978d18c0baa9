#include "kernels/grid_sample_gradfix.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "core/error.h"

namespace facetex::kernels::detail {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// ATen's encoding of the sampler options: bilinear interpolation, zero padding, align_corners=False.
constexpr int64_t kBilinear = 0;
constexpr int64_t kZerosPadding = 0;
constexpr bool kAlignCorners = false;

// The first backward: (grad_output, input, grid) -> (grad_input, grad_grid) through ATen's fused kernel. Its
// derivative with respect to grad_output is grid_sample again (grad_input is linear in grad_output: it is the
// transpose of the sampling, whose transpose is the sampling).
class GridSampleBackward : public torch::autograd::Function<GridSampleBackward> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& grad_output, const at::Tensor& input,
                               const at::Tensor& grid);
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

class GridSampleForward : public torch::autograd::Function<GridSampleForward> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& grid) {
    ctx->save_for_backward({input, grid});
    return at::grid_sampler_2d(input, grid, kBilinear, kZerosPadding, kAlignCorners);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    variable_list input_and_grid_grads = GridSampleBackward::apply(grads[0], saved[0], saved[1]);
    return {input_and_grid_grads[0], input_and_grid_grads[1]};
  }
};

variable_list GridSampleBackward::forward(AutogradContext* ctx, const at::Tensor& grad_output, const at::Tensor& input,
                                          const at::Tensor& grid) {
  ctx->save_for_backward({grid});
  auto [grad_input, grad_grid] = at::grid_sampler_2d_backward(grad_output, input, grid, kBilinear, kZerosPadding,
                                                              kAlignCorners, {true, true});
  return {grad_input, grad_grid};
}

variable_list GridSampleBackward::backward(AutogradContext* ctx, variable_list grads) {
  FACETEX_CHECK_RUNTIME(!ctx->needs_input_grad(2),
                        "grid_sample: the second derivative with respect to the grid is not supported by the fused "
                        "(CUDA) path; use Impl::kReference for it");
  const at::Tensor grid = ctx->get_saved_variables()[0];
  at::Tensor grad2_grad_output;
  if (ctx->needs_input_grad(0)) grad2_grad_output = GridSampleForward::apply(grads[0], grid);
  // No derivative with respect to input: grad_input does not depend on it, and grad_grid's dependence is the
  // unsupported grid-side second order described in the header.
  return {grad2_grad_output, at::Tensor(), at::Tensor()};
}

}  // namespace

at::Tensor grid_sample_gradfix(const at::Tensor& input, const at::Tensor& grid) {
  return GridSampleForward::apply(input, grid);
}

}  // namespace facetex::kernels::detail
