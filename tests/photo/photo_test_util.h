// Helpers shared by the photo front-end tests: a synthetic face-like mesh with UVs, poses, and a reference
// renderer of a UV texture through the image-space z-buffer (independent of the unwrap's sampling code).
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "models/face3d/uv_unwrap.h"

namespace facetex::test::photo {

using Mat3 = std::array<std::array<double, 3>, 3>;

// A 14 x 14 cm height field (y up, z towards the viewer) with a cheek dome and a nose bump; UV = planar (x, y)
// projection, v up; triangles counter-clockwise seen from +z (the canonical mesh's winding).
struct SyntheticMesh {
  at::Tensor vertices, uv, triangles;
};
inline SyntheticMesh make_synthetic_mesh(int n = 33) {
  SyntheticMesh m;
  m.vertices = at::empty({n * n, 3}, at::kFloat);
  m.uv = at::empty({n * n, 2}, at::kFloat);
  auto v = m.vertices.accessor<float, 2>();
  auto uv = m.uv.accessor<float, 2>();
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      const double u = j / double(n - 1), w = i / double(n - 1);
      const double x = -7 + 14 * u, y = -7 + 14 * w;
      const double z = 4.0 * std::exp(-(x * x + y * y) / 40.0) + 2.5 * std::exp(-(x * x + (y + 0.5) * (y + 0.5)) / 1.2);
      v[i * n + j][0] = float(x);
      v[i * n + j][1] = float(y);
      v[i * n + j][2] = float(z);
      uv[i * n + j][0] = float(u);
      uv[i * n + j][1] = float(w);
    }
  }
  std::vector<int64_t> t;
  for (int i = 0; i + 1 < n; ++i) {
    for (int j = 0; j + 1 < n; ++j) {
      const int64_t a = i * n + j, b = a + 1, c = a + n, d = c + 1;  // a=(x,y) b=(x+,y) c=(x,y+) d=(x+,y+)
      t.insert(t.end(), {a, b, d, a, d, c});
    }
  }
  m.triangles = at::tensor(t, at::kLong).view({-1, 3});
  return m;
}

// R = diag(1,-1,-1)·Rz(roll)·Ry(yaw)·Rx(pitch): the PoseFit convention (mesh y up -> image y down).
inline Mat3 pose_rotation(double yaw_deg, double pitch_deg, double roll_deg) {
  const double d = 3.14159265358979323846 / 180;
  const double y = yaw_deg * d, p = pitch_deg * d, r = roll_deg * d;
  const Mat3 rz{{{std::cos(r), -std::sin(r), 0}, {std::sin(r), std::cos(r), 0}, {0, 0, 1}}};
  const Mat3 ry{{{std::cos(y), 0, std::sin(y)}, {0, 1, 0}, {-std::sin(y), 0, std::cos(y)}}};
  const Mat3 rx{{{1, 0, 0}, {0, std::cos(p), -std::sin(p)}, {0, std::sin(p), std::cos(p)}}};
  auto mul = [](const Mat3& a, const Mat3& b) {
    Mat3 c{};
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j)
        for (int k = 0; k < 3; ++k) c[i][j] += a[i][k] * b[k][j];
    return c;
  };
  Mat3 g = mul(rz, mul(ry, rx));
  for (int j = 0; j < 3; ++j) {
    g[1][j] = -g[1][j];
    g[2][j] = -g[2][j];
  }
  return g;
}

// A smooth RGB texture [3, R, R] uint8.
inline at::Tensor make_texture(int R) {
  at::Tensor t = at::empty({3, R, R}, at::kByte);
  auto a = t.accessor<uint8_t, 3>();
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < R; ++y)
      for (int x = 0; x < R; ++x) {
        const double v = 128 + 90 * std::sin(6.2832 * (2.0 * x / R + c / 3.0)) * std::cos(6.2832 * 1.5 * y / R) +
                         30 * std::sin(6.2832 * (x + y) / R);
        a[c][y][x] = static_cast<uint8_t>(std::lround(std::min(255.0, std::max(0.0, v))));
      }
  return t;
}

// Renders `texture` on the posed mesh into an H x W image over a grey background: the nearest triangle per pixel
// centre (rasterize_triangle_ids), its barycentrics -> UV -> bilinear texture sample (align_corners=True, v up).
inline at::Tensor render_texture(const at::Tensor& texture, const at::Tensor& uv, const at::Tensor& triangles,
                                 const at::Tensor& projected, const at::Tensor& depth, int H, int W) {
  const at::Tensor ids = models::face3d::rasterize_triangle_ids(projected, depth, triangles, H, W);
  at::Tensor img = at::full({H, W, 3}, 77, at::kByte);
  auto im = img.accessor<uint8_t, 3>();
  auto id = ids.accessor<int32_t, 2>();
  auto p = projected.accessor<float, 2>();
  auto u = uv.accessor<float, 2>();
  auto t = triangles.accessor<int64_t, 2>();
  auto tex = texture.accessor<uint8_t, 3>();
  const int R = static_cast<int>(texture.size(1));
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const int f = id[y][x];
      if (f < 0) continue;
      const int64_t a = t[f][0], b = t[f][1], c = t[f][2];
      const double d = (p[b][1] - p[c][1]) * (p[a][0] - p[c][0]) + (p[c][0] - p[b][0]) * (p[a][1] - p[c][1]);
      const double w0 = ((p[b][1] - p[c][1]) * (x - p[c][0]) + (p[c][0] - p[b][0]) * (y - p[c][1])) / d;
      const double w1 = ((p[c][1] - p[a][1]) * (x - p[c][0]) + (p[a][0] - p[c][0]) * (y - p[c][1])) / d;
      const double w2 = 1 - w0 - w1;
      const double uu = w0 * u[a][0] + w1 * u[b][0] + w2 * u[c][0];
      const double vv = w0 * u[a][1] + w1 * u[b][1] + w2 * u[c][1];
      const double tx = std::min(std::max(uu, 0.0), 1.0) * (R - 1), ty = (1 - std::min(std::max(vv, 0.0), 1.0)) * (R - 1);
      const int x0 = std::min(static_cast<int>(tx), R - 1), y0 = std::min(static_cast<int>(ty), R - 1);
      const int x1 = std::min(x0 + 1, R - 1), y1 = std::min(y0 + 1, R - 1);
      const double fx = tx - x0, fy = ty - y0;
      for (int ch = 0; ch < 3; ++ch) {
        const double v = (1 - fy) * ((1 - fx) * tex[ch][y0][x0] + fx * tex[ch][y0][x1]) +
                         fy * ((1 - fx) * tex[ch][y1][x0] + fx * tex[ch][y1][x1]);
        im[y][x][ch] = static_cast<uint8_t>(std::lround(v));
      }
    }
  return img;
}

}  // namespace facetex::test::photo
