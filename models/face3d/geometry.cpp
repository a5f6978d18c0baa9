#include "models/face3d/geometry.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/error.h"

namespace facetex::models::face3d {
namespace {

constexpr double kPi = 3.14159265358979323846;

void check_batch(const at::Tensor& t, int64_t width, const char* what) {
  FACETEX_CHECK_RUNTIME(t.defined() && t.dim() == 2 && t.size(1) == width, "{}: expected [B, {}], got {}", what, width,
                        t.defined() ? fmt::format("{}", t.sizes()) : std::string("an undefined tensor"));
}

void check_same_device(const at::Tensor& model_tensor, const at::Tensor& input, const char* what) {
  FACETEX_CHECK_RUNTIME(model_tensor.device() == input.device(),
                        "{}: the face model is on {} but the coefficients are on {}; move the model's tensors first",
                        what, model_tensor.device().str(), input.device().str());
}

// F.normalize semantics: x / max(|x|, eps), so a degenerate triangle or an isolated vertex gives 0, not NaN.
at::Tensor normalize_last(const at::Tensor& x) {
  return x / x.norm(2, {-1}, /*keepdim=*/true).clamp_min(1e-12);
}

// mean + basis·coeff for a [3N, K] basis and [B, K] coefficients -> [B, N, 3].
at::Tensor linear_model(const at::Tensor& mean, const at::Tensor& basis, const at::Tensor& coeff) {
  const int64_t n = mean.size(0);
  at::Tensor flat = at::addmm(mean.reshape({1, 3 * n}), coeff.to(basis.scalar_type()), basis.t());
  return flat.reshape({coeff.size(0), n, 3});
}

}  // namespace

CoeffLayout CoeffLayout::for_model(const MorphableModel& model) {
  CoeffLayout l;
  l.id = model.id_base.size(1);
  l.exp = model.exp_base.size(1);
  l.tex = model.tex_base.size(1);
  return l;
}

Coeffs split_coeffs(const at::Tensor& coeffs, const CoeffLayout& layout) {
  check_batch(coeffs, layout.total(), "split_coeffs");
  Coeffs c;
  int64_t offset = 0;
  auto take = [&](int64_t width) {
    at::Tensor slice = coeffs.narrow(1, offset, width);
    offset += width;
    return slice;
  };
  c.id = take(layout.id);
  c.exp = take(layout.exp);
  c.tex = take(layout.tex);
  c.angles = take(layout.angles);
  c.light = take(layout.light);
  c.trans = take(layout.trans);
  return c;
}

at::Tensor join_coeffs(const Coeffs& c) { return at::cat({c.id, c.exp, c.tex, c.angles, c.light, c.trans}, 1); }

at::Tensor shape_formation(const MorphableModel& model, const at::Tensor& id, const at::Tensor& exp) {
  check_batch(id, model.id_base.size(1), "shape_formation (identity coefficients)");
  check_batch(exp, model.exp_base.size(1), "shape_formation (expression coefficients)");
  FACETEX_CHECK_RUNTIME(id.size(0) == exp.size(0), "shape_formation: batch sizes differ ({} vs {})", id.size(0),
                        exp.size(0));
  check_same_device(model.id_base, id, "shape_formation");
  const int64_t n = model.num_vertices();
  at::Tensor flat = at::addmm(model.mean_shape.reshape({1, 3 * n}), id.to(model.id_base.scalar_type()),
                              model.id_base.t());
  flat = at::addmm(flat, exp.to(model.exp_base.scalar_type()), model.exp_base.t());
  return flat.reshape({id.size(0), n, 3}) - model.mean_shape.mean(0, /*keepdim=*/true).unsqueeze(0);
}

at::Tensor texture_formation(const MorphableModel& model, const at::Tensor& tex) {
  check_batch(tex, model.tex_base.size(1), "texture_formation");
  check_same_device(model.tex_base, tex, "texture_formation");
  return linear_model(model.mean_tex, model.tex_base, tex);
}

at::Tensor rotation_matrices(const at::Tensor& angles) {
  check_batch(angles, 3, "rotation_matrices");
  const at::Tensor cx = angles.select(1, 0).cos(), sx = angles.select(1, 0).sin();
  const at::Tensor cy = angles.select(1, 1).cos(), sy = angles.select(1, 1).sin();
  const at::Tensor cz = angles.select(1, 2).cos(), sz = angles.select(1, 2).sin();
  const at::Tensor one = at::ones_like(cx), zero = at::zeros_like(cx);
  auto mat = [](std::initializer_list<at::Tensor> rows) {
    return at::stack(std::vector<at::Tensor>(rows), 1).reshape({-1, 3, 3});
  };
  const at::Tensor rx = mat({one, zero, zero, zero, cx, -sx, zero, sx, cx});
  const at::Tensor ry = mat({cy, zero, sy, zero, one, zero, -sy, zero, cy});
  const at::Tensor rz = mat({cz, -sz, zero, sz, cz, zero, zero, zero, one});
  return at::bmm(rz, at::bmm(ry, rx));
}

at::Tensor rigid_transform(const at::Tensor& points, const at::Tensor& rotation, const at::Tensor& translation) {
  FACETEX_CHECK_RUNTIME(points.dim() == 3 && points.size(2) == 3, "rigid_transform: points must be [B, N, 3], got {}",
                        points.sizes());
  FACETEX_CHECK_RUNTIME(rotation.dim() == 3 && rotation.size(0) == points.size(0) && rotation.size(1) == 3 &&
                            rotation.size(2) == 3,
                        "rigid_transform: rotation must be [B, 3, 3] with B = {}, got {}", points.size(0),
                        rotation.sizes());
  at::Tensor out = at::bmm(points, rotation.transpose(1, 2));
  if (translation.defined()) {
    check_batch(translation, 3, "rigid_transform (translation)");
    out = out + translation.unsqueeze(1);
  }
  return out;
}

at::Tensor face_normals(const at::Tensor& vertices, const at::Tensor& triangles) {
  FACETEX_CHECK_RUNTIME(vertices.dim() == 3 && vertices.size(2) == 3, "face_normals: vertices must be [B, N, 3]");
  FACETEX_CHECK_RUNTIME(triangles.dim() == 2 && triangles.size(1) == 3, "face_normals: triangles must be [F, 3]");
  const at::Tensor tri = triangles.to(vertices.device(), at::kLong);
  const at::Tensor v1 = vertices.index_select(1, tri.select(1, 0));
  const at::Tensor v2 = vertices.index_select(1, tri.select(1, 1));
  const at::Tensor v3 = vertices.index_select(1, tri.select(1, 2));
  return normalize_last(at::cross(v1 - v2, v2 - v3, /*dim=*/-1));
}

at::Tensor vertex_normals(const at::Tensor& face_normals, const at::Tensor& point_buf) {
  FACETEX_CHECK_RUNTIME(face_normals.dim() == 3 && face_normals.size(2) == 3,
                        "vertex_normals: face normals must be [B, F, 3]");
  FACETEX_CHECK_RUNTIME(point_buf.dim() == 2, "vertex_normals: point_buf must be [N, K]");
  const int64_t b = face_normals.size(0), n = point_buf.size(0), k = point_buf.size(1);
  // Slot F holds a zero normal, so padding entries add nothing.
  const at::Tensor padded = at::cat({face_normals, at::zeros({b, 1, 3}, face_normals.options())}, 1);
  const at::Tensor ids = point_buf.to(face_normals.device(), at::kLong).reshape({-1});
  const at::Tensor summed = padded.index_select(1, ids).reshape({b, n, k, 3}).sum(2);
  return normalize_last(summed);
}

at::Tensor sh_shading(const at::Tensor& normals, const at::Tensor& light) {
  FACETEX_CHECK_RUNTIME(normals.dim() == 3 && normals.size(2) == 3, "sh_shading: normals must be [B, N, 3]");
  check_batch(light, 27, "sh_shading (light)");
  const int64_t b = normals.size(0);
  FACETEX_CHECK_RUNTIME(light.size(0) == b, "sh_shading: batch sizes differ ({} vs {})", b, light.size(0));
  // Deep3DFaceRecon's initial light: ambient 0.8 on the constant band of every channel.
  at::Tensor gamma = light.reshape({b, 3, 9});
  at::Tensor init = at::zeros({9}, gamma.options());
  init[0] = 0.8;
  gamma = gamma + init;
  const double a0 = kPi, a1 = 2 * kPi / std::sqrt(3.0), a2 = 2 * kPi / std::sqrt(8.0);
  const double c0 = 1 / std::sqrt(4 * kPi), c1 = std::sqrt(3.0) / std::sqrt(4 * kPi),
               c2 = 3 * std::sqrt(5.0) / std::sqrt(12 * kPi);
  const at::Tensor nx = normals.select(2, 0), ny = normals.select(2, 1), nz = normals.select(2, 2);
  const at::Tensor y = at::stack({at::full_like(nx, a0 * c0), -a1 * c1 * ny, a1 * c1 * nz, -a1 * c1 * nx,
                                  a2 * c2 * nx * ny, -a2 * c2 * ny * nz,
                                  a2 * c2 * 0.5 / std::sqrt(3.0) * (3 * nz.square() - 1), -a2 * c2 * nx * nz,
                                  a2 * c2 * 0.5 * (nx.square() - ny.square())},
                                 2);  // [B, N, 9]
  return at::bmm(y, gamma.to(y.scalar_type()).transpose(1, 2));
}

PosedFace pose_face(const MorphableModel& model, const Coeffs& coeffs) {
  PosedFace p;
  p.shape = shape_formation(model, coeffs.id, coeffs.exp);
  p.rotation = rotation_matrices(coeffs.angles.to(p.shape.scalar_type()));
  p.vertices = rigid_transform(p.shape, p.rotation, coeffs.trans.to(p.shape.scalar_type()));
  return p;
}

}  // namespace facetex::models::face3d
