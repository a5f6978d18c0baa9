#include "models/aux/rig_net.h"

#include <ATen/ATen.h>

#include "core/error.h"
#include "models/aux/dfr_model.h"
#include "models/aux/weight_group.h"

namespace facetex::models::aux {

RigNet::RigNet(int64_t num_ws) {
  FACETEX_CHECK_USAGE(num_ws >= 1, "RigNet: num_ws must be positive, got {}", num_ws);
  auto encoder = register_list(*this, "encoder");
  auto decoder = register_list(*this, "decoder");
  for (int64_t i = 0; i < num_ws; ++i) {
    encoders_.push_back(encoder->register_module(std::to_string(i), std::make_shared<Linear>(kWDim, kLatentDim)));
    decoders_.push_back(decoder->register_module(std::to_string(i),
                                                 std::make_shared<Linear>(kLatentDim + kCoefficientCount, kWDim)));
  }
}

at::Tensor RigNet::forward(const at::Tensor& ws, const at::Tensor& p_edit) const {
  const int64_t n = num_ws();
  FACETEX_CHECK_RUNTIME(ws.dim() == 3 && ws.size(1) == n && ws.size(2) == kWDim,
                        "RigNet: ws must be [B, {}, {}], got {}", n, kWDim, ws.sizes().vec());
  FACETEX_CHECK_RUNTIME(p_edit.dim() == 2 && p_edit.size(0) == ws.size(0) && p_edit.size(1) == kCoefficientCount,
                        "RigNet: p_edit must be [{}, {}], got {}", ws.size(0), kCoefficientCount,
                        p_edit.sizes().vec());
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> deltas;
  deltas.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    at::Tensor latent = encoders_[i]->forward(ws.select(1, i));
    deltas.push_back(decoders_[i]->forward(at::cat({latent, p_edit}, 1)));
  }
  return at::stack(deltas, 1);
}

std::shared_ptr<RigNet> load_rig_net(const NetworkWeights& weights, const std::string& context) {
  int64_t layers = 0;
  while (weights.find("encoder." + std::to_string(layers) + ".weight") != nullptr) ++layers;
  FACETEX_CHECK_DATA(layers > 0, "{}: encoder.0.weight is missing from the file (not a RigNet state dict?)", context);
  auto net = std::make_shared<RigNet>(layers);
  load_network(*net, weights, context);
  return net;
}

std::shared_ptr<RigNet> load_rig_net(const std::filesystem::path& file, const std::string& network) {
  const NetworkGroup group = read_network_group_or_only(file, network);
  return load_rig_net(group.weights, group.context);
}

}  // namespace facetex::models::aux
