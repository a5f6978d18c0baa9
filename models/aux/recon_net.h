// ReconNet: Deep3DFaceRecon_pytorch's coefficient regressor, ReconNetWrapper('resnet50') (spec §2, §3.6): a
// torchvision-layout ResNet-50 without its fc (Bottleneck v1.5: the stride sits on the 3x3 conv2; downsample =
// 1x1 conv + BN) under `backbone.`, then seven parallel 1x1 convs with bias `final_layers.{0..6}` producing the
// identity (80), expression (64), texture (80), angle (3), SH (27), txy (2) and tz (1) coefficients, concatenated
// into the 257-vector of spec §3.6. Weights: saved_models/epoch_20.pth, the state dict under its 'net_recon' key.
// BatchNorm always uses running statistics (the network is frozen).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "models/aux/frozen_layers.h"
#include "models/weights/weight_file.h"

namespace facetex::models::aux {

// torchvision's Bottleneck (expansion 4) with an optional downsample branch on the identity.
class Bottleneck : public torch::nn::Module {
 public:
  Bottleneck(int64_t in_channels, int64_t width, int64_t stride, bool downsample);
  at::Tensor forward(const at::Tensor& x) const;

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_, conv3_, down_conv_;
  std::shared_ptr<FrozenBatchNorm2d> bn1_, bn2_, bn3_, down_bn_;
};

// The torchvision ResNet-50 trunk up to the global average pool: (B, 3, H, W) -> (B, 2048, 1, 1).
class ResNet50Backbone : public torch::nn::Module {
 public:
  ResNet50Backbone();
  at::Tensor forward(const at::Tensor& x) const;

 private:
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<FrozenBatchNorm2d> bn1_;
  std::vector<std::shared_ptr<Bottleneck>> blocks_;  // layer1..layer4 in order
};

class ReconNet : public torch::nn::Module {
 public:
  ReconNet();

  // RGB crops (B, 3, 224, 224) in [0, 1], no mean/std normalisation -> coefficients (B, 257). No autograd.
  at::Tensor forward(const at::Tensor& rgb) const;

 private:
  std::shared_ptr<ResNet50Backbone> backbone_;
  std::vector<std::shared_ptr<Conv2d>> final_layers_;
};

// DataError naming the first missing or mismatched tensor.
std::shared_ptr<ReconNet> load_recon_net(const NetworkWeights& weights, const std::string& context);
std::shared_ptr<ReconNet> load_recon_net(const std::filesystem::path& file, const std::string& network = "");

}  // namespace facetex::models::aux
