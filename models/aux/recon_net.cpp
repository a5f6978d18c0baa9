#include "models/aux/recon_net.h"

#include <ATen/ATen.h>

#include <array>

#include "core/error.h"
#include "models/aux/weight_group.h"

namespace facetex::models::aux {

namespace {

constexpr int64_t kExpansion = 4;
constexpr int64_t kBackboneChannels = 512 * kExpansion;
// Channels of final_layers.{0..6}: id, exp, tex, angles, SH, (tx, ty), tz. They sum to 257.
constexpr std::array<int64_t, 7> kHeadChannels = {80, 64, 80, 3, 27, 2, 1};

Conv2dShape conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, bool bias = false) {
  return {in, out, kernel, stride, kernel / 2, bias};
}

}  // namespace

Bottleneck::Bottleneck(int64_t in_channels, int64_t width, int64_t stride, bool downsample) {
  const int64_t out = width * kExpansion;
  conv1_ = register_module("conv1", std::make_shared<Conv2d>(conv(in_channels, width, 1, 1)));
  bn1_ = register_module("bn1", std::make_shared<FrozenBatchNorm2d>(width));
  conv2_ = register_module("conv2", std::make_shared<Conv2d>(conv(width, width, 3, stride)));
  bn2_ = register_module("bn2", std::make_shared<FrozenBatchNorm2d>(width));
  conv3_ = register_module("conv3", std::make_shared<Conv2d>(conv(width, out, 1, 1)));
  bn3_ = register_module("bn3", std::make_shared<FrozenBatchNorm2d>(out));
  if (downsample) {
    auto seq = register_list(*this, "downsample");  // nn.Sequential(conv1x1, BatchNorm2d)
    down_conv_ = seq->register_module("0", std::make_shared<Conv2d>(conv(in_channels, out, 1, stride)));
    down_bn_ = seq->register_module("1", std::make_shared<FrozenBatchNorm2d>(out));
  }
}

at::Tensor Bottleneck::forward(const at::Tensor& x) const {
  at::Tensor y = at::relu(bn1_->forward(conv1_->forward(x)));
  y = at::relu(bn2_->forward(conv2_->forward(y)));
  y = bn3_->forward(conv3_->forward(y));
  const at::Tensor identity = down_conv_ ? down_bn_->forward(down_conv_->forward(x)) : x;
  return at::relu(y + identity);
}

ResNet50Backbone::ResNet50Backbone() {
  conv1_ = register_module("conv1", std::make_shared<Conv2d>(conv(3, 64, 7, 2)));
  bn1_ = register_module("bn1", std::make_shared<FrozenBatchNorm2d>(64));
  constexpr std::array<int64_t, 4> kBlocks = {3, 4, 6, 3};
  int64_t in = 64;
  for (int layer = 0; layer < 4; ++layer) {
    auto seq = register_list(*this, "layer" + std::to_string(layer + 1));
    const int64_t width = 64 << layer;
    for (int64_t b = 0; b < kBlocks[layer]; ++b) {
      const int64_t stride = (layer > 0 && b == 0) ? 2 : 1;
      const bool downsample = b == 0;  // layer1 too: 64 -> 256 channels
      blocks_.push_back(seq->register_module(std::to_string(b),
                                             std::make_shared<Bottleneck>(in, width, stride, downsample)));
      in = width * kExpansion;
    }
  }
}

at::Tensor ResNet50Backbone::forward(const at::Tensor& x) const {
  at::Tensor y = at::relu(bn1_->forward(conv1_->forward(x)));
  y = at::max_pool2d(y, /*kernel_size=*/{3, 3}, /*stride=*/{2, 2}, /*padding=*/{1, 1});
  for (const auto& block : blocks_) y = block->forward(y);
  return at::adaptive_avg_pool2d(y, {1, 1});
}

ReconNet::ReconNet() {
  backbone_ = register_module("backbone", std::make_shared<ResNet50Backbone>());
  auto heads = register_list(*this, "final_layers");
  for (size_t i = 0; i < kHeadChannels.size(); ++i) {
    final_layers_.push_back(heads->register_module(
        std::to_string(i), std::make_shared<Conv2d>(conv(kBackboneChannels, kHeadChannels[i], 1, 1, /*bias=*/true))));
  }
}

at::Tensor ReconNet::forward(const at::Tensor& rgb) const {
  FACETEX_CHECK_RUNTIME(rgb.dim() == 4 && rgb.size(1) == 3, "ReconNet: input must be [B, 3, H, W] RGB, got {}",
                        rgb.sizes().vec());
  at::NoGradGuard no_grad;
  const at::Tensor features = backbone_->forward(rgb);
  std::vector<at::Tensor> heads;
  for (const auto& head : final_layers_) heads.push_back(head->forward(features));
  return at::cat(heads, 1).flatten(1);
}

std::shared_ptr<ReconNet> load_recon_net(const NetworkWeights& weights, const std::string& context) {
  auto net = std::make_shared<ReconNet>();
  load_network(*net, weights, context);
  return net;
}

std::shared_ptr<ReconNet> load_recon_net(const std::filesystem::path& file, const std::string& network) {
  const NetworkGroup group = read_network_group_or_only(file, network);
  return load_recon_net(group.weights, group.context);
}

}  // namespace facetex::models::aux
