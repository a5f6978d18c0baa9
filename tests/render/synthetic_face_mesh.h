// A dense face-like test mesh and the spec's camera, for the renderer tests and bench/bench_render.cpp (the real
// BFM mesh and the face3d camera are not needed to exercise the rasteriser): a regular grid over an ellipse-sized
// patch bent into a half-ellipsoid with a nose bump, planar UVs, and the pinhole camera at z = 10 of
// paper-system-spec.md §3.8 (u = cx + f X / (10 - Z), v = cy - f Y / (10 - Z), depth 10 - Z).
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace facetex::test {

struct FaceMesh {
  at::Tensor vertices;  // [V, 3] float32, model space (x right, y up, z towards the camera), about +-1
  at::Tensor uv;        // [V, 2] float32, u right, v up
  at::Tensor faces;     // [F, 3] int64
};

// n x n vertices, 2 (n - 1)^2 triangles (n = 189: 35,721 / 70,688, the size of the BFM front face with its
// 35,709 vertices and 70,789 triangles). Adjacent triangles alternate the diagonal, and every other row is wound
// the other way, so both windings and both diagonal directions occur.
inline FaceMesh make_face_mesh(int64_t n) {
  const at::Tensor t = at::linspace(-1.0, 1.0, n, at::kDouble);
  const at::Tensor gy = t.view({n, 1}).expand({n, n}), gx = t.view({1, n}).expand({n, n});
  const at::Tensor r2 = (gx * gx + gy * gy).clamp_max(1.0);
  // A half-ellipsoid of depth 0.6 plus a nose bump in the middle.
  const at::Tensor z = 0.6 * (1.0 - r2).sqrt() + 0.25 * at::exp(-(gx * gx + (gy + 0.1) * (gy + 0.1)) / 0.02);
  FaceMesh m;
  m.vertices = at::stack({gx * 0.85, gy, z}, 2).reshape({n * n, 3}).to(at::kFloat);
  m.uv = at::stack({(gx + 1) / 2, (gy + 1) / 2}, 2).reshape({n * n, 2}).to(at::kFloat);
  at::Tensor faces = at::empty({2 * (n - 1) * (n - 1), 3}, at::kLong);
  auto f = faces.accessor<int64_t, 2>();
  int64_t k = 0;
  for (int64_t r = 0; r + 1 < n; ++r) {
    for (int64_t c = 0; c + 1 < n; ++c) {
      const int64_t a = r * n + c, b = a + 1, d = a + n, e = d + 1;
      const bool flip_diagonal = (r + c) % 2 == 1, flip_winding = r % 2 == 1;
      int64_t tri[2][3] = {{a, b, e}, {a, e, d}};
      if (flip_diagonal) {
        const int64_t other[2][3] = {{a, b, d}, {b, e, d}};
        for (int i = 0; i < 2; ++i)
          for (int j = 0; j < 3; ++j) tri[i][j] = other[i][j];
      }
      for (int i = 0; i < 2; ++i, ++k) {
        f[k][0] = tri[i][0];
        f[k][1] = flip_winding ? tri[i][2] : tri[i][1];
        f[k][2] = flip_winding ? tri[i][1] : tri[i][2];
      }
    }
  }
  m.faces = faces;
  return m;
}

// Screen vertices [B, V, 3] for the mesh turned by yaw_degrees[b] about the vertical axis and viewed by the spec's
// camera (at z = 10, focal length 2.3 image widths / 10 units, so the face spans about 40% of the width).
inline at::Tensor project_face(const at::Tensor& vertices, const std::vector<double>& yaw_degrees, int64_t height,
                               int64_t width) {
  std::vector<at::Tensor> views;
  const at::Tensor v = vertices.to(at::kDouble);
  for (double yaw : yaw_degrees) {
    const double a = yaw * M_PI / 180.0;
    const at::Tensor x = v.select(1, 0) * std::cos(a) + v.select(1, 2) * std::sin(a);
    const at::Tensor y = v.select(1, 1);
    const at::Tensor z = -v.select(1, 0) * std::sin(a) + v.select(1, 2) * std::cos(a);
    const at::Tensor depth = 10.0 - z;
    const double f = 2.3 * static_cast<double>(width);
    views.push_back(at::stack({width / 2.0 + f * x / depth, height / 2.0 - f * y / depth, depth}, 1));
  }
  return at::stack(views, 0).to(at::kFloat);
}

}  // namespace facetex::test
