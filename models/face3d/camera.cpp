#include "models/face3d/camera.h"

#include <ATen/ATen.h>

#include "core/error.h"

namespace facetex::models::face3d {

CameraIntrinsics intrinsics_from_bbox(const at::Tensor& bbox, const CameraOptions& o) {
  FACETEX_CHECK_RUNTIME(bbox.dim() == 2 && bbox.size(1) == 3, "intrinsics_from_bbox: bbox must be [B, 3], got {}",
                        bbox.sizes());
  FACETEX_CHECK_RUNTIME(o.focal > 0 && o.distance > 0 && o.crop.crop_size > 0 && o.crop.rescale_factor > 0,
                        "intrinsics_from_bbox: focal, distance, crop size and rescale factor must be positive");
  // float64 for the arithmetic: the bbox origin can be ~2000 (no-face samples) and 1/s' multiplies small errors.
  const at::Tensor b = bbox.to(at::kDouble);
  const at::Tensor inv_scale = b.select(1, 2) / o.crop.rescale_factor;  // 1/s' = s/rescale
  const double half = static_cast<double>(o.crop.crop_size) / 2.0;
  CameraIntrinsics c;
  c.fx = (o.x_squeeze * o.focal * inv_scale).to(at::kFloat);
  c.fy = (o.focal * inv_scale).to(at::kFloat);
  c.cx = (b.select(1, 0) + half * inv_scale).to(at::kFloat);
  c.cy = (b.select(1, 1) + half * inv_scale).to(at::kFloat);
  c.distance = o.distance;
  return c;
}

at::Tensor project_to_screen(const at::Tensor& vertices, const CameraIntrinsics& camera) {
  FACETEX_CHECK_RUNTIME(vertices.dim() == 3 && vertices.size(2) == 3,
                        "project_to_screen: vertices must be [B, V, 3], got {}", vertices.sizes());
  const int64_t b = vertices.size(0);
  for (const at::Tensor* t : {&camera.fx, &camera.fy, &camera.cx, &camera.cy}) {
    FACETEX_CHECK_RUNTIME(t->defined() && t->dim() == 1 && t->size(0) == b,
                          "project_to_screen: intrinsics must be [B] with B = {}", b);
  }
  const at::Tensor v = vertices.to(at::kFloat);
  auto per_sample = [&](const at::Tensor& t) { return t.to(v.device(), at::kFloat).view({b, 1}); };
  const at::Tensor depth = camera.distance - v.select(2, 2);
  const at::Tensor x = per_sample(camera.cx) + per_sample(camera.fx) * v.select(2, 0) / depth;
  const at::Tensor y = per_sample(camera.cy) - per_sample(camera.fy) * v.select(2, 1) / depth;
  return at::stack({x, y, depth}, 2);
}

}  // namespace facetex::models::face3d
