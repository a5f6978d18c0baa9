// The three networks of facenet_pytorch's MTCNN face detector (timesler/facenet-pytorch models/mtcnn.py), with its
// state_dict names (conv1, prelu1, ..., conv4_1, dense5_2, ...) so that its bundled data/pnet.pt, rnet.pt and
// onet.pt load after `facetex convert torch-state-dict`. Probabilities are softmaxed over the two classes
// (index 1 = face). RNet/ONet flatten their last feature map in (W, H, C) order, as facenet_pytorch does with
// permute(0, 3, 2, 1) before the dense layers (the weights were ported from Caffe/TF in that order).
// All outputs are computed without autograd.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <filesystem>
#include <memory>
#include <string>

#include "models/aux/frozen_layers.h"
#include "models/weights/weight_file.h"

namespace facetex::models::aux {

// Proposal net, fully convolutional: (B, 3, H, W) normalised -> box regression (B, 4, h, w) and face probability
// (B, 2, h, w), h = ceil((H - 2) / 2) - 4 (one output per 12x12 window at stride 2).
class PNet : public torch::nn::Module {
 public:
  PNet();
  struct Output {
    at::Tensor regression, probability;
  };
  Output forward(const at::Tensor& x) const;

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_, conv3_, conv4_1_, conv4_2_;
  std::shared_ptr<PReLU> prelu1_, prelu2_, prelu3_;
};

// Refinement net: (N, 3, 24, 24) -> regression (N, 4), probability (N, 2).
class RNet : public torch::nn::Module {
 public:
  RNet();
  struct Output {
    at::Tensor regression, probability;
  };
  Output forward(const at::Tensor& x) const;

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_, conv3_;
  std::shared_ptr<PReLU> prelu1_, prelu2_, prelu3_, prelu4_;
  std::shared_ptr<Linear> dense4_, dense5_1_, dense5_2_;
};

// Output net: (N, 3, 48, 48) -> regression (N, 4), landmarks (N, 10: five x then five y, relative to the box),
// probability (N, 2).
class ONet : public torch::nn::Module {
 public:
  ONet();
  struct Output {
    at::Tensor regression, landmarks, probability;
  };
  Output forward(const at::Tensor& x) const;

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_, conv3_, conv4_;
  std::shared_ptr<PReLU> prelu1_, prelu2_, prelu3_, prelu4_, prelu5_;
  std::shared_ptr<Linear> dense5_, dense6_1_, dense6_2_, dense6_3_;
};

// Each from a converted weight file (its group `network`, or its only group when empty); DataError naming the first
// missing or mismatched tensor.
std::shared_ptr<PNet> load_pnet(const std::filesystem::path& file, const std::string& network = "");
std::shared_ptr<RNet> load_rnet(const std::filesystem::path& file, const std::string& network = "");
std::shared_ptr<ONet> load_onet(const std::filesystem::path& file, const std::string& network = "");

}  // namespace facetex::models::aux
