// The torch side of the upfirdn2d CUDA kernel (CUDA-LibTorch builds only): tensors to launcher arguments, the
// separable filter as two passes, and an autograd Function whose backward is the same Function with up and down
// swapped, the filter flipped and the padding from the reference's formula — hence derivatives of any order.
#include "kernels/cuda_ops.h"

#ifdef FACETEX_HAVE_TORCH_CUDA

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include <climits>
#include <cmath>

#include "core/error.h"
#include "kernels/cuda_launch_support.h"
#include "kernels/upfirdn2d_transpose.h"

namespace facetex::kernels::detail {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// One kernel pass with a 2-D filter; not differentiable by itself.
at::Tensor upfirdn2d_pass(const at::Tensor& x, const at::Tensor& f2d, int up_x, int up_y, int down_x, int down_y,
                          int pad_x0, int pad_x1, int pad_y0, int pad_y1, bool flip_filter, double gain) {
  const int64_t in_h = x.size(2), in_w = x.size(3);
  const int64_t f_h = f2d.size(0), f_w = f2d.size(1);
  const int64_t out_h = (in_h * up_y + pad_y0 + pad_y1 - f_h) / down_y + 1;
  const int64_t out_w = (in_w * up_x + pad_x0 + pad_x1 - f_w) / down_x + 1;
  FACETEX_CHECK_RUNTIME(x.size(0) <= INT_MAX && x.size(1) <= INT_MAX && in_h * up_y <= INT_MAX &&
                            in_w * up_x <= INT_MAX && out_h * down_y <= INT_MAX && out_w * down_x <= INT_MAX,
                        "upfirdn2d: input of {} x {} x {} x {} is too large for the CUDA kernel", x.size(0), x.size(1),
                        in_h, in_w);

  // The kernel reads taps in its compute type: float32 for float32/float16 data, float64 for float64.
  const at::Tensor filter = f2d.to(x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat).contiguous();
  // The output keeps x's layout (NCHW or channels-last): the kernel addresses both through strides.
  at::Tensor y = at::empty({x.size(0), x.size(1), out_h, out_w}, x.options().memory_format(x.suggest_memory_format()));

  cuda::Upfirdn2dLaunch p;
  p.dtype = launcher_dtype(x, "upfirdn2d");
  p.x = x.data_ptr();
  p.y = y.data_ptr();
  p.f = filter.data_ptr();
  p.batch = static_cast<int>(x.size(0));
  p.channels = static_cast<int>(x.size(1));
  p.in_h = static_cast<int>(in_h);
  p.in_w = static_cast<int>(in_w);
  p.out_h = static_cast<int>(out_h);
  p.out_w = static_cast<int>(out_w);
  p.x_stride_n = x.stride(0);
  p.x_stride_c = x.stride(1);
  p.x_stride_y = x.stride(2);
  p.x_stride_x = x.stride(3);
  p.y_stride_n = y.stride(0);
  p.y_stride_c = y.stride(1);
  p.y_stride_y = y.stride(2);
  p.y_stride_x = y.stride(3);
  p.f_h = static_cast<int>(f_h);
  p.f_w = static_cast<int>(f_w);
  p.up_x = up_x;
  p.up_y = up_y;
  p.down_x = down_x;
  p.down_y = down_y;
  p.pad_x0 = pad_x0;
  p.pad_y0 = pad_y0;
  p.flip_filter = flip_filter;
  p.gain = gain;
  const c10::cuda::CUDAGuard device_guard(x.device());
  check_launch(cuda::upfirdn2d(p, current_stream(x)), "upfirdn2d");
  return y;
}

// The whole op: a 2-D filter in one pass; a 1-D filter along x then along y, each with sqrt(gain).
at::Tensor upfirdn2d_forward(const at::Tensor& x, const at::Tensor& f, const Upfirdn2dArgs& a) {
  const auto [px0, px1, py0, py1] = a.padding;
  if (f.dim() == 2) {
    return upfirdn2d_pass(x, f, a.up_x, a.up_y, a.down_x, a.down_y, px0, px1, py0, py1, a.flip_filter, a.gain);
  }
  const int64_t taps = f.size(0);
  const double pass_gain = std::sqrt(a.gain);
  const at::Tensor along_x =
      upfirdn2d_pass(x, f.reshape({1, taps}), a.up_x, 1, a.down_x, 1, px0, px1, 0, 0, a.flip_filter, pass_gain);
  return upfirdn2d_pass(along_x, f.reshape({taps, 1}), 1, a.up_y, 1, a.down_y, 0, 0, py0, py1, a.flip_filter,
                        pass_gain);
}

class Upfirdn2dFunction : public torch::autograd::Function<Upfirdn2dFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& f, const Upfirdn2dArgs& a) {
    ctx->save_for_backward({f});
    ctx->saved_data["factors"] = std::vector<int64_t>{a.up_x, a.up_y, a.down_x, a.down_y};
    ctx->saved_data["padding"] = std::vector<int64_t>{a.padding[0], a.padding[1], a.padding[2], a.padding[3]};
    ctx->saved_data["flip_filter"] = a.flip_filter;
    ctx->saved_data["gain"] = a.gain;
    ctx->saved_data["in_hw"] = std::vector<int64_t>{x.size(2), x.size(3)};
    return upfirdn2d_forward(x, f, a);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor f = ctx->get_saved_variables()[0];
    const std::vector<int64_t> factors = ctx->saved_data["factors"].toIntVector();
    const std::vector<int64_t> padding = ctx->saved_data["padding"].toIntVector();
    const std::vector<int64_t> in_hw = ctx->saved_data["in_hw"].toIntVector();
    Upfirdn2dArgs forward_args;
    forward_args.up_x = static_cast<int>(factors[0]);
    forward_args.up_y = static_cast<int>(factors[1]);
    forward_args.down_x = static_cast<int>(factors[2]);
    forward_args.down_y = static_cast<int>(factors[3]);
    for (size_t i = 0; i < 4; ++i) forward_args.padding[i] = static_cast<int>(padding[i]);
    forward_args.flip_filter = ctx->saved_data["flip_filter"].toBool();
    forward_args.gain = ctx->saved_data["gain"].toDouble();

    const at::Tensor& dy = grads[0];
    at::Tensor dx;
    if (ctx->needs_input_grad(0)) {
      const Upfirdn2dArgs transpose =
          upfirdn2d_transpose_args(forward_args, filter_size(f), {in_hw[0], in_hw[1]}, {dy.size(2), dy.size(3)});
      dx = Upfirdn2dFunction::apply(dy, f, transpose);
    }
    return {dx, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& f, const Upfirdn2dArgs& args) {
  return Upfirdn2dFunction::apply(x, f, args);
}

}  // namespace facetex::kernels::detail

#endif  // FACETEX_HAVE_TORCH_CUDA
