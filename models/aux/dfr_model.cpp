#include "models/aux/dfr_model.h"

#include <ATen/ATen.h>

#include "core/error.h"
#include "models/aux/weight_group.h"

namespace facetex::models::aux {

namespace {
constexpr int64_t kHidden = 1024;
}

DFRModel::DFRModel(int64_t num_ws) : num_ws_(num_ws) {
  FACETEX_CHECK_USAGE(num_ws >= 1, "DFRModel: num_ws must be positive, got {}", num_ws);
  l1_ = register_module("L1", std::make_shared<Linear>(num_ws * kWDim, kHidden));
  l2_ = register_module("L2", std::make_shared<Linear>(kHidden, kHidden));
  l3_ = register_module("L3", std::make_shared<Linear>(kHidden, kCoefficientCount));
}

at::Tensor DFRModel::forward(const at::Tensor& ws) const {
  FACETEX_CHECK_RUNTIME(ws.dim() == 3 && ws.size(1) == num_ws_ && ws.size(2) == kWDim,
                        "DFRModel: ws must be [B, {}, {}], got {}", num_ws_, kWDim, ws.sizes().vec());
  at::NoGradGuard no_grad;
  at::Tensor x = ws.reshape({ws.size(0), num_ws_ * kWDim});
  x = at::elu(l1_->forward(x));
  x = at::elu(l2_->forward(x));
  return l3_->forward(x);
}

std::shared_ptr<DFRModel> load_dfr_model(const NetworkWeights& weights, const std::string& context) {
  const auto shape = tensor_shape(weights, "L1.weight", 2, context);
  FACETEX_CHECK_DATA(shape[1] % kWDim == 0, "{}: L1.weight has shape {}, its input size is not a multiple of {}",
                     context, shape, kWDim);
  auto model = std::make_shared<DFRModel>(shape[1] / kWDim);
  load_network(*model, weights, context);
  return model;
}

std::shared_ptr<DFRModel> load_dfr_model(const std::filesystem::path& file, const std::string& network) {
  const NetworkGroup group = read_network_group_or_only(file, network);
  return load_dfr_model(group.weights, group.context);
}

}  // namespace facetex::models::aux
