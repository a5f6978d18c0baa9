// The few torch.nn layers the frozen auxiliary networks (DFR, RigNet, ReconNet, MTCNN) are built from, holding
// their tensors under PyTorch's state_dict names (weight, bias, running_mean, ...) so that converted state dicts
// load by name (models/weights/weight_file.h). They only run inference: BatchNorm always uses its running
// statistics, whatever the module's training flag, because these networks are never trained here and a parent
// calling train() must not switch them to batch statistics.
//
// Parameters start as zeros; the real values come from a weight file.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <memory>
#include <string>

namespace facetex::models::aux {

// torch.nn.Linear: y = x W^T + b.
class Linear : public torch::nn::Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  at::Tensor forward(const at::Tensor& x) const;

  at::Tensor weight, bias;  // [out, in], [out] (undefined without bias)
};

struct Conv2dShape {
  int64_t in_channels = 0, out_channels = 0, kernel_size = 1, stride = 1, padding = 0;
  bool bias = true;
};

// torch.nn.Conv2d with square kernel, stride and padding, no groups or dilation.
class Conv2d : public torch::nn::Module {
 public:
  explicit Conv2d(const Conv2dShape& shape);
  at::Tensor forward(const at::Tensor& x) const;

  at::Tensor weight, bias;  // [out, in, k, k], [out] (undefined without bias)

 private:
  Conv2dShape shape_;
};

// torch.nn.BatchNorm2d in eval mode (eps 1e-5, affine, tracked running statistics). num_batches_tracked is kept
// only because it is part of the state dict.
class FrozenBatchNorm2d : public torch::nn::Module {
 public:
  explicit FrozenBatchNorm2d(int64_t channels);
  at::Tensor forward(const at::Tensor& x) const;

  at::Tensor weight, bias, running_mean, running_var, num_batches_tracked;
};

// torch.nn.PReLU(num_parameters): one learned negative slope per channel (dimension 1).
class PReLU : public torch::nn::Module {
 public:
  explicit PReLU(int64_t channels);
  at::Tensor forward(const at::Tensor& x) const;

  at::Tensor weight;
};

// An empty module to hang numbered children on, giving torch.nn.ModuleList / Sequential names ("encoder.3.weight").
std::shared_ptr<torch::nn::Module> register_list(torch::nn::Module& parent, const std::string& name);

}  // namespace facetex::models::aux
