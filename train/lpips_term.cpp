#include "train/lpips_term.h"

#include <fmt/format.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace fs = std::filesystem;

namespace facetex::train {

LpipsTerm::LpipsTerm(const fs::path& file, const c10::Device& device, int64_t chunk, bool freeze_weights)
    : chunk_(chunk) {
  FACETEX_CHECK_USAGE(chunk >= 1, "LPIPS: images per VGG16 pass must be >= 1, got {}", chunk);
  FACETEX_CHECK_DATA(fs::is_regular_file(file), "{}: LPIPS VGG16 TorchScript file not found", file.string());
  try {
    vgg_ = std::make_unique<torch::jit::Module>(torch::jit::load(file.string(), device));
  } catch (const c10::Error& e) {
    throw DataError(fmt::format("{}: not a TorchScript module: {}", file.string(), e.what_without_backtrace()));
  }
  vgg_->eval();
  if (freeze_weights) {
    for (at::Tensor p : vgg_->parameters()) p.set_requires_grad(false);
  }
}

LpipsTerm::~LpipsTerm() = default;

bool LpipsTerm::weights_frozen() const {
  for (const at::Tensor& p : vgg_->parameters()) {
    if (p.requires_grad()) return false;
  }
  return true;
}

at::Tensor LpipsTerm::features(const at::Tensor& images) {
  std::vector<torch::jit::IValue> in{images};
  std::unordered_map<std::string, torch::jit::IValue> kw{{"resize_images", false}, {"return_lpips", true}};
  return vgg_->get_method("forward")(in, kw).toTensor();
}

at::Tensor LpipsTerm::target_features(const at::Tensor& images) {
  at::NoGradGuard ng;
  std::vector<at::Tensor> f;
  for (int64_t b0 = 0; b0 < images.size(0); b0 += chunk_) {
    f.push_back(features(images.narrow(0, b0, std::min(chunk_, images.size(0) - b0))));
  }
  return at::cat(f);
}

at::Tensor LpipsTerm::distance_with_gradient(const at::Tensor& images, const at::Tensor& target_features,
                                             at::Tensor& images_grad) {
  std::vector<at::Tensor> dist, grad;
  for (int64_t b0 = 0; b0 < images.size(0); b0 += chunk_) {
    const int64_t b = std::min(chunk_, images.size(0) - b0);
    const at::Tensor x = images.narrow(0, b0, b).detach().set_requires_grad(true);
    const at::Tensor d = (target_features.narrow(0, b0, b) - features(x)).square().sum(1);
    grad.push_back(torch::autograd::grad({d.sum()}, {x})[0]);
    dist.push_back(d.detach());
  }
  images_grad = at::cat(grad);
  return at::cat(dist);
}

at::Tensor LpipsTerm::distance(const at::Tensor& images, const at::Tensor& target_features) {
  return (target_features - features(images)).square().sum(1);
}

}  // namespace facetex::train
