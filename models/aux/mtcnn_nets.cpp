#include "models/aux/mtcnn_nets.h"

#include <ATen/ATen.h>

#include "core/error.h"
#include "models/aux/weight_group.h"

namespace facetex::models::aux {

namespace {

Conv2dShape conv(int64_t in, int64_t out, int64_t kernel) { return {in, out, kernel, 1, 0, true}; }

// nn.MaxPool2d(kernel, stride, ceil_mode=True): windows may run past the bottom/right edge.
at::Tensor max_pool_ceil(const at::Tensor& x, int64_t kernel, int64_t stride) {
  return at::max_pool2d(x, {kernel, kernel}, {stride, stride}, /*padding=*/{0, 0}, /*dilation=*/{1, 1},
                        /*ceil_mode=*/true);
}

// (N, C, H, W) -> (N, W*H*C) in facenet_pytorch's permute(0, 3, 2, 1) order.
at::Tensor flatten_whc(const at::Tensor& x) { return x.permute({0, 3, 2, 1}).contiguous().flatten(1); }

template <typename Net>
std::shared_ptr<Net> load(const std::filesystem::path& file, const std::string& network) {
  const NetworkGroup group = read_network_group_or_only(file, network);
  auto net = std::make_shared<Net>();
  load_network(*net, group.weights, group.context);
  return net;
}

}  // namespace

PNet::PNet() {
  conv1_ = register_module("conv1", std::make_shared<Conv2d>(conv(3, 10, 3)));
  prelu1_ = register_module("prelu1", std::make_shared<PReLU>(10));
  conv2_ = register_module("conv2", std::make_shared<Conv2d>(conv(10, 16, 3)));
  prelu2_ = register_module("prelu2", std::make_shared<PReLU>(16));
  conv3_ = register_module("conv3", std::make_shared<Conv2d>(conv(16, 32, 3)));
  prelu3_ = register_module("prelu3", std::make_shared<PReLU>(32));
  conv4_1_ = register_module("conv4_1", std::make_shared<Conv2d>(conv(32, 2, 1)));
  conv4_2_ = register_module("conv4_2", std::make_shared<Conv2d>(conv(32, 4, 1)));
}

PNet::Output PNet::forward(const at::Tensor& x) const {
  FACETEX_CHECK_RUNTIME(x.dim() == 4 && x.size(1) == 3 && x.size(2) >= 12 && x.size(3) >= 12,
                        "PNet: input must be [B, 3, H>=12, W>=12], got {}", x.sizes().vec());
  at::NoGradGuard no_grad;
  at::Tensor y = max_pool_ceil(prelu1_->forward(conv1_->forward(x)), 2, 2);
  y = prelu2_->forward(conv2_->forward(y));
  y = prelu3_->forward(conv3_->forward(y));
  return {conv4_2_->forward(y), at::softmax(conv4_1_->forward(y), 1)};
}

RNet::RNet() {
  conv1_ = register_module("conv1", std::make_shared<Conv2d>(conv(3, 28, 3)));
  prelu1_ = register_module("prelu1", std::make_shared<PReLU>(28));
  conv2_ = register_module("conv2", std::make_shared<Conv2d>(conv(28, 48, 3)));
  prelu2_ = register_module("prelu2", std::make_shared<PReLU>(48));
  conv3_ = register_module("conv3", std::make_shared<Conv2d>(conv(48, 64, 2)));
  prelu3_ = register_module("prelu3", std::make_shared<PReLU>(64));
  dense4_ = register_module("dense4", std::make_shared<Linear>(576, 128));
  prelu4_ = register_module("prelu4", std::make_shared<PReLU>(128));
  dense5_1_ = register_module("dense5_1", std::make_shared<Linear>(128, 2));
  dense5_2_ = register_module("dense5_2", std::make_shared<Linear>(128, 4));
}

RNet::Output RNet::forward(const at::Tensor& x) const {
  FACETEX_CHECK_RUNTIME(x.dim() == 4 && x.size(1) == 3 && x.size(2) == 24 && x.size(3) == 24,
                        "RNet: input must be [N, 3, 24, 24], got {}", x.sizes().vec());
  at::NoGradGuard no_grad;
  at::Tensor y = max_pool_ceil(prelu1_->forward(conv1_->forward(x)), 3, 2);
  y = max_pool_ceil(prelu2_->forward(conv2_->forward(y)), 3, 2);
  y = prelu3_->forward(conv3_->forward(y));
  y = prelu4_->forward(dense4_->forward(flatten_whc(y)));
  return {dense5_2_->forward(y), at::softmax(dense5_1_->forward(y), 1)};
}

ONet::ONet() {
  conv1_ = register_module("conv1", std::make_shared<Conv2d>(conv(3, 32, 3)));
  prelu1_ = register_module("prelu1", std::make_shared<PReLU>(32));
  conv2_ = register_module("conv2", std::make_shared<Conv2d>(conv(32, 64, 3)));
  prelu2_ = register_module("prelu2", std::make_shared<PReLU>(64));
  conv3_ = register_module("conv3", std::make_shared<Conv2d>(conv(64, 64, 3)));
  prelu3_ = register_module("prelu3", std::make_shared<PReLU>(64));
  conv4_ = register_module("conv4", std::make_shared<Conv2d>(conv(64, 128, 2)));
  prelu4_ = register_module("prelu4", std::make_shared<PReLU>(128));
  dense5_ = register_module("dense5", std::make_shared<Linear>(1152, 256));
  prelu5_ = register_module("prelu5", std::make_shared<PReLU>(256));
  dense6_1_ = register_module("dense6_1", std::make_shared<Linear>(256, 2));
  dense6_2_ = register_module("dense6_2", std::make_shared<Linear>(256, 4));
  dense6_3_ = register_module("dense6_3", std::make_shared<Linear>(256, 10));
}

ONet::Output ONet::forward(const at::Tensor& x) const {
  FACETEX_CHECK_RUNTIME(x.dim() == 4 && x.size(1) == 3 && x.size(2) == 48 && x.size(3) == 48,
                        "ONet: input must be [N, 3, 48, 48], got {}", x.sizes().vec());
  at::NoGradGuard no_grad;
  at::Tensor y = max_pool_ceil(prelu1_->forward(conv1_->forward(x)), 3, 2);
  y = max_pool_ceil(prelu2_->forward(conv2_->forward(y)), 3, 2);
  y = max_pool_ceil(prelu3_->forward(conv3_->forward(y)), 2, 2);
  y = prelu4_->forward(conv4_->forward(y));
  y = prelu5_->forward(dense5_->forward(flatten_whc(y)));
  return {dense6_2_->forward(y), dense6_3_->forward(y), at::softmax(dense6_1_->forward(y), 1)};
}

std::shared_ptr<PNet> load_pnet(const std::filesystem::path& file, const std::string& network) {
  return load<PNet>(file, network);
}
std::shared_ptr<RNet> load_rnet(const std::filesystem::path& file, const std::string& network) {
  return load<RNet>(file, network);
}
std::shared_ptr<ONet> load_onet(const std::filesystem::path& file, const std::string& network) {
  return load<ONet>(file, network);
}

}  // namespace facetex::models::aux
