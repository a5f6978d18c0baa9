#include "models/stylegan2/factory.h"

#include "core/error.h"
#include "models/stylegan2/discriminator.h"
#include "models/stylegan2/generator.h"

namespace facetex::models::stylegan2 {

std::shared_ptr<torch::nn::Module> build_and_load(const NetworkWeights& weights, const std::string& context) {
  std::string cls = weights.class_name;
  if (auto dot = cls.rfind('.'); dot != std::string::npos) cls = cls.substr(dot + 1);
  // The constructors check what init_kwargs ask for (channel counts, activations): in a file, a data error.
  std::shared_ptr<torch::nn::Module> net = as_data_errors(context, [&]() -> std::shared_ptr<torch::nn::Module> {
    if (cls == "Generator") return std::make_shared<Generator>(parse_generator_config(weights.init_kwargs, context));
    if (cls == "Discriminator") {
      return std::make_shared<Discriminator>(parse_discriminator_config(weights.init_kwargs, context));
    }
    if (cls == "MappingNetwork") {
      return std::make_shared<MappingNetwork>(parse_mapping_config(weights.init_kwargs, context));
    }
    throw DataError(fmt::format("{}: class '{}' is not a StyleGAN2 network (Generator, Discriminator, MappingNetwork)",
                                context, weights.class_name));
  });
  load_network(*net, weights, context);
  return net;
}

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters(true)) n += p.numel();
  return n;
}

}  // namespace facetex::models::stylegan2
