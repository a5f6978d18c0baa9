#include "models/aux/aux_factory.h"

#include "models/aux/dfr_model.h"
#include "models/aux/mtcnn_nets.h"
#include "models/aux/recon_net.h"
#include "models/aux/rig_net.h"

namespace facetex::models::aux {

namespace {

template <typename Net>
std::shared_ptr<torch::nn::Module> build_and_load(const NetworkWeights& weights, const std::string& context) {
  auto net = std::make_shared<Net>();
  load_network(*net, weights, context);
  return net;
}

}  // namespace

std::shared_ptr<torch::nn::Module> load_aux_network(const NetworkWeights& weights, const std::string& context) {
  const auto dot = weights.class_name.rfind('.');
  const std::string cls = dot == std::string::npos ? weights.class_name : weights.class_name.substr(dot + 1);
  if (cls == "DFRModel") return load_dfr_model(weights, context);
  if (cls == "RigNet") return load_rig_net(weights, context);
  if (cls == "ReconNetWrapper") return build_and_load<ReconNet>(weights, context);
  if (cls == "PNet") return build_and_load<PNet>(weights, context);
  if (cls == "RNet") return build_and_load<RNet>(weights, context);
  if (cls == "ONet") return build_and_load<ONet>(weights, context);
  return nullptr;
}

}  // namespace facetex::models::aux
