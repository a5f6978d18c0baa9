#include "models/stylegan2/layers.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/error.h"
#include "kernels/upfirdn2d.h"

namespace facetex::models::stylegan2 {

at::Tensor normalize_2nd_moment(const at::Tensor& x, int64_t dim, double eps) {
  return x * (x.square().mean(dim, /*keepdim=*/true) + eps).rsqrt();
}

namespace {

// conv_transpose2d(x, w, stride, padding, groups) computed as a plain convolution of the zero-inserted input with
// the flipped, in/out-swapped kernel. The same mathematics; on the CPU it runs through oneDNN instead of
// LibTorch's slow_conv_transpose2d, which is about 10x slower here and dominated CPU training steps.
at::Tensor conv_transpose_via_conv(const at::Tensor& x, const at::Tensor& w, int64_t stride,
                                   std::array<int64_t, 2> padding, int64_t groups) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  const int64_t in_g = w.size(0) / groups, out_g = w.size(1), kh = w.size(2), kw = w.size(3);
  at::Tensor up = at::zeros({n, c, (h - 1) * stride + 1, (wd - 1) * stride + 1}, x.options());
  up.slice(2, 0, c10::nullopt, stride).slice(3, 0, c10::nullopt, stride).copy_(x);
  const int64_t py = kh - 1 - padding[0], px = kw - 1 - padding[1];
  FACETEX_CHECK_RUNTIME(py >= 0 && px >= 0, "conv_transpose_via_conv: padding {} exceeds kernel {}x{}", padding, kh, kw);
  // [groups * in_g, out_g, kh, kw] -> [groups * out_g, in_g, kh, kw], spatially flipped.
  at::Tensor wc = w.reshape({groups, in_g, out_g, kh, kw}).transpose(1, 2).reshape({groups * out_g, in_g, kh, kw});
  return at::conv2d(up, wc.flip({2, 3}), /*bias=*/{}, {1, 1}, {py, px}, /*dilation=*/1, groups);
}

// conv2d / conv_transpose2d with the reference's weight-flip convention.
at::Tensor conv(const at::Tensor& x, at::Tensor w, int64_t stride, std::array<int64_t, 2> padding, int64_t groups,
                bool transpose, bool flip_weight) {
  if (!flip_weight) w = w.flip({2, 3});  // conv2d correlates; flipping turns it into a convolution
  if (transpose && x.device().is_cpu()) return conv_transpose_via_conv(x, w, stride, padding, groups);
  if (transpose) {
    return at::conv_transpose2d(x, w, /*bias=*/{}, {stride, stride}, {padding[0], padding[1]}, /*output_padding=*/0,
                                groups);
  }
  return at::conv2d(x, w, /*bias=*/{}, {stride, stride}, {padding[0], padding[1]}, /*dilation=*/1, groups);
}

}  // namespace

at::Tensor conv2d_resample(const at::Tensor& x, const at::Tensor& w, const at::Tensor& f, const ConvResampleArgs& a) {
  FACETEX_CHECK_RUNTIME(x.dim() == 4 && w.dim() == 4, "conv2d_resample expects 4-D x and w");
  FACETEX_CHECK_RUNTIME(a.up >= 1 && a.down >= 1 && a.groups >= 1, "conv2d_resample: invalid up/down/groups");
  const int64_t out_channels = w.size(0), in_per_group = w.size(1), kh = w.size(2), kw = w.size(3);
  const auto fsize = f.defined() ? kernels::filter_size(f) : std::array<int, 2>{1, 1};
  const int fw = fsize[0], fh = fsize[1];
  int px0 = a.padding[0], px1 = a.padding[1], py0 = a.padding[2], py1 = a.padding[3];
  if (a.up > 1) {
    px0 += (fw + a.up - 1) / 2;
    px1 += (fw - a.up) / 2;
    py0 += (fh + a.up - 1) / 2;
    py1 += (fh - a.up) / 2;
  }
  if (a.down > 1) {
    px0 += (fw - a.down + 1) / 2;
    px1 += (fw - a.down) / 2;
    py0 += (fh - a.down + 1) / 2;
    py1 += (fh - a.down) / 2;
  }
  auto fir = [&](const at::Tensor& in, int up, int down, std::array<int, 4> pad, double gain) {
    kernels::Upfirdn2dArgs u;
    u.up_x = u.up_y = up;
    u.down_x = u.down_y = down;
    u.padding = pad;
    u.flip_filter = a.flip_filter;
    u.gain = gain;
    return kernels::upfirdn2d(in, f.defined() ? f : at::ones({1, 1}, in.options().dtype(at::kFloat)), u);
  };

  // 1x1 convolution with downsampling only: downsample first, then convolve.
  if (kw == 1 && kh == 1 && a.down > 1 && a.up == 1) {
    at::Tensor y = fir(x, 1, a.down, {px0, px1, py0, py1}, 1.0);
    return conv(y, w, 1, {0, 0}, a.groups, false, a.flip_weight);
  }
  // 1x1 convolution with upsampling only: convolve first, then upsample.
  if (kw == 1 && kh == 1 && a.up > 1 && a.down == 1) {
    at::Tensor y = conv(x, w, 1, {0, 0}, a.groups, false, a.flip_weight);
    return fir(y, a.up, 1, {px0, px1, py0, py1}, double(a.up * a.up));
  }
  // Downsampling only: FIR, then a strided convolution.
  if (a.down > 1 && a.up == 1) {
    at::Tensor y = fir(x, 1, 1, {px0, px1, py0, py1}, 1.0);
    return conv(y, w, a.down, {0, 0}, a.groups, false, a.flip_weight);
  }
  // Upsampling (with optional downsampling): transposed strided convolution, then FIR.
  if (a.up > 1) {
    at::Tensor wt;
    if (a.groups == 1) {
      wt = w.transpose(0, 1);
    } else {
      wt = w.reshape({a.groups, out_channels / a.groups, in_per_group, kh, kw})
               .transpose(1, 2)
               .reshape({a.groups * in_per_group, out_channels / a.groups, kh, kw});
    }
    px0 -= static_cast<int>(kw - 1);
    px1 -= static_cast<int>(kw - a.up);
    py0 -= static_cast<int>(kh - 1);
    py1 -= static_cast<int>(kh - a.up);
    const int pxt = std::max(std::min(-px0, -px1), 0);
    const int pyt = std::max(std::min(-py0, -py1), 0);
    at::Tensor y = conv(x, wt, a.up, {pyt, pxt}, a.groups, true, !a.flip_weight);
    y = fir(y, 1, 1, {px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt}, double(a.up * a.up));
    if (a.down > 1) y = fir(y, 1, a.down, {0, 0, 0, 0}, 1.0);
    return y;
  }
  // No resampling and symmetric non-negative padding: a plain convolution.
  if (px0 == px1 && py0 == py1 && px0 >= 0 && py0 >= 0) {
    return conv(x, w, 1, {py0, px0}, a.groups, false, a.flip_weight);
  }
  // Generic fallback (asymmetric padding without resampling).
  at::Tensor y = kernels::upfirdn2d(x, at::ones({1, 1}, x.options().dtype(at::kFloat)),
                                    kernels::Upfirdn2dArgs{1, 1, 1, 1, {px0, px1, py0, py1}, a.flip_filter, 1.0});
  return conv(y, w, 1, {0, 0}, a.groups, false, a.flip_weight);
}

FullyConnectedLayer::FullyConnectedLayer(int64_t in_features, int64_t out_features, bool use_bias,
                                         kernels::Activation activation, double lr_multiplier, double bias_init)
    : activation_(activation),
      weight_gain_(lr_multiplier / std::sqrt(static_cast<double>(in_features))),
      bias_gain_(lr_multiplier) {
  weight = register_parameter("weight", at::randn({out_features, in_features}) / lr_multiplier);
  if (use_bias) bias = register_parameter("bias", at::full({out_features}, static_cast<float>(bias_init)));
}

at::Tensor FullyConnectedLayer::forward(const at::Tensor& x) {
  at::Tensor w = weight.to(x.scalar_type()) * weight_gain_;
  at::Tensor b;
  if (bias.defined()) {
    b = bias.to(x.scalar_type());
    if (bias_gain_ != 1.0) b = b * bias_gain_;
  }
  if (activation_ == kernels::Activation::kLinear && b.defined()) return at::addmm(b.unsqueeze(0), x, w.t());
  kernels::BiasActArgs args;
  args.act = activation_;
  return kernels::bias_act(x.matmul(w.t()), b, args);
}

Conv2dLayer::Conv2dLayer(int64_t in_channels, int64_t out_channels, int kernel_size, const Options& options)
    : o_(options), padding_(kernel_size / 2),
      weight_gain_(1.0 / std::sqrt(static_cast<double>(in_channels * kernel_size * kernel_size))),
      act_gain_(kernels::default_gain(options.activation)) {
  resample_filter = register_buffer("resample_filter", kernels::setup_filter(options.resample_filter));
  at::Tensor w = at::randn({out_channels, in_channels, kernel_size, kernel_size});
  at::Tensor b = options.bias ? at::zeros({out_channels}) : at::Tensor();
  if (options.trainable) {
    weight = register_parameter("weight", w);
    if (b.defined()) bias = register_parameter("bias", b);
  } else {
    weight = register_buffer("weight", w);
    if (b.defined()) bias = register_buffer("bias", b);
  }
}

at::Tensor Conv2dLayer::forward(const at::Tensor& x, double gain) {
  at::Tensor w = weight * weight_gain_;
  at::Tensor b = bias.defined() ? bias.to(x.scalar_type()) : at::Tensor();
  ConvResampleArgs a;
  a.up = o_.up;
  a.down = o_.down;
  a.padding = {padding_, padding_, padding_, padding_};
  a.flip_weight = (o_.up == 1);  // the reference's choice ("slightly faster"); it fixes the stored weights' meaning
  at::Tensor y = conv2d_resample(x, w.to(x.scalar_type()), resample_filter, a);
  kernels::BiasActArgs args;
  args.act = o_.activation;
  args.gain = act_gain_ * gain;
  if (o_.conv_clamp) args.clamp = *o_.conv_clamp * gain;
  return kernels::bias_act(y, b, args);
}

}  // namespace facetex::models::stylegan2
