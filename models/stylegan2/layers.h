// Building blocks shared by the StyleGAN2 generator and discriminator, with the reference's parameter names
// (weight, bias, resample_filter) and run-time gains (equalised learning rate: stored weights are N(0,1) and
// scaled by 1/sqrt(fan_in) in forward). Exactly as NVlabs/stylegan2-ada-pytorch training/networks.py.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <optional>
#include <string>
#include <vector>

#include "kernels/bias_act.h"

namespace facetex::models::stylegan2 {

// x * rsqrt(mean(x^2, dim) + eps)
at::Tensor normalize_2nd_moment(const at::Tensor& x, int64_t dim = 1, double eps = 1e-8);

// The reference's conv2d_resample: a convolution with optional FIR up/downsampling, choosing the same fast path
// (1x1 + resample, strided conv, transposed strided conv + FIR, plain conv) so that results and weight-flip
// conventions match. `padding` is [x0, x1, y0, y1] with respect to the upsampled image.
struct ConvResampleArgs {
  int up = 1, down = 1;
  std::array<int, 4> padding = {0, 0, 0, 0};
  int64_t groups = 1;
  bool flip_weight = true;   // true: correlation (like conv2d); false: convolution
  bool flip_filter = false;
};
at::Tensor conv2d_resample(const at::Tensor& x, const at::Tensor& w, const at::Tensor& f, const ConvResampleArgs& args);

// FullyConnectedLayer: y = act(x W^T * weight_gain + b * bias_gain), weight_gain = lr_multiplier / sqrt(in).
class FullyConnectedLayer : public torch::nn::Module {
 public:
  FullyConnectedLayer(int64_t in_features, int64_t out_features, bool bias = true,
                      kernels::Activation activation = kernels::Activation::kLinear, double lr_multiplier = 1.0,
                      double bias_init = 0.0);
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight, bias;

 private:
  kernels::Activation activation_;
  double weight_gain_, bias_gain_;
};

// Conv2dLayer: conv2d_resample with weight_gain = 1/sqrt(in * k^2), then bias_act with the activation's gain
// times `gain` and the clamp times `gain`.
class Conv2dLayer : public torch::nn::Module {
 public:
  struct Options {
    bool bias = true;
    kernels::Activation activation = kernels::Activation::kLinear;
    int up = 1, down = 1;
    std::vector<double> resample_filter = {1, 3, 3, 1};
    std::optional<double> conv_clamp;
    bool trainable = true;  // false: weight and bias are buffers (Freeze-D)
  };
  Conv2dLayer(int64_t in_channels, int64_t out_channels, int kernel_size, const Options& options);
  at::Tensor forward(const at::Tensor& x, double gain = 1.0);

  at::Tensor weight, bias, resample_filter;

 private:
  Options o_;
  int padding_;
  double weight_gain_, act_gain_;
};

}  // namespace facetex::models::stylegan2
