#include "models/stylegan2/synthesis.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/error.h"
#include "kernels/fma.h"
#include "kernels/upfirdn2d.h"

namespace facetex::models::stylegan2 {

NoiseMode parse_noise_mode(const std::string& text) {
  if (text == "random") return NoiseMode::kRandom;
  if (text == "const") return NoiseMode::kConst;
  if (text == "none") return NoiseMode::kNone;
  throw UsageError(fmt::format("noise mode must be random, const or none, got '{}'", text));
}

const char* noise_mode_name(NoiseMode mode) {
  switch (mode) {
    case NoiseMode::kRandom: return "random";
    case NoiseMode::kConst: return "const";
    default: return "none";
  }
}

at::Tensor modulated_conv2d(const at::Tensor& x_in, const at::Tensor& weight_in, const at::Tensor& styles_in,
                            const ModulatedConvArgs& a) {
  const int64_t batch = x_in.size(0), out_channels = weight_in.size(0), in_channels = weight_in.size(1);
  const int64_t kh = weight_in.size(2), kw = weight_in.size(3);
  FACETEX_CHECK_RUNTIME(x_in.dim() == 4 && x_in.size(1) == in_channels, "modulated_conv2d: x {} vs weight {}",
                        x_in.sizes().vec(), weight_in.sizes().vec());
  FACETEX_CHECK_RUNTIME(styles_in.dim() == 2 && styles_in.size(0) == batch && styles_in.size(1) == in_channels,
                        "modulated_conv2d: styles {} must be [{}, {}]", styles_in.sizes().vec(), batch, in_channels);
  at::Tensor x = x_in, weight = weight_in, styles = styles_in;
  // FP16: pre-normalise weight and styles by their infinity norms so the per-sample products cannot overflow.
  if (x.scalar_type() == at::kHalf && a.demodulate) {
    weight = weight * (1.0 / std::sqrt(double(in_channels * kh * kw)) /
                       weight.abs().amax({1, 2, 3}, /*keepdim=*/true));
    styles = styles / styles.abs().amax({1}, /*keepdim=*/true);
  }
  at::Tensor w, dcoefs;
  if (a.fused) {
    w = weight.unsqueeze(0) * styles.reshape({batch, 1, -1, 1, 1});  // [N, O, I, k, k]
    if (a.demodulate) dcoefs = (w.square().sum({2, 3, 4}) + 1e-8).rsqrt();
    if (a.demodulate) w = w * dcoefs.reshape({batch, -1, 1, 1, 1});
  } else if (a.demodulate) {
    // The split path needs only the coefficients: sum_{i,k} (w[o,i,k] s[n,i])^2 = sum_i s[n,i]^2 sum_k w[o,i,k]^2,
    // one [N, I] x [I, O] product instead of the reference's [N, O, I, k, k] tensor of per-sample weights (300 MB
    // at config F's 512 channels and batch 32, written, squared and summed in every layer, and again in backward).
    // The same sum in another order: equal up to float rounding.
    dcoefs = (at::matmul(styles.square(), weight.square().sum({2, 3}).t()) + 1e-8).rsqrt();
  }

  ConvResampleArgs cr;
  cr.up = a.up;
  cr.down = a.down;
  cr.padding = {a.padding, a.padding, a.padding, a.padding};
  cr.flip_weight = a.flip_weight;
  if (!a.fused) {
    // Scale the activations before and after one shared convolution.
    x = x * styles.to(x.scalar_type()).reshape({batch, -1, 1, 1});
    x = conv2d_resample(x, weight.to(x.scalar_type()), a.resample_filter, cr);
    if (a.demodulate && a.noise.defined()) {
      return kernels::fma(x, dcoefs.to(x.scalar_type()).reshape({batch, -1, 1, 1}), a.noise.to(x.scalar_type()));
    }
    if (a.demodulate) return x * dcoefs.to(x.scalar_type()).reshape({batch, -1, 1, 1});
    if (a.noise.defined()) return x + a.noise.to(x.scalar_type());
    return x;
  }
  // One grouped convolution over the whole batch.
  x = x.reshape({1, -1, x.size(2), x.size(3)});
  w = w.reshape({-1, in_channels, kh, kw});
  cr.groups = batch;
  x = conv2d_resample(x, w.to(x.scalar_type()), a.resample_filter, cr);
  x = x.reshape({batch, -1, x.size(2), x.size(3)});
  if (a.noise.defined()) x = x + a.noise;
  (void)out_channels;
  return x;
}

SynthesisLayer::SynthesisLayer(int64_t in_channels, int64_t out_channels, const SynthesisConfig& c, int resolution,
                               int up)
    : resolution_(resolution), up_(up), padding_(c.kernel_size / 2), use_noise_(c.use_noise),
      activation_(kernels::parse_activation(c.activation)), conv_clamp_(c.conv_clamp) {
  resample_filter = register_buffer("resample_filter", kernels::setup_filter(c.resample_filter));
  affine = register_module("affine", std::make_shared<FullyConnectedLayer>(c.w_dim, in_channels, true,
                                                                           kernels::Activation::kLinear, 1.0, 1.0));
  weight = register_parameter("weight", at::randn({out_channels, in_channels, c.kernel_size, c.kernel_size}));
  if (use_noise_) {
    noise_const = register_buffer("noise_const", at::randn({resolution, resolution}));
    noise_strength = register_parameter("noise_strength", at::zeros({}));
  }
  bias = register_parameter("bias", at::zeros({out_channels}));
}

at::Tensor SynthesisLayer::forward(const at::Tensor& x, const at::Tensor& w, NoiseMode noise_mode, bool fused,
                                   double gain) {
  FACETEX_CHECK_RUNTIME(x.dim() == 4 && x.size(1) == weight.size(1) && x.size(2) == resolution_ / up_,
                        "synthesis layer at {}: input {} does not fit", resolution_, x.sizes().vec());
  ModulatedConvArgs a;
  if (use_noise_ && noise_mode == NoiseMode::kRandom) {
    a.noise = at::randn({x.size(0), 1, resolution_, resolution_}, x.options().dtype(noise_strength.scalar_type())) *
              noise_strength;
  } else if (use_noise_ && noise_mode == NoiseMode::kConst) {
    a.noise = (noise_override.defined() ? noise_override : noise_const) * noise_strength;
  }
  a.up = up_;
  a.padding = padding_;
  a.resample_filter = resample_filter;
  a.flip_weight = (up_ == 1);
  a.fused = fused;
  at::Tensor y = modulated_conv2d(x, weight, affine->forward(w), a);
  kernels::BiasActArgs ba;
  ba.act = activation_;
  ba.gain = kernels::default_gain(activation_) * gain;
  if (conv_clamp_) ba.clamp = *conv_clamp_ * gain;
  return kernels::bias_act(y, bias.to(y.scalar_type()), ba);
}

ToRGBLayer::ToRGBLayer(int64_t in_channels, int64_t out_channels, int64_t w_dim, std::optional<double> conv_clamp)
    : conv_clamp_(conv_clamp), weight_gain_(1.0 / std::sqrt(static_cast<double>(in_channels))) {
  affine = register_module("affine", std::make_shared<FullyConnectedLayer>(w_dim, in_channels, true,
                                                                           kernels::Activation::kLinear, 1.0, 1.0));
  weight = register_parameter("weight", at::randn({out_channels, in_channels, 1, 1}));
  bias = register_parameter("bias", at::zeros({out_channels}));
}

at::Tensor ToRGBLayer::forward(const at::Tensor& x, const at::Tensor& w, bool fused) {
  ModulatedConvArgs a;
  a.demodulate = false;
  a.fused = fused;
  at::Tensor y = modulated_conv2d(x, weight, affine->forward(w) * weight_gain_, a);
  kernels::BiasActArgs ba;
  ba.clamp = conv_clamp_;
  return kernels::bias_act(y, bias.to(y.scalar_type()), ba);
}

SynthesisBlock::SynthesisBlock(int64_t in_channels, int64_t out_channels, const SynthesisConfig& c, int resolution,
                               bool is_last, bool use_fp16)
    : in_channels_(in_channels), resolution_(resolution), is_last_(is_last), use_fp16_(use_fp16),
      channels_last_(use_fp16 && c.fp16_channels_last), architecture_(c.architecture) {
  resample_filter = register_buffer("resample_filter", kernels::setup_filter(c.resample_filter));
  if (in_channels == 0) constant = register_parameter("const", at::randn({out_channels, resolution, resolution}));
  if (in_channels != 0) {
    conv0_ = register_module("conv0", std::make_shared<SynthesisLayer>(in_channels, out_channels, c, resolution, 2));
    ++num_conv_;
  }
  conv1_ = register_module("conv1", std::make_shared<SynthesisLayer>(out_channels, out_channels, c, resolution, 1));
  ++num_conv_;
  if (is_last || architecture_ == "skip") {
    torgb_ = register_module("torgb", std::make_shared<ToRGBLayer>(out_channels, c.img_channels, c.w_dim, c.conv_clamp));
    ++num_torgb_;
  }
  if (in_channels != 0 && architecture_ == "resnet") {
    Conv2dLayer::Options o;
    o.bias = false;
    o.up = 2;
    o.resample_filter = c.resample_filter;
    skip_ = register_module("skip", std::make_shared<Conv2dLayer>(in_channels, out_channels, 1, o));
  }
}

std::pair<at::Tensor, at::Tensor> SynthesisBlock::forward(const at::Tensor& x_in, const at::Tensor& img_in,
                                                          const at::Tensor& ws, const SynthesisOptions& options) {
  FACETEX_CHECK_RUNTIME(ws.dim() == 3 && ws.size(1) == num_conv_ + num_torgb_, "synthesis block {}: ws {}",
                        resolution_, ws.sizes().vec());
  const auto ws_list = ws.unbind(1);
  size_t wi = 0;
  // FP16 only where it pays and works: CUDA tensors (CPU half convolutions are unsupported or slow).
  const bool half = use_fp16_ && !options.force_fp32 && ws.is_cuda();
  const auto full = ws.scalar_type();  // float32 (float64 in the float64 parity check)
  const auto dtype = half ? at::kHalf : full;
  const bool fused = options.fused_modconv.value_or(!is_training() && (dtype == full || ws.size(0) == 1));

  at::Tensor x;
  if (in_channels_ == 0) {
    x = constant.to(dtype).unsqueeze(0).repeat({ws.size(0), 1, 1, 1});
  } else {
    FACETEX_CHECK_RUNTIME(x_in.size(1) == in_channels_ && x_in.size(2) == resolution_ / 2,
                          "synthesis block {}: input {}", resolution_, x_in.sizes().vec());
    x = x_in.to(dtype);
  }
  // NHWC for the FP16 blocks when asked (the convolutions, elementwise ops and both CUDA kernels keep the layout).
  if (half && channels_last_) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  if (in_channels_ == 0) {
    x = conv1_->forward(x, ws_list[wi++], options.noise_mode, fused);
  } else if (architecture_ == "resnet") {
    at::Tensor y = skip_->forward(x, std::sqrt(0.5));
    x = conv0_->forward(x, ws_list[wi++], options.noise_mode, fused);
    x = conv1_->forward(x, ws_list[wi++], options.noise_mode, fused, std::sqrt(0.5));
    x = y + x;
  } else {
    x = conv0_->forward(x, ws_list[wi++], options.noise_mode, fused);
    x = conv1_->forward(x, ws_list[wi++], options.noise_mode, fused);
  }
  at::Tensor img = img_in;
  if (img.defined()) img = kernels::upsample2d(img, resample_filter);
  if (is_last_ || architecture_ == "skip") {
    at::Tensor y = torgb_->forward(x, ws_list[wi++], fused).to(full);
    img = img.defined() ? img + y : y;
  }
  return {x, img};
}

SynthesisNetwork::SynthesisNetwork(const SynthesisConfig& config) : c_(config) {
  FACETEX_CHECK_USAGE(c_.img_resolution >= 4 && (c_.img_resolution & (c_.img_resolution - 1)) == 0,
                      "synthesis: img_resolution {} must be a power of two >= 4", c_.img_resolution);
  check_channel_counts(c_.img_resolution, c_.channel_base, c_.channel_max, "synthesis");
  for (int res : c_.block_resolutions()) {
    const int64_t in = res > 4 ? c_.channels(res / 2) : 0;
    const bool is_last = res == c_.img_resolution;
    auto block = std::make_shared<SynthesisBlock>(in, c_.channels(res), c_, res, is_last, res >= c_.fp16_resolution());
    num_ws_ += block->num_conv() + (is_last ? block->num_torgb() : 0);
    blocks_.push_back(register_module(fmt::format("b{}", res), block));
  }
}

at::Tensor SynthesisNetwork::forward(const at::Tensor& ws_in, const SynthesisOptions& options) {
  FACETEX_CHECK_RUNTIME(ws_in.dim() == 3 && ws_in.size(1) == num_ws_ && ws_in.size(2) == c_.w_dim,
                        "synthesis: ws must be [N, {}, {}], got {}", num_ws_, c_.w_dim, ws_in.sizes().vec());
  const at::Tensor ws = ws_in.to(blocks_.front()->resample_filter.scalar_type());
  at::Tensor x, img;
  int64_t w_idx = 0;
  for (auto& block : blocks_) {
    const at::Tensor block_ws = ws.narrow(1, w_idx, block->num_conv() + block->num_torgb());
    w_idx += block->num_conv();
    std::tie(x, img) = block->forward(x, img, block_ws, options);
  }
  return img;
}

}  // namespace facetex::models::stylegan2
