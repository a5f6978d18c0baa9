// MappingNetwork: z -> (2nd-moment normalisation) -> num_layers FC layers (lr multiplier 0.01) -> w, broadcast to
// num_ws, with the running average w_avg (used by truncation) updated in training mode.
#pragma once

#include <torch/nn/module.h>

#include <memory>
#include <optional>
#include <vector>

#include "models/stylegan2/layers.h"
#include "models/stylegan2/network_config.h"

namespace facetex::models::stylegan2 {

struct Truncation {
  double psi = 1.0;
  std::optional<int64_t> cutoff;  // none: all ws
};

class MappingNetwork : public torch::nn::Module {
 public:
  explicit MappingNetwork(const MappingConfig& config);
  // z: [N, z_dim] -> ws: [N, num_ws, w_dim] (or [N, w_dim] when num_ws = 0).
  at::Tensor forward(const at::Tensor& z, const Truncation& truncation = {}, bool skip_w_avg_update = false);

  const MappingConfig& config() const { return c_; }
  at::Tensor w_avg;

 private:
  MappingConfig c_;
  std::vector<std::shared_ptr<FullyConnectedLayer>> fc_;
};

// Style mixing as the reference's training loss does it: with probability `prob` a cutoff in [1, num_ws) is drawn
// and ws[:, cutoff:] is replaced by the ws of fresh latents (mapped without updating w_avg). The random draws
// (random_(1, num_ws), rand(), randn_like(z)) happen in the reference's order, so a seeded run draws the same
// numbers as PyTorch does.
at::Tensor mix_styles(MappingNetwork& mapping, const at::Tensor& z, const at::Tensor& ws, double prob);

}  // namespace facetex::models::stylegan2
