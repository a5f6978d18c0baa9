#include "models/aux/light_cnn.h"

#include <ATen/ATen.h>

#include "core/error.h"
#include "models/aux/weight_group.h"

namespace facetex::models::aux {

Mfm::Mfm(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) : out_(out) {
  filter_ = register_module("filter", std::make_shared<Conv2d>(Conv2dShape{in, 2 * out, kernel, stride, padding, true}));
}

at::Tensor Mfm::forward(const at::Tensor& x) const {
  const at::Tensor y = filter_->forward(x);
  return at::maximum(y.narrow(1, 0, out_), y.narrow(1, out_, out_));
}

namespace {
at::Tensor pool(const at::Tensor& x) { return at::max_pool2d(x, {2, 2}) + at::avg_pool2d(x, {2, 2}); }
}  // namespace

LightCnn29v2::LightCnn29v2(int64_t num_classes) {
  conv1_ = register_module("conv1", std::make_shared<Mfm>(1, 48, 5, 1, 2));
  const int64_t in[4] = {48, 96, 192, 128}, out[4] = {96, 192, 128, 128};
  for (int b = 0; b < 4; ++b) {
    auto block = register_module("block" + std::to_string(b + 1), std::make_shared<torch::nn::Module>());
    for (int i = 0; i < blocks_[b]; ++i) {
      auto res = block->register_module(std::to_string(i), std::make_shared<torch::nn::Module>());
      res_a_.push_back(res->register_module("conv1", std::make_shared<Mfm>(in[b], in[b], 3, 1, 1)));
      res_b_.push_back(res->register_module("conv2", std::make_shared<Mfm>(in[b], in[b], 3, 1, 1)));
    }
    auto group = register_module("group" + std::to_string(b + 1), std::make_shared<torch::nn::Module>());
    group_a_[b] = group->register_module("conv_a", std::make_shared<Mfm>(in[b], in[b], 1, 1, 0));
    group_[b] = group->register_module("conv", std::make_shared<Mfm>(in[b], out[b], 3, 1, 1));
  }
  fc_ = register_module("fc", std::make_shared<Linear>(8 * 8 * 128, 256));
  fc2_ = register_module("fc2", std::make_shared<Linear>(256, num_classes, /*bias=*/false));
}

at::Tensor LightCnn29v2::features(const at::Tensor& x_in) const {
  FACETEX_CHECK_USAGE(x_in.dim() == 4 && x_in.size(1) == 1 && x_in.size(2) == 128 && x_in.size(3) == 128,
                      "LightCNN-29v2 needs [B, 1, 128, 128] input");
  at::NoGradGuard no_grad;
  at::Tensor x = pool(conv1_->forward(x_in.to(fc_->weight.device(), at::kFloat)));
  size_t r = 0;
  for (int b = 0; b < 4; ++b) {
    for (int i = 0; i < blocks_[b]; ++i, ++r) x = res_b_[r]->forward(res_a_[r]->forward(x)) + x;
    x = group_[b]->forward(group_a_[b]->forward(x));
    if (b != 2) x = pool(x);  // no pooling between group3 and block4
  }
  return fc_->forward(x.flatten(1));
}

at::Tensor LightCnn29v2::identity_features(const at::Tensor& rgb01) const {
  FACETEX_CHECK_USAGE(rgb01.dim() == 4 && rgb01.size(1) == 3, "identity features need [B, 3, H, W] RGB");
  const at::Tensor gray = rgb01.to(fc_->weight.device(), at::kFloat).mean(1, /*keepdim=*/true);
  return features(at::upsample_bilinear2d(gray, {128, 128}, /*align_corners=*/false));
}

std::shared_ptr<LightCnn29v2> load_light_cnn(const std::filesystem::path& file, const std::string& network,
                                             const c10::Device& device) {
  const NetworkGroup group = read_network_group_or_only(file, network);
  const int64_t classes = tensor_shape(group.weights, "fc2.weight", 2, group.context)[0];
  auto net = std::make_shared<LightCnn29v2>(classes);
  load_network(*net, group.weights, group.context);
  net->to(device);
  net->eval();
  return net;
}

}  // namespace facetex::models::aux
