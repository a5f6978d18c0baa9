// The StyleGAN2 discriminator ('resnet' by default; 'orig' and 'skip' build too): FromRGB, per-resolution blocks of
// two 3x3 convolutions (the second downsamples with the FIR filter) with a 1x1 skip (gain sqrt(0.5) on both
// branches), and the epilogue: minibatch standard deviation, conv, FC, FC to one logit.
#pragma once

#include <torch/nn/module.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/stylegan2/layers.h"
#include "models/stylegan2/network_config.h"

namespace facetex::models::stylegan2 {

class DiscriminatorBlock : public torch::nn::Module {
 public:
  DiscriminatorBlock(int64_t in_channels, int64_t tmp_channels, int64_t out_channels, int resolution,
                     const DiscriminatorConfig& c, int first_layer_index, bool use_fp16);
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& x, const at::Tensor& img, bool force_fp32);
  int num_layers() const { return num_layers_; }

  at::Tensor resample_filter;

 private:
  int64_t in_channels_;
  int resolution_;
  std::string architecture_;
  bool use_fp16_, channels_last_;
  int num_layers_ = 0;
  std::shared_ptr<Conv2dLayer> fromrgb_, conv0_, conv1_, skip_;
};

// Appends, per group of `group_size` samples (sample i is in group i mod N/G), the standard deviation over the
// group averaged over channels and pixels, as num_channels extra feature maps.
at::Tensor minibatch_std(const at::Tensor& x, std::optional<int64_t> group_size, int64_t num_channels);

class DiscriminatorEpilogue : public torch::nn::Module {
 public:
  DiscriminatorEpilogue(int64_t in_channels, int resolution, const DiscriminatorConfig& c);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& img);

 private:
  int64_t in_channels_;
  int resolution_;
  std::string architecture_;
  std::optional<int64_t> mbstd_group_size_;
  int64_t mbstd_num_channels_;
  std::shared_ptr<Conv2dLayer> fromrgb_, conv_;
  std::shared_ptr<FullyConnectedLayer> fc_, out_;
};

class Discriminator : public torch::nn::Module {
 public:
  explicit Discriminator(const DiscriminatorConfig& config);
  // img: [N, img_channels, R, R] -> logits [N, 1].
  at::Tensor forward(const at::Tensor& img, bool force_fp32 = false);
  const DiscriminatorConfig& config() const { return c_; }

 private:
  DiscriminatorConfig c_;
  std::vector<std::shared_ptr<DiscriminatorBlock>> blocks_;
  std::shared_ptr<DiscriminatorEpilogue> epilogue_;
};

}  // namespace facetex::models::stylegan2
