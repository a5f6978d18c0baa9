// The synthesis network ('skip' architecture by default; 'orig' and 'resnet' build too): a learned 4x4 constant,
// per-resolution blocks of modulated convolutions (fused or non-fused), per-pixel noise, ToRGB layers and FIR
// upsampling of the image skip. FP16 blocks (num_fp16_res) run in half precision on CUDA only.
#pragma once

#include <torch/nn/module.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/stylegan2/layers.h"
#include "models/stylegan2/network_config.h"

namespace facetex::models::stylegan2 {

enum class NoiseMode { kRandom, kConst, kNone };
NoiseMode parse_noise_mode(const std::string& text);  // random | const | none
const char* noise_mode_name(NoiseMode mode);

struct SynthesisOptions {
  NoiseMode noise_mode = NoiseMode::kRandom;
  std::optional<bool> fused_modconv;  // none: the reference's rule (fused in eval mode with FP32 or batch 1)
  bool force_fp32 = false;
};

// Modulated convolution (the reference's modulated_conv2d): per-sample weights w * style, optional demodulation
// 1/sqrt(sum w'^2 + 1e-8), optional noise; fused = one grouped convolution, non-fused = scale activations before and
// after a shared convolution (the training path; the same mathematics with different rounding). The non-fused path
// computes the demodulation coefficients as one [N, I] x [I, O] product instead of the reference's [N, O, I, k, k]
// per-sample weights (same sum, other order).
struct ModulatedConvArgs {
  at::Tensor noise;  // optional, broadcastable to the output
  int up = 1, down = 1, padding = 0;
  at::Tensor resample_filter;
  bool demodulate = true;
  bool flip_weight = true;
  bool fused = true;
};
at::Tensor modulated_conv2d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& styles,
                            const ModulatedConvArgs& args);

class SynthesisLayer : public torch::nn::Module {
 public:
  SynthesisLayer(int64_t in_channels, int64_t out_channels, const SynthesisConfig& c, int resolution, int up);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& w, NoiseMode noise_mode, bool fused, double gain = 1.0);

  at::Tensor weight, bias, noise_const, noise_strength, resample_filter;
  // Per-sample noise for NoiseMode::kConst ([N, 1, r, r], or anything broadcastable to the output): replaces
  // noise_const while defined (not a buffer: never saved). The texture projector optimises one noise map per image.
  at::Tensor noise_override;
  std::shared_ptr<FullyConnectedLayer> affine;

 private:
  int resolution_, up_, padding_;
  bool use_noise_;
  kernels::Activation activation_;
  std::optional<double> conv_clamp_;
};

class ToRGBLayer : public torch::nn::Module {
 public:
  ToRGBLayer(int64_t in_channels, int64_t out_channels, int64_t w_dim, std::optional<double> conv_clamp);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& w, bool fused);

  at::Tensor weight, bias;
  std::shared_ptr<FullyConnectedLayer> affine;

 private:
  std::optional<double> conv_clamp_;
  double weight_gain_;
};

class SynthesisBlock : public torch::nn::Module {
 public:
  SynthesisBlock(int64_t in_channels, int64_t out_channels, const SynthesisConfig& c, int resolution, bool is_last,
                 bool use_fp16);
  // ws: [N, num_conv + num_torgb, w_dim]. Returns (x, img).
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& x, const at::Tensor& img, const at::Tensor& ws,
                                            const SynthesisOptions& options);
  int num_conv() const { return num_conv_; }
  int num_torgb() const { return num_torgb_; }

  at::Tensor constant, resample_filter;

 private:
  int64_t in_channels_;
  int resolution_;
  bool is_last_, use_fp16_, channels_last_;
  std::string architecture_;
  int num_conv_ = 0, num_torgb_ = 0;
  std::shared_ptr<SynthesisLayer> conv0_, conv1_;
  std::shared_ptr<ToRGBLayer> torgb_;
  std::shared_ptr<Conv2dLayer> skip_;
};

class SynthesisNetwork : public torch::nn::Module {
 public:
  explicit SynthesisNetwork(const SynthesisConfig& config);
  // ws: [N, num_ws, w_dim] -> image [N, img_channels, R, R], float32, not clipped.
  at::Tensor forward(const at::Tensor& ws, const SynthesisOptions& options = {});
  int num_ws() const { return num_ws_; }
  const SynthesisConfig& config() const { return c_; }

 private:
  SynthesisConfig c_;
  int num_ws_ = 0;
  std::vector<std::shared_ptr<SynthesisBlock>> blocks_;
};

}  // namespace facetex::models::stylegan2
