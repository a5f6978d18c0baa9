// Builds the auxiliary network a weight-file group names in its class_name attribute (recorded with
// `facetex convert torch-state-dict --class-name ...`; state dicts carry no class of their own) and loads it, so
// that `facetex convert` can prove a converted file loads, as it does for StyleGAN2 pickles.
#pragma once

#include <torch/nn/module.h>

#include <memory>
#include <string>

#include "models/weights/weight_file.h"

namespace facetex::models::aux {

// The loaded network for class_name DFRModel, RigNet, ReconNetWrapper, PNet, RNet or ONet (a module path such as
// "models.networks.ReconNetWrapper" works too), or nullptr for any other class. DataError for mismatching tensors.
std::shared_ptr<torch::nn::Module> load_aux_network(const NetworkWeights& weights, const std::string& context);

}  // namespace facetex::models::aux
