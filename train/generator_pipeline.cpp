#include "train/generator_pipeline.h"

namespace facetex::train {

GeneratorOutput ImagePipeline::run(models::stylegan2::Generator& G, const at::Tensor& z, const BatchContext&,
                                   double style_mixing, models::stylegan2::NoiseMode noise) {
  GeneratorOutput out;
  out.ws = models::stylegan2::mix_styles(*G.mapping, z, G.mapping->forward(z), style_mixing);
  models::stylegan2::SynthesisOptions o;
  o.noise_mode = noise;
  out.image = out.texture = G.synthesis->forward(out.ws, o);
  return out;
}

}  // namespace facetex::train
