// Builds the network a weight-file group describes (class_name + init_kwargs) and loads its tensors.
#pragma once

#include <torch/nn/module.h>

#include <memory>
#include <string>

#include "models/weights/weight_file.h"

namespace facetex::models::stylegan2 {

// class_name "Generator", "Discriminator" or "MappingNetwork" (a module path such as
// "training.networks.Generator" works too). UsageError for other classes; DataError for mismatching tensors.
std::shared_ptr<torch::nn::Module> build_and_load(const NetworkWeights& weights, const std::string& context);

int64_t parameter_count(const torch::nn::Module& module);

}  // namespace facetex::models::stylegan2
