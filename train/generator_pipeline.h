// What one generator pass produces for the losses, whatever the model mode:
//   image mode  : G(z) is the image D judges (plain StyleGAN2-ADA; also how the 2D face generator is trained);
//   texture mode: G(z) is a UV texture, rendered onto posed face geometry and composited into a background —
//                 D judges the composite, path-length regularises the texture (paper-system-spec.md §3, §4.3).
// Both share latents, style mixing (one cutoff per batch, fresh latents from randn_like(z)) and noise handling.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>

#include "models/stylegan2/generator.h"

namespace facetex::train {

// Per-batch data the pipeline may need besides z (texture mode: backgrounds and their geometry). Empty in image
// mode.
struct BatchContext {
  at::Tensor backgrounds;  // [B, 3, R, R] in [-1, 1]
  at::Tensor coeffs;       // [B, 257]
  at::Tensor crops;        // [B, 3] (left, up, s)
};

struct GeneratorOutput {
  at::Tensor image;    // what D judges, [B, 3, R, R]
  at::Tensor texture;  // the synthesis output (== image in image mode)
  at::Tensor ws;       // the synthesis input (differentiated by path-length regularisation)
};

class GeneratorPipeline {
 public:
  virtual ~GeneratorPipeline() = default;
  // `style_mixing`: probability of mixing (0 disables). `noise`: the synthesis noise mode.
  virtual GeneratorOutput run(models::stylegan2::Generator& G, const at::Tensor& z, const BatchContext& context,
                              double style_mixing, models::stylegan2::NoiseMode noise) = 0;
  // The image D judges for a given texture/image (for grids): composite in texture mode, identity in image mode.
  virtual const char* mode() const = 0;
};

// Image mode.
class ImagePipeline : public GeneratorPipeline {
 public:
  GeneratorOutput run(models::stylegan2::Generator& G, const at::Tensor& z, const BatchContext& context,
                      double style_mixing, models::stylegan2::NoiseMode noise) override;
  const char* mode() const override { return "image"; }
};

}  // namespace facetex::train
