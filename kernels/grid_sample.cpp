// grid_sample: argument checks, the reference implementation from differentiable ATen ops (floor, gather and
// bilinear weights, so autograd differentiates its backward again, to any order and with respect to the grid too),
// and the choice of the fused ATen sampler in an autograd Function for CUDA tensors (grid_sample_gradfix.h).
#include "kernels/grid_sample.h"

#include <ATen/ATen.h>

#include "core/error.h"
#include "kernels/grid_sample_gradfix.h"
#include "kernels/impl_choice.h"
#include "kernels/shape_text.h"

namespace facetex::kernels {
namespace {

// The value of input[n, c, y, x] for every output position, zero where (x, y) lies outside the image, times the
// bilinear weight of that corner. `xs` and `ys` hold integral pixel coordinates [N, Ho, Wo] in input's dtype.
at::Tensor weighted_corner(const at::Tensor& flat_input, int64_t height, int64_t width, const at::Tensor& xs,
                           const at::Tensor& ys, const at::Tensor& weight) {
  const int64_t batch = flat_input.size(0), channels = flat_input.size(1);
  const at::Tensor inside = xs.ge(0).logical_and(xs.le(width - 1)).logical_and(ys.ge(0)).logical_and(ys.le(height - 1));
  // Integer indices carry no gradient; the clamp only keeps the (masked) outside corners addressable.
  const at::Tensor xi = xs.detach().clamp(0, width - 1).to(at::kLong);
  const at::Tensor yi = ys.detach().clamp(0, height - 1).to(at::kLong);
  const at::Tensor index = (yi * width + xi).reshape({batch, 1, -1}).expand({batch, channels, xs.size(1) * xs.size(2)});
  const at::Tensor values = flat_input.gather(2, index).reshape({batch, channels, xs.size(1), xs.size(2)});
  return values * (weight * inside.to(weight.scalar_type())).unsqueeze(1);
}

at::Tensor grid_sample_reference(const at::Tensor& input, const at::Tensor& grid) {
  const int64_t height = input.size(2), width = input.size(3);
  // align_corners=False: -1 and 1 are the outer edges of the border pixels, so pixel i has centre -1 + (2i+1)/size.
  const at::Tensor ix = ((grid.select(3, 0) + 1) * width - 1) / 2;
  const at::Tensor iy = ((grid.select(3, 1) + 1) * height - 1) / 2;
  const at::Tensor x0 = ix.floor(), y0 = iy.floor();
  const at::Tensor x1 = x0 + 1, y1 = y0 + 1;
  // Weights are differentiable in the grid (floor has zero derivative), exactly the sampler's grid gradient.
  const at::Tensor wx1 = ix - x0, wy1 = iy - y0;
  const at::Tensor wx0 = 1 - wx1, wy0 = 1 - wy1;
  const at::Tensor flat = input.reshape({input.size(0), input.size(1), height * width});
  return weighted_corner(flat, height, width, x0, y0, wx0 * wy0) +
         weighted_corner(flat, height, width, x1, y0, wx1 * wy0) +
         weighted_corner(flat, height, width, x0, y1, wx0 * wy1) +
         weighted_corner(flat, height, width, x1, y1, wx1 * wy1);
}

}  // namespace

at::Tensor grid_sample(const at::Tensor& input, const at::Tensor& grid, Impl impl) {
  using detail::shape_text;
  FACETEX_CHECK_RUNTIME(input.defined() && input.dim() == 4, "grid_sample: input must be [N, C, H, W], got {}",
                        shape_text(input));
  FACETEX_CHECK_RUNTIME(grid.defined() && grid.dim() == 4 && grid.size(3) == 2,
                        "grid_sample: grid must be [N, Ho, Wo, 2], got {}", shape_text(grid));
  FACETEX_CHECK_RUNTIME(grid.size(0) == input.size(0), "grid_sample: input {} and grid {} differ in batch size",
                        shape_text(input), shape_text(grid));
  FACETEX_CHECK_RUNTIME(input.is_floating_point() && grid.scalar_type() == input.scalar_type() &&
                            grid.device() == input.device(),
                        "grid_sample: input ({} on {}) and grid ({} on {}) must share one floating dtype and device",
                        c10::toString(input.scalar_type()), input.device().str(), c10::toString(grid.scalar_type()),
                        grid.device().str());
  if (detail::use_cuda_kernel(impl, input, "grid_sample")) return detail::grid_sample_gradfix(input, grid);
  return grid_sample_reference(input, grid);
}

}  // namespace facetex::kernels
