#include "models/aux/frozen_layers.h"

#include <ATen/ATen.h>

namespace facetex::models::aux {

Linear::Linear(int64_t in_features, int64_t out_features, bool with_bias) {
  weight = register_parameter("weight", at::zeros({out_features, in_features}), /*requires_grad=*/false);
  if (with_bias) bias = register_parameter("bias", at::zeros({out_features}), /*requires_grad=*/false);
}

at::Tensor Linear::forward(const at::Tensor& x) const { return at::linear(x, weight, bias); }

Conv2d::Conv2d(const Conv2dShape& shape) : shape_(shape) {
  weight = register_parameter(
      "weight", at::zeros({shape.out_channels, shape.in_channels, shape.kernel_size, shape.kernel_size}),
      /*requires_grad=*/false);
  if (shape.bias) bias = register_parameter("bias", at::zeros({shape.out_channels}), /*requires_grad=*/false);
}

at::Tensor Conv2d::forward(const at::Tensor& x) const {
  return at::conv2d(x, weight, bias, {shape_.stride, shape_.stride}, {shape_.padding, shape_.padding});
}

FrozenBatchNorm2d::FrozenBatchNorm2d(int64_t channels) {
  weight = register_parameter("weight", at::ones({channels}), /*requires_grad=*/false);
  bias = register_parameter("bias", at::zeros({channels}), /*requires_grad=*/false);
  running_mean = register_buffer("running_mean", at::zeros({channels}));
  running_var = register_buffer("running_var", at::ones({channels}));
  num_batches_tracked = register_buffer("num_batches_tracked", at::zeros({}, at::kLong));
}

at::Tensor FrozenBatchNorm2d::forward(const at::Tensor& x) const {
  return at::batch_norm(x, weight, bias, running_mean, running_var, /*training=*/false, /*momentum=*/0.1,
                        /*eps=*/1e-5, /*cudnn_enabled=*/true);
}

PReLU::PReLU(int64_t channels) {
  weight = register_parameter("weight", at::zeros({channels}), /*requires_grad=*/false);
}

at::Tensor PReLU::forward(const at::Tensor& x) const { return at::prelu(x, weight); }

std::shared_ptr<torch::nn::Module> register_list(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

}  // namespace facetex::models::aux
