// RigNet: the StyleRig-style W+ editor of the paper's pose edit (spec §2, §3.3): for a target coefficient vector
// p_edit it predicts the change of the frozen 2D generator's ws that re-renders the face with p_edit's pose.
// Per layer i: l_i = Enc_i(w_i) (Linear 512 -> 32), d_i = Dec_i(cat[l_i, p_edit]) (Linear 32+257 -> 512), with no
// nonlinearity; the latent comes first in the concatenation (spec: `d_i = Dec_i([l_i, p_edit])`).
// Weights: saved_models/rignet_no_trans2_84000.pth (and rignet_exp_only_70000.pth), plain state dicts with
// encoder.{i}.weight [32, 512], encoder.{i}.bias, decoder.{i}.weight [512, 289], decoder.{i}.bias.
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

class RigNet : public torch::nn::Module {
 public:
  static constexpr int64_t kLatentDim = 32;

  explicit RigNet(int64_t num_ws = 18);

  // ws (B, num_ws, 512), p_edit (B, 257) -> delta (B, num_ws, 512); the edited ws are ws + delta. No autograd.
  at::Tensor forward(const at::Tensor& ws, const at::Tensor& p_edit) const;

  int64_t num_ws() const { return static_cast<int64_t>(encoders_.size()); }

 private:
  std::vector<std::shared_ptr<Linear>> encoders_, decoders_;
};

// Builds a RigNet with as many layers as the weights have encoders and loads them; DataError naming the first
// missing or mismatched tensor.
std::shared_ptr<RigNet> load_rig_net(const NetworkWeights& weights, const std::string& context);
std::shared_ptr<RigNet> load_rig_net(const std::filesystem::path& file, const std::string& network = "");

}  // namespace facetex::models::aux
