// Texture mode with backgrounds from the dataset (DESIGN.md §5, background = dataset): G synthesises a UV texture,
// which is rendered onto the face of a real shard image using that image's annotated geometry (/coeffs, /crop) and
// composited into it; D judges the composite. The frozen-network branch of the paper (background = generated)
// plugs in behind the same interface.
#pragma once

#include <memory>

#include "train/face_renderer.h"
#include "train/generator_pipeline.h"

namespace facetex::train {

class TexturePipeline : public GeneratorPipeline {
 public:
  explicit TexturePipeline(std::shared_ptr<const FaceRenderer> renderer) : renderer_(std::move(renderer)) {}
  GeneratorOutput run(models::stylegan2::Generator& G, const at::Tensor& z, const BatchContext& context,
                      double style_mixing, models::stylegan2::NoiseMode noise) override;
  const char* mode() const override { return "texture"; }

 private:
  std::shared_ptr<const FaceRenderer> renderer_;
};

}  // namespace facetex::train
