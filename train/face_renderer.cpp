#include "train/face_renderer.h"

#include <ATen/ATen.h>

#include "core/error.h"
#include "kernels/rasterize.h"

namespace facetex::train {

namespace f3 = models::face3d;

FaceRenderer::FaceRenderer(f3::MorphableModel model, f3::CameraOptions camera)
    : model_(std::move(model)), layout_(f3::CoeffLayout::for_model(model_)), camera_(camera) {}

void FaceRenderer::to(const at::Device& device) {
  for (at::Tensor* t : {&model_.mean_shape, &model_.id_base, &model_.exp_base, &model_.mean_tex, &model_.tex_base,
                        &model_.triangles, &model_.point_buf, &model_.keypoints, &model_.uv}) {
    if (t->defined()) *t = t->to(device);
  }
}

f3::UvSampling FaceRenderer::sampling(const at::Tensor& coeffs, const at::Tensor& crops, int64_t resolution) const {
  FACETEX_CHECK_RUNTIME(coeffs.dim() == 2 && coeffs.size(1) == layout_.total() && crops.dim() == 2 &&
                            crops.size(1) == 3 && coeffs.size(0) == crops.size(0),
                        "face renderer: coeffs {} / crops {} do not fit a model with {} coefficients",
                        coeffs.sizes().vec(), crops.sizes().vec(), layout_.total());
  at::NoGradGuard no_grad;  // geometry, camera and coverage are not differentiated (spec §3.13)
  const f3::PosedFace face = f3::pose_face(model_, f3::split_coeffs(coeffs.to(at::kFloat), layout_));
  const at::Tensor screen =
      f3::project_to_screen(face.vertices, f3::intrinsics_from_bbox(crops.to(at::kFloat), camera_));
  const kernels::RasterOutput raster = kernels::rasterize(screen, model_.triangles, resolution, resolution);
  return f3::uv_sampling(model_.uv, model_.triangles, raster);
}

f3::Rendered FaceRenderer::render(const at::Tensor& textures, const at::Tensor& coeffs, const at::Tensor& crops,
                                  int64_t resolution) const {
  FACETEX_CHECK_RUNTIME(coeffs.dim() == 2 && coeffs.size(0) == textures.size(0),
                        "face renderer: coeffs {} do not fit {} textures", coeffs.sizes().vec(), textures.size(0));
  return f3::sample_uv_texture(textures, sampling(coeffs, crops, resolution));
}

at::Tensor FaceRenderer::render_into(const at::Tensor& textures, const at::Tensor& coeffs, const at::Tensor& crops,
                                     const at::Tensor& backgrounds) const {
  const f3::Rendered r = render(textures, coeffs, crops, backgrounds.size(2));
  return f3::composite(backgrounds, r.rgb, r.mask);
}

}  // namespace facetex::train
