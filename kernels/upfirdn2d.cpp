// upfirdn2d: argument checks, the reference implementation from ATen ops (a transcription of StyleGAN2-ADA's
// _upfirdn2d_ref: every step is a differentiable ATen op, so autograd provides derivatives of any order), the
// filter helpers, and the choice between the reference and the CUDA kernel.
#include "kernels/upfirdn2d.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/cuda_ops.h"
#include "kernels/impl_choice.h"
#include "kernels/shape_text.h"
#include "kernels/upfirdn2d_transpose.h"

namespace facetex::kernels {
namespace {

using detail::shape_text;

// Python's a // b (rounds toward minus infinity); the helpers' padding formulas go negative for tiny filters.
int floor_div(int a, int b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0); }

void check_upfirdn2d_args(const at::Tensor& x, const at::Tensor& f, const Upfirdn2dArgs& a) {
  FACETEX_CHECK_RUNTIME(x.defined() && x.dim() == 4, "upfirdn2d: x must be [N, C, H, W], got {}", shape_text(x));
  FACETEX_CHECK_RUNTIME(f.defined() && (f.dim() == 1 || f.dim() == 2) && f.numel() > 0,
                        "upfirdn2d: f must be a 2-D [fh, fw] or 1-D separable [taps] filter, got {}", shape_text(f));
  FACETEX_CHECK_RUNTIME(x.is_floating_point() && f.is_floating_point(),
                        "upfirdn2d: x and f must be floating point, got {} and {}", c10::toString(x.scalar_type()),
                        c10::toString(f.scalar_type()));
  FACETEX_CHECK_RUNTIME(x.device() == f.device(), "upfirdn2d: x is on {} but f is on {}", x.device().str(),
                        f.device().str());
  // As in the reference: filters are fixed (buffers); the CUDA path has no filter gradient at all.
  FACETEX_CHECK_RUNTIME(!f.requires_grad(), "upfirdn2d: gradients with respect to the filter are not supported");
  FACETEX_CHECK_RUNTIME(a.up_x >= 1 && a.up_y >= 1 && a.down_x >= 1 && a.down_y >= 1,
                        "upfirdn2d: up and down factors must be >= 1, got up ({}, {}) down ({}, {})", a.up_x, a.up_y,
                        a.down_x, a.down_y);
  const auto [fw, fh] = filter_size(f);
  const int64_t span_x = x.size(3) * a.up_x + a.padding[0] + a.padding[1];
  const int64_t span_y = x.size(2) * a.up_y + a.padding[2] + a.padding[3];
  FACETEX_CHECK_RUNTIME(span_x >= fw && span_y >= fh,
                        "upfirdn2d: empty output: input {} upsampled by ({}, {}) and padded by [{}, {}, {}, {}] is "
                        "{}x{} (HxW), smaller than the {}x{} filter",
                        shape_text(x), a.up_x, a.up_y, a.padding[0], a.padding[1], a.padding[2], a.padding[3], span_y,
                        span_x, fh, fw);
}

// One filter per channel (groups = channels), stride 1, no padding: "valid" correlation.
at::Tensor depthwise_correlate(const at::Tensor& x, const at::Tensor& weight) {
  const std::vector<int64_t> ones = {1, 1}, zeros = {0, 0};
  return at::conv2d(x, weight, at::Tensor(), ones, zeros, ones, x.size(1));
}

at::Tensor upfirdn2d_reference(const at::Tensor& input, const at::Tensor& f, const Upfirdn2dArgs& a) {
  const int64_t batch = input.size(0), channels = input.size(1), height = input.size(2), width = input.size(3);
  const auto [px0, px1, py0, py1] = a.padding;
  at::Tensor x = input;

  // 1. Zero insertion: view every pixel as a 1x1 block and pad each block to up_y x up_x.
  if (a.up_x > 1 || a.up_y > 1) {
    x = x.reshape({batch, channels, height, 1, width, 1});
    x = at::constant_pad_nd(x, {0, a.up_x - 1, 0, 0, 0, a.up_y - 1});
    x = x.reshape({batch, channels, height * a.up_y, width * a.up_x});
  }

  // 2. Pad the positive sides, then crop the negative ones.
  x = at::constant_pad_nd(x, {std::max(px0, 0), std::max(px1, 0), std::max(py0, 0), std::max(py1, 0)});
  x = x.slice(2, std::max(-py0, 0), x.size(2) - std::max(-py1, 0));
  x = x.slice(3, std::max(-px0, 0), x.size(3) - std::max(-px1, 0));

  // 3. Filter. conv2d correlates, so a true convolution flips the filter. The gain is applied in x's dtype
  // (a float64 run keeps full precision); gain^(ndim/2) per filter gives `gain` overall for the separable pair.
  at::Tensor g = f.to(x.scalar_type()).mul(std::pow(a.gain, f.dim() / 2.0));
  if (!a.flip_filter) g = f.dim() == 2 ? g.flip({0, 1}) : g.flip({0});
  if (f.dim() == 2) {
    const at::Tensor weight = g.reshape({1, 1, g.size(0), g.size(1)}).repeat({channels, 1, 1, 1});
    x = depthwise_correlate(x, weight);
  } else {
    const int64_t taps = g.size(0);
    const at::Tensor along_x = g.reshape({1, 1, 1, taps}).repeat({channels, 1, 1, 1});
    const at::Tensor along_y = g.reshape({1, 1, taps, 1}).repeat({channels, 1, 1, 1});
    x = depthwise_correlate(x, along_x);
    x = depthwise_correlate(x, along_y);
  }

  // 4. Keep every down-th row and column, starting at 0.
  if (a.down_y > 1) x = x.slice(2, 0, x.size(2), a.down_y);
  if (a.down_x > 1) x = x.slice(3, 0, x.size(3), a.down_x);
  return x;
}

}  // namespace

namespace detail {

Upfirdn2dArgs upfirdn2d_transpose_args(const Upfirdn2dArgs& a, std::array<int, 2> filter_wh,
                                       std::array<int64_t, 2> in_hw, std::array<int64_t, 2> out_hw) {
  const auto [fw, fh] = filter_wh;
  Upfirdn2dArgs t;
  t.up_x = a.down_x;
  t.up_y = a.down_y;
  t.down_x = a.up_x;
  t.down_y = a.up_y;
  // The first padding puts the transpose's first tap where the forward's last one was; the second one makes the
  // transpose's output exactly the forward's input size.
  t.padding = {fw - a.padding[0] - 1,
               static_cast<int>(in_hw[1] * a.up_x - out_hw[1] * a.down_x + a.padding[0] - a.up_x + 1),
               fh - a.padding[2] - 1,
               static_cast<int>(in_hw[0] * a.up_y - out_hw[0] * a.down_y + a.padding[2] - a.up_y + 1)};
  t.flip_filter = !a.flip_filter;
  t.gain = a.gain;
  return t;
}

}  // namespace detail

std::array<int, 2> filter_size(const at::Tensor& f) {
  FACETEX_CHECK_RUNTIME(f.defined() && (f.dim() == 1 || f.dim() == 2),
                        "filter_size: f must be [fh, fw] or [taps], got {}", shape_text(f));
  return {static_cast<int>(f.size(-1)), static_cast<int>(f.size(0))};
}

at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& f, const Upfirdn2dArgs& args, Impl impl) {
  check_upfirdn2d_args(x, f, args);
  if (detail::use_cuda_kernel(impl, x, "upfirdn2d")) {
#ifdef FACETEX_HAVE_TORCH_CUDA
    return detail::upfirdn2d_cuda(x, f, args);
#endif
  }
  return upfirdn2d_reference(x, f, args);
}

at::Tensor setup_filter(const std::vector<double>& taps, bool normalize, bool flip_filter, double gain,
                        int separable) {
  FACETEX_CHECK_RUNTIME(!taps.empty(), "setup_filter: the filter needs at least one tap");
  FACETEX_CHECK_RUNTIME(separable >= -1 && separable <= 1, "setup_filter: separable must be -1 (auto), 0 or 1, got {}",
                        separable);
  // Built in float32 like the reference (torch.as_tensor(f, dtype=float32)), so normalisation rounds the same way.
  at::Tensor f = at::tensor(std::vector<float>(taps.begin(), taps.end()), at::kFloat);
  const bool is_separable = separable == -1 ? f.numel() >= 8 : separable == 1;
  if (!is_separable) f = at::outer(f, f);
  if (normalize) f = f / f.sum();
  if (flip_filter) f = f.dim() == 2 ? f.flip({0, 1}) : f.flip({0});
  return f * std::pow(gain, f.dim() / 2.0);
}

at::Tensor upsample2d(const at::Tensor& x, const at::Tensor& f, int up, int padding, bool flip_filter, double gain,
                      Impl impl) {
  const auto [fw, fh] = filter_size(f);
  Upfirdn2dArgs a;
  a.up_x = a.up_y = up;
  a.padding = {padding + floor_div(fw + up - 1, 2), padding + floor_div(fw - up, 2), padding + floor_div(fh + up - 1, 2),
               padding + floor_div(fh - up, 2)};
  a.flip_filter = flip_filter;
  a.gain = gain * up * up;
  return upfirdn2d(x, f, a, impl);
}

at::Tensor downsample2d(const at::Tensor& x, const at::Tensor& f, int down, int padding, bool flip_filter, double gain,
                        Impl impl) {
  const auto [fw, fh] = filter_size(f);
  Upfirdn2dArgs a;
  a.down_x = a.down_y = down;
  a.padding = {padding + floor_div(fw - down + 1, 2), padding + floor_div(fw - down, 2),
               padding + floor_div(fh - down + 1, 2), padding + floor_div(fh - down, 2)};
  a.flip_filter = flip_filter;
  a.gain = gain;
  return upfirdn2d(x, f, a, impl);
}

at::Tensor filter2d(const at::Tensor& x, const at::Tensor& f, int padding, bool flip_filter, double gain, Impl impl) {
  const auto [fw, fh] = filter_size(f);
  Upfirdn2dArgs a;
  a.padding = {padding + floor_div(fw, 2), padding + floor_div(fw - 1, 2), padding + floor_div(fh, 2),
               padding + floor_div(fh - 1, 2)};
  a.flip_filter = flip_filter;
  a.gain = gain;
  return upfirdn2d(x, f, a, impl);
}

}  // namespace facetex::kernels
