// LightCNN-29 v2 (light_cnn.py: network_29layers_v2(resblock, [1, 2, 3, 4])), the identity network of the paper's
// recon_test.py (spec §9.1), with the state_dict names of the published checkpoint
// LightCNN_29Layers_V2_checkpoint.pth after `facetex convert torch-state-dict --key state_dict
// --prefix-strip module.` (conv1.filter.*, block1.0.conv1.filter.*, group1.conv_a.filter.*, ..., fc.*, fc2.weight).
//   mfm(conv to 2C, elementwise max of the halves); conv1 mfm(1 -> 48, 5x5) -> pool (max2 + avg2) -> 1 resblock(48)
//   -> group(48 -> 96) -> pool -> 2 resblocks(96) -> group(96 -> 192) -> pool -> 3 resblocks(192) -> group(192 -> 128)
//   -> 4 resblocks(128) -> group(128 -> 128) -> pool -> flatten 8x8x128 -> fc 256 (the feature) -> [dropout] -> fc2.
// The class count of fc2 is read from the weights (80013 for the published file). Inference only.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "models/aux/frozen_layers.h"

namespace facetex::models::aux {

// mfm: a conv (or linear) to 2 * out channels, then the elementwise max of the two halves.
class Mfm : public torch::nn::Module {
 public:
  Mfm(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding);
  at::Tensor forward(const at::Tensor& x) const;

 private:
  std::shared_ptr<Conv2d> filter_;
  int64_t out_;
};

class LightCnn29v2 : public torch::nn::Module {
 public:
  explicit LightCnn29v2(int64_t num_classes = 80013);
  // x: [B, 1, 128, 128] -> the 256-D `fc` feature (before dropout and fc2).
  at::Tensor features(const at::Tensor& x) const;
  // recon_test.py's input: RGB [B, 3, H, W] in [0, 1] -> channel mean -> bilinear resize to 128x128 (torchvision
  // Resize on a tensor, no antialiasing) -> features.
  at::Tensor identity_features(const at::Tensor& rgb01) const;

 private:
  std::shared_ptr<Mfm> conv1_;
  std::vector<std::shared_ptr<Mfm>> res_a_, res_b_;  // resblock conv1/conv2, in block order
  std::vector<int> blocks_ = {1, 2, 3, 4};
  std::shared_ptr<Mfm> group_a_[4], group_[4];
  std::shared_ptr<Linear> fc_, fc2_;
};

// Loads a converted checkpoint (the file's only network group, or `network`); DataError naming the file.
std::shared_ptr<LightCnn29v2> load_light_cnn(const std::filesystem::path& file, const std::string& network = "",
                                             const c10::Device& device = c10::Device("cpu"));

}  // namespace facetex::models::aux
