#include "models/stylegan2/discriminator.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/error.h"
#include "kernels/upfirdn2d.h"

namespace facetex::models::stylegan2 {

DiscriminatorBlock::DiscriminatorBlock(int64_t in_channels, int64_t tmp_channels, int64_t out_channels, int resolution,
                                       const DiscriminatorConfig& c, int first_layer_index, bool use_fp16)
    : in_channels_(in_channels), resolution_(resolution), architecture_(c.architecture), use_fp16_(use_fp16),
      channels_last_(use_fp16 && c.fp16_channels_last) {
  FACETEX_CHECK_USAGE(in_channels == 0 || in_channels == tmp_channels, "discriminator block {}: bad channels",
                      resolution);
  resample_filter = register_buffer("resample_filter", kernels::setup_filter(c.resample_filter));
  const auto act = kernels::parse_activation(c.activation);
  // Freeze-D: the first freeze_layers layers hold their weights as buffers.
  auto options = [&](bool bias, int down) {
    Conv2dLayer::Options o;
    o.bias = bias;
    o.activation = bias ? act : kernels::Activation::kLinear;
    o.down = down;
    if (down > 1) o.resample_filter = c.resample_filter;  // as the reference: only resampling layers get it
    o.conv_clamp = bias ? c.conv_clamp : std::nullopt;
    o.trainable = first_layer_index + num_layers_ >= c.freeze_layers;
    ++num_layers_;
    return o;
  };
  if (in_channels == 0 || architecture_ == "skip") {
    fromrgb_ = register_module("fromrgb", std::make_shared<Conv2dLayer>(c.img_channels, tmp_channels, 1, options(true, 1)));
  }
  conv0_ = register_module("conv0", std::make_shared<Conv2dLayer>(tmp_channels, tmp_channels, 3, options(true, 1)));
  conv1_ = register_module("conv1", std::make_shared<Conv2dLayer>(tmp_channels, out_channels, 3, options(true, 2)));
  if (architecture_ == "resnet") {
    skip_ = register_module("skip", std::make_shared<Conv2dLayer>(tmp_channels, out_channels, 1, options(false, 2)));
  }
}

std::pair<at::Tensor, at::Tensor> DiscriminatorBlock::forward(const at::Tensor& x_in, const at::Tensor& img_in,
                                                              bool force_fp32) {
  // FP16 only on CUDA (CPU half convolutions are unsupported or slow).
  const bool on_cuda = x_in.defined() ? x_in.is_cuda() : img_in.is_cuda();
  const bool half = use_fp16_ && !force_fp32 && on_cuda;
  const auto dtype = half ? at::kHalf : resample_filter.scalar_type();  // float32 (float64 in the f64 check)
  const auto format = half && channels_last_ ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  at::Tensor x = x_in.defined() ? x_in.to(dtype).contiguous(format) : at::Tensor();
  at::Tensor img = img_in;
  if (in_channels_ == 0 || architecture_ == "skip") {
    FACETEX_CHECK_RUNTIME(img.dim() == 4 && img.size(2) == resolution_ && img.size(3) == resolution_,
                          "discriminator block {}: image {} has the wrong size", resolution_, img.sizes().vec());
    img = img.to(dtype).contiguous(format);
    at::Tensor y = fromrgb_->forward(img);
    x = x.defined() ? x + y : y;
    img = architecture_ == "skip" ? kernels::downsample2d(img, resample_filter) : at::Tensor();
  }
  if (architecture_ == "resnet") {
    at::Tensor y = skip_->forward(x, std::sqrt(0.5));
    x = conv0_->forward(x);
    x = conv1_->forward(x, std::sqrt(0.5));
    x = y + x;
  } else {
    x = conv0_->forward(x);
    x = conv1_->forward(x);
  }
  return {x, img};
}

at::Tensor minibatch_std(const at::Tensor& x, std::optional<int64_t> group_size, int64_t num_channels) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t g = group_size ? std::min(*group_size, n) : n;
  FACETEX_CHECK_RUNTIME(n % g == 0, "minibatch stddev: batch {} is not divisible by the group size {}", n, g);
  const int64_t f = num_channels, cf = c / f;
  at::Tensor y = x.reshape({g, -1, f, cf, h, w});  // [G, n, F, c, H, W]
  y = y - y.mean(0);
  y = y.square().mean(0);
  y = (y + 1e-8).sqrt();
  y = y.mean({2, 3, 4});  // [n, F]
  y = y.reshape({-1, f, 1, 1}).repeat({g, 1, h, w});
  return at::cat({x, y}, 1);
}

DiscriminatorEpilogue::DiscriminatorEpilogue(int64_t in_channels, int resolution, const DiscriminatorConfig& c)
    : in_channels_(in_channels), resolution_(resolution), architecture_(c.architecture),
      mbstd_group_size_(c.mbstd_group_size), mbstd_num_channels_(c.mbstd_num_channels) {
  const auto act = kernels::parse_activation(c.epilogue_activation);
  Conv2dLayer::Options o;
  o.activation = act;
  if (architecture_ == "skip") fromrgb_ = register_module("fromrgb", std::make_shared<Conv2dLayer>(c.img_channels, in_channels, 1, o));
  o.conv_clamp = c.conv_clamp;
  conv_ = register_module("conv", std::make_shared<Conv2dLayer>(in_channels + mbstd_num_channels_, in_channels, 3, o));
  fc_ = register_module("fc", std::make_shared<FullyConnectedLayer>(in_channels * resolution * resolution, in_channels,
                                                                    true, act));
  out_ = register_module("out", std::make_shared<FullyConnectedLayer>(in_channels, 1));
}

at::Tensor DiscriminatorEpilogue::forward(const at::Tensor& x_in, const at::Tensor& img) {
  FACETEX_CHECK_RUNTIME(x_in.dim() == 4 && x_in.size(1) == in_channels_ && x_in.size(2) == resolution_,
                        "discriminator epilogue: input {}", x_in.sizes().vec());
  const auto full = conv_->weight.scalar_type();
  at::Tensor x = x_in.to(full);
  if (architecture_ == "skip") x = x + fromrgb_->forward(img.to(full));
  if (mbstd_num_channels_ > 0) x = minibatch_std(x, mbstd_group_size_, mbstd_num_channels_);
  x = conv_->forward(x);
  x = fc_->forward(x.flatten(1));
  return out_->forward(x);
}

Discriminator::Discriminator(const DiscriminatorConfig& config) : c_(config) {
  check_channel_counts(c_.img_resolution, c_.channel_base, c_.channel_max, "discriminator");
  int layer_index = 0;
  for (int res : c_.block_resolutions()) {
    const int64_t in = res < c_.img_resolution ? c_.channels(res) : 0;
    auto block = std::make_shared<DiscriminatorBlock>(in, c_.channels(res), c_.channels(res / 2), res, c_, layer_index,
                                                      res >= c_.fp16_resolution());
    layer_index += block->num_layers();
    blocks_.push_back(register_module(fmt::format("b{}", res), block));
  }
  epilogue_ = register_module("b4", std::make_shared<DiscriminatorEpilogue>(c_.channels(4), 4, c_));
}

at::Tensor Discriminator::forward(const at::Tensor& img_in, bool force_fp32) {
  FACETEX_CHECK_RUNTIME(img_in.dim() == 4 && img_in.size(1) == c_.img_channels &&
                            img_in.size(2) == c_.img_resolution && img_in.size(3) == c_.img_resolution,
                        "discriminator: image must be [N, {}, {}, {}], got {}", c_.img_channels, c_.img_resolution,
                        c_.img_resolution, img_in.sizes().vec());
  at::Tensor x, img = img_in;
  for (auto& block : blocks_) std::tie(x, img) = block->forward(x, img, force_fp32);
  return epilogue_->forward(x, img);
}

}  // namespace facetex::models::stylegan2
