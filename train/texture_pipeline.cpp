#include "train/texture_pipeline.h"

#include "core/error.h"

namespace facetex::train {

GeneratorOutput TexturePipeline::run(models::stylegan2::Generator& G, const at::Tensor& z, const BatchContext& ctx,
                                     double style_mixing, models::stylegan2::NoiseMode noise) {
  FACETEX_CHECK_RUNTIME(ctx.backgrounds.defined() && ctx.backgrounds.size(0) == z.size(0),
                        "texture pipeline: {} latents but {} backgrounds", z.size(0),
                        ctx.backgrounds.defined() ? ctx.backgrounds.size(0) : 0);
  GeneratorOutput out;
  out.ws = models::stylegan2::mix_styles(*G.mapping, z, G.mapping->forward(z), style_mixing);
  models::stylegan2::SynthesisOptions o;
  o.noise_mode = noise;
  out.texture = G.synthesis->forward(out.ws, o);
  out.image = renderer_->render_into(out.texture, ctx.coeffs, ctx.crops, ctx.backgrounds);
  return out;
}

}  // namespace facetex::train
