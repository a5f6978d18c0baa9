// Generator = MappingNetwork + SynthesisNetwork, built from init_kwargs so published weights load 1:1
// (parameter names as the reference state_dict: mapping.fc0.weight, synthesis.b8.conv0.affine.bias, ...).
#pragma once

#include <torch/nn/module.h>

#include <memory>

#include "models/stylegan2/mapping.h"
#include "models/stylegan2/network_config.h"
#include "models/stylegan2/synthesis.h"

namespace facetex::models::stylegan2 {

class Generator : public torch::nn::Module {
 public:
  explicit Generator(const GeneratorConfig& config);
  at::Tensor forward(const at::Tensor& z, const Truncation& truncation = {}, const SynthesisOptions& options = {});

  const GeneratorConfig& config() const { return c_; }
  int num_ws() const { return synthesis->num_ws(); }
  std::shared_ptr<SynthesisNetwork> synthesis;
  std::shared_ptr<MappingNetwork> mapping;

 private:
  GeneratorConfig c_;
};

}  // namespace facetex::models::stylegan2
