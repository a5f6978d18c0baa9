#include "models/stylegan2/factory.h"

#include "core/error.h"
#include "models/stylegan2/discriminator.h"
#include "models/stylegan2/generator.h"

namespace facetex::models::stylegan2 {

std::shared_ptr<torch::nn::Module> build_and_load(const NetworkWeights& weights, const std::string& context) {
  std::string cls = weights.class_name;
  if (auto dot = cls.rfind('.'); dot != std::string::npos) cls = cls.substr(dot + 1);
  std::shared_ptr<torch::nn::Module> net;
  if (cls == "Generator") {
    net = std::make_shared<Generator>(parse_generator_config(weights.init_kwargs, context));
  } else if (cls == "Discriminator") {
    net = std::make_shared<Discriminator>(parse_discriminator_config(weights.init_kwargs, context));
  } else if (cls == "MappingNetwork") {
    net = std::make_shared<MappingNetwork>(parse_mapping_config(weights.init_kwargs, context));
  } else {
    throw UsageError(fmt::format("{}: class '{}' is not a StyleGAN2 network (Generator, Discriminator, MappingNetwork)",
                                 context, weights.class_name));
  }
  load_network(*net, weights, context);
  return net;
}

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters(true)) n += p.numel();
  return n;
}

}  // namespace facetex::models::stylegan2
