// DFRModel: the paper's W+ -> 3DMM coefficient regressor (spec §2, §3.3). It reads the frozen 2D generator's
// ws (B, num_ws, 512) and predicts the 257 Deep3DFaceRecon coefficients of the image those ws synthesise
// (layout in spec §3.6), which the pose edit then modifies. Weights: saved_models/params_1407000.pth, a plain
// state dict (L1.weight [1024, num_ws*512], L1.bias, L2.*, L3.*).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <filesystem>
#include <memory>
#include <string>

#include "models/aux/frozen_layers.h"
#include "models/weights/weight_file.h"

namespace facetex::models::aux {

inline constexpr int64_t kCoefficientCount = 257;  // 80 id + 64 exp + 80 tex + 3 angles + 27 SH + 3 translation
inline constexpr int64_t kWDim = 512;

class DFRModel : public torch::nn::Module {
 public:
  // num_ws: the 2D generator's number of ws (18 for the 1024^2 FFHQ generator; 10 for 64^2 test generators).
  explicit DFRModel(int64_t num_ws = 18);

  // ws (B, num_ws, 512) -> coefficients (B, 257): flatten -> L1 -> ELU -> L2 -> ELU -> L3. No autograd.
  at::Tensor forward(const at::Tensor& ws) const;

  int64_t num_ws() const { return num_ws_; }

 private:
  int64_t num_ws_;
  std::shared_ptr<Linear> l1_, l2_, l3_;
};

// Builds a DFRModel sized by the weights (num_ws from L1.weight) and loads them; DataError naming the first
// missing or mismatched tensor.
std::shared_ptr<DFRModel> load_dfr_model(const NetworkWeights& weights, const std::string& context);
// The same from a converted weight file: its group `network`, or its only group when empty.
std::shared_ptr<DFRModel> load_dfr_model(const std::filesystem::path& file, const std::string& network = "");

}  // namespace facetex::models::aux
