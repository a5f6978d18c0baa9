#include "models/face3d/canonical_model.h"

#include <ATen/ATen.h>

#include "core/error.h"

namespace facetex::models::face3d {

MorphableModel canonical_morphable_model(const CanonicalMesh& mesh, const std::vector<int64_t>& map68) {
  FACETEX_CHECK_USAGE(map68.size() == 68, "canonical model: the dlib-68 map has {} entries, expected 68", map68.size());
  const int64_t n = mesh.vertices.size(0);
  for (int64_t v : map68) {
    FACETEX_CHECK_DATA(v >= 0 && v < n, "canonical model: the dlib-68 map names vertex {} of a {}-vertex mesh", v, n);
  }
  MorphableModel m;
  m.mean_shape = (mesh.vertices.to(at::kFloat) * kCanonicalModelScale).contiguous();
  m.id_base = at::zeros({3 * n, 1}, at::kFloat);
  m.exp_base = at::zeros({3 * n, 1}, at::kFloat);
  m.mean_tex = at::full({n, 3}, 128.0f);
  m.tex_base = at::zeros({3 * n, 1}, at::kFloat);
  m.triangles = mesh.triangles.to(at::kLong).contiguous();
  m.uv = mesh.uv.to(at::kFloat).contiguous();
  m.keypoints = at::tensor(map68, at::kLong);
  const int64_t f = m.triangles.size(0);
  m.point_buf = at::full({n, 8}, f, at::kLong);
  std::vector<int> used(static_cast<size_t>(n), 0);
  auto tri = m.triangles.accessor<int64_t, 2>();
  auto pb = m.point_buf.accessor<int64_t, 2>();
  for (int64_t t = 0; t < f; ++t) {
    for (int k = 0; k < 3; ++k) {
      const int64_t v = tri[t][k];
      int& u = used[static_cast<size_t>(v)];
      if (u < 8) pb[v][u++] = t;
    }
  }
  return m;
}

}  // namespace facetex::models::face3d
