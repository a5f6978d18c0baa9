#include "models/stylegan2/generator.h"

namespace facetex::models::stylegan2 {

Generator::Generator(const GeneratorConfig& config) : c_(config) {
  // Registration order follows the reference (synthesis, then mapping) so state_dict orders agree.
  synthesis = register_module("synthesis", std::make_shared<SynthesisNetwork>(c_.synthesis));
  c_.mapping.num_ws = synthesis->num_ws();
  mapping = register_module("mapping", std::make_shared<MappingNetwork>(c_.mapping));
}

at::Tensor Generator::forward(const at::Tensor& z, const Truncation& truncation, const SynthesisOptions& options) {
  return synthesis->forward(mapping->forward(z, truncation), options);
}

}  // namespace facetex::models::stylegan2
