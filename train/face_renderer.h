// Renders UV textures onto posed morphable-model faces and composites them into backgrounds — the part of the
// paper's run_G_3D after the geometry is known (spec §3.7-3.10): shape from identity/expression coefficients, pose,
// the 224-protocol perspective camera given by each image's crop box, hard rasterisation, bilinear UV sampling
// (the only differentiable input is the texture) and a per-sample hard composite. Used by training (texture mode),
// the synthetic world and reconstruction.
#pragma once

#include <ATen/core/Tensor.h>

#include "models/face3d/camera.h"
#include "models/face3d/geometry.h"
#include "models/face3d/morphable_model.h"
#include "models/face3d/renderer.h"

namespace facetex::train {

class FaceRenderer {
 public:
  FaceRenderer(models::face3d::MorphableModel model, models::face3d::CameraOptions camera = {});

  // Moves the model's tensors (geometry runs where the textures are).
  void to(const at::Device& device);

  // textures: [B, 3, T, T] in [-1, 1]; coeffs: [B, K] (the model's layout); crops: [B, 3] (left, up, s) in the
  // frame of a `resolution` x `resolution` image. Geometry and rasterisation run without gradient.
  models::face3d::Rendered render(const at::Tensor& textures, const at::Tensor& coeffs, const at::Tensor& crops,
                                  int64_t resolution) const;
  // The texture-independent half of render(): pose, camera, rasterisation and each pixel's UV position, for
  // models::face3d::sample_uv_texture — once per batch where only the textures change (projection).
  models::face3d::UvSampling sampling(const at::Tensor& coeffs, const at::Tensor& crops, int64_t resolution) const;
  // render() composited into `backgrounds` ([B, 3, R, R]) with each sample's own mask.
  at::Tensor render_into(const at::Tensor& textures, const at::Tensor& coeffs, const at::Tensor& crops,
                         const at::Tensor& backgrounds) const;

  const models::face3d::MorphableModel& model() const { return model_; }
  const models::face3d::CoeffLayout& layout() const { return layout_; }

 private:
  models::face3d::MorphableModel model_;
  models::face3d::CoeffLayout layout_;
  models::face3d::CameraOptions camera_;
};

}  // namespace facetex::train
