#include "models/face3d/uv_unwrap.h"

#include <ATen/ATen.h>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"

namespace facetex::models::face3d {
namespace {

struct Mesh2D {
  int64_t num_vertices = 0, num_triangles = 0;
  std::vector<double> xy;     // [V, 2]
  std::vector<double> z;      // [V]
  std::vector<int64_t> tri;   // [F, 3]
};

Mesh2D read_mesh(const at::Tensor& projected, const at::Tensor& depth, const at::Tensor& triangles) {
  FACETEX_CHECK_USAGE(projected.dim() == 2 && projected.size(1) == 2, "projected must be [V, 2], got {}",
                      projected.sizes().vec());
  FACETEX_CHECK_USAGE(depth.dim() == 1 && depth.size(0) == projected.size(0), "depth must be [{}], got {}",
                      projected.size(0), depth.sizes().vec());
  FACETEX_CHECK_USAGE(triangles.dim() == 2 && triangles.size(1) == 3, "triangles must be [F, 3], got {}",
                      triangles.sizes().vec());
  Mesh2D m;
  m.num_vertices = projected.size(0);
  m.num_triangles = triangles.size(0);
  const at::Tensor p = projected.to(at::kDouble).contiguous(), d = depth.to(at::kDouble).contiguous();
  const at::Tensor t = triangles.to(at::kLong).contiguous();
  m.xy.assign(p.data_ptr<double>(), p.data_ptr<double>() + p.numel());
  m.z.assign(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
  m.tri.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  for (int64_t k : m.tri) {
    FACETEX_CHECK_USAGE(k >= 0 && k < m.num_vertices, "triangle vertex {} out of range (V = {})", k, m.num_vertices);
  }
  return m;
}

// Twice the signed area of the projected triangle (image y-down coordinates).
double signed_area2(const Mesh2D& m, int64_t f) {
  const int64_t a = m.tri[3 * f], b = m.tri[3 * f + 1], c = m.tri[3 * f + 2];
  return (m.xy[2 * b] - m.xy[2 * a]) * (m.xy[2 * c + 1] - m.xy[2 * a + 1]) -
         (m.xy[2 * b + 1] - m.xy[2 * a + 1]) * (m.xy[2 * c] - m.xy[2 * a]);
}

// Barycentrics of point (x, y) in the 2D triangle (p0, p1, p2); false for a degenerate triangle.
bool barycentric(const double* p0, const double* p1, const double* p2, double x, double y, double* w) {
  const double d = (p1[1] - p2[1]) * (p0[0] - p2[0]) + (p2[0] - p1[0]) * (p0[1] - p2[1]);
  if (std::abs(d) < 1e-12) return false;
  w[0] = ((p1[1] - p2[1]) * (x - p2[0]) + (p2[0] - p1[0]) * (y - p2[1])) / d;
  w[1] = ((p2[1] - p0[1]) * (x - p2[0]) + (p0[0] - p2[0]) * (y - p2[1])) / d;
  w[2] = 1 - w[0] - w[1];
  return true;
}

bool share_vertex(const Mesh2D& m, int64_t f, int64_t g) {
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k)
      if (m.tri[3 * f + i] == m.tri[3 * g + k]) return true;
  return false;
}

// Per triangle, the magnitude of the depth gradient over the image (depth units per pixel); 0 when degenerate.
std::vector<double> depth_slopes(const Mesh2D& m) {
  std::vector<double> out(m.num_triangles, 0.0);
  for (int64_t f = 0; f < m.num_triangles; ++f) {
    const int64_t a = m.tri[3 * f], b = m.tri[3 * f + 1], c = m.tri[3 * f + 2];
    const double x1 = m.xy[2 * b] - m.xy[2 * a], y1 = m.xy[2 * b + 1] - m.xy[2 * a + 1], z1 = m.z[b] - m.z[a];
    const double x2 = m.xy[2 * c] - m.xy[2 * a], y2 = m.xy[2 * c + 1] - m.xy[2 * a + 1], z2 = m.z[c] - m.z[a];
    const double det = x1 * y2 - x2 * y1;
    if (std::abs(det) < 1e-12) continue;
    const double gx = (z1 * y2 - z2 * y1) / det, gy = (x1 * z2 - x2 * z1) / det;
    out[f] = std::hypot(gx, gy);
  }
  return out;
}

// Nearest triangle per pixel centre over the image window [x0, x0 + w) x [y0, y0 + h).
struct ZBuffer {
  int64_t x0 = 0, y0 = 0, w = 0, h = 0;
  std::vector<int32_t> id;
  std::vector<double> z;

  int32_t at(int64_t x, int64_t y) const {
    if (x < x0 || y < y0 || x >= x0 + w || y >= y0 + h) return -1;
    return id[(y - y0) * w + (x - x0)];
  }
};

ZBuffer rasterize(const Mesh2D& m, int64_t height, int64_t width) {
  ZBuffer zb;
  double lo_x = std::numeric_limits<double>::infinity(), lo_y = lo_x, hi_x = -lo_x, hi_y = -lo_x;
  for (int64_t i = 0; i < m.num_vertices; ++i) {
    lo_x = std::min(lo_x, m.xy[2 * i]);
    hi_x = std::max(hi_x, m.xy[2 * i]);
    lo_y = std::min(lo_y, m.xy[2 * i + 1]);
    hi_y = std::max(hi_y, m.xy[2 * i + 1]);
  }
  if (m.num_vertices == 0 || !std::isfinite(lo_x + hi_x + lo_y + hi_y)) return zb;
  zb.x0 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(lo_x)), 0, width);
  zb.y0 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(lo_y)), 0, height);
  zb.w = std::clamp<int64_t>(static_cast<int64_t>(std::floor(hi_x)) + 1, 0, width) - zb.x0;
  zb.h = std::clamp<int64_t>(static_cast<int64_t>(std::floor(hi_y)) + 1, 0, height) - zb.y0;
  if (zb.w <= 0 || zb.h <= 0) {
    zb.w = zb.h = 0;
    return zb;
  }
  zb.id.assign(zb.w * zb.h, -1);
  zb.z.assign(zb.w * zb.h, std::numeric_limits<double>::infinity());
  for (int64_t f = 0; f < m.num_triangles; ++f) {
    const double* p[3];
    double z[3];
    double bx0 = 1e300, bx1 = -1e300, by0 = 1e300, by1 = -1e300;
    for (int k = 0; k < 3; ++k) {
      const int64_t v = m.tri[3 * f + k];
      p[k] = &m.xy[2 * v];
      z[k] = m.z[v];
      bx0 = std::min(bx0, p[k][0]);
      bx1 = std::max(bx1, p[k][0]);
      by0 = std::min(by0, p[k][1]);
      by1 = std::max(by1, p[k][1]);
    }
    const int64_t xa = std::max<int64_t>(zb.x0, static_cast<int64_t>(std::ceil(bx0)));
    const int64_t xb = std::min<int64_t>(zb.x0 + zb.w - 1, static_cast<int64_t>(std::floor(bx1)));
    const int64_t ya = std::max<int64_t>(zb.y0, static_cast<int64_t>(std::ceil(by0)));
    const int64_t yb = std::min<int64_t>(zb.y0 + zb.h - 1, static_cast<int64_t>(std::floor(by1)));
    for (int64_t y = ya; y <= yb; ++y) {
      for (int64_t x = xa; x <= xb; ++x) {
        double w[3];
        if (!barycentric(p[0], p[1], p[2], double(x), double(y), w)) continue;
        if (w[0] < -1e-9 || w[1] < -1e-9 || w[2] < -1e-9) continue;
        const double d = w[0] * z[0] + w[1] * z[1] + w[2] * z[2];
        const int64_t i = (y - zb.y0) * zb.w + (x - zb.x0);
        if (d < zb.z[i]) {
          zb.z[i] = d;
          zb.id[i] = static_cast<int32_t>(f);
        }
      }
    }
  }
  return zb;
}

void check_image(const at::Tensor& image) {
  FACETEX_CHECK_USAGE(image.dim() == 3 && image.size(2) == 3 && image.scalar_type() == at::kByte,
                      "image must be [H, W, 3] uint8, got {} {}", image.sizes().vec(), std::string(image.dtype().name()));
}

}  // namespace

at::Tensor front_facing(const at::Tensor& projected, const at::Tensor& triangles) {
  const Mesh2D m = read_mesh(projected, at::zeros({projected.size(0)}, at::kDouble), triangles);
  at::Tensor out = at::empty({m.num_triangles}, at::kBool);
  bool* po = out.data_ptr<bool>();
  for (int64_t f = 0; f < m.num_triangles; ++f) po[f] = signed_area2(m, f) < 0;
  return out;
}

at::Tensor rasterize_triangle_ids(const at::Tensor& projected, const at::Tensor& depth, const at::Tensor& triangles,
                                  int64_t height, int64_t width) {
  const Mesh2D m = read_mesh(projected, depth, triangles);
  const ZBuffer zb = rasterize(m, height, width);
  at::Tensor out = at::full({height, width}, -1, at::kInt);
  int32_t* po = out.data_ptr<int32_t>();
  for (int64_t y = 0; y < zb.h; ++y) {
    std::copy(zb.id.begin() + y * zb.w, zb.id.begin() + (y + 1) * zb.w, po + (zb.y0 + y) * width + zb.x0);
  }
  return out;
}

UvTexture unwrap_to_uv(const at::Tensor& image, const at::Tensor& uv, const at::Tensor& triangles,
                       const at::Tensor& projected, const at::Tensor& depth, const UnwrapOptions& options) {
  check_image(image);
  FACETEX_CHECK_USAGE(options.resolution >= 2 && options.resolution <= 8192, "UV size must be 2..8192, got {}",
                      options.resolution);
  FACETEX_CHECK_USAGE(uv.dim() == 2 && uv.size(1) == 2 && uv.size(0) == projected.size(0),
                      "uv must be [{}, 2], got {}", projected.size(0), uv.sizes().vec());
  const Mesh2D m = read_mesh(projected, depth, triangles);
  const int64_t H = image.size(0), W = image.size(1), R = options.resolution;
  const at::Tensor img = image.contiguous();
  const uint8_t* pix = img.data_ptr<uint8_t>();
  const at::Tensor uvd = uv.to(at::kDouble).contiguous();
  const double* puv = uvd.data_ptr<double>();

  // Texel-space UV coordinates (align_corners=True, v up).
  std::vector<double> tuv(2 * m.num_vertices);
  for (int64_t i = 0; i < m.num_vertices; ++i) {
    tuv[2 * i] = puv[2 * i] * (R - 1);
    tuv[2 * i + 1] = (1 - puv[2 * i + 1]) * (R - 1);
  }
  double lo_x = 1e300, hi_x = -1e300;
  for (int64_t i = 0; i < m.num_vertices; ++i) {
    lo_x = std::min(lo_x, m.xy[2 * i]);
    hi_x = std::max(hi_x, m.xy[2 * i]);
  }
  const double tol = options.depth_tolerance * std::max(hi_x - lo_x, 1e-9);
  const ZBuffer zb = rasterize(m, H, W);
  const std::vector<double> slope = depth_slopes(m);

  UvTexture out;
  out.texture = at::zeros({3, R, R}, at::kByte);
  out.mask = at::zeros({R, R}, at::kByte);
  out.chart = at::zeros({R, R}, at::kByte);
  uint8_t* tex = out.texture.data_ptr<uint8_t>();
  uint8_t* mask = out.mask.data_ptr<uint8_t>();
  uint8_t* chart = out.chart.data_ptr<uint8_t>();
  int64_t visible = 0, charted = 0;
  for (int64_t f = 0; f < m.num_triangles; ++f) {
    const int64_t* v = &m.tri[3 * f];
    const double* t[3] = {&tuv[2 * v[0]], &tuv[2 * v[1]], &tuv[2 * v[2]]};
    const double uv_area2 = (t[1][0] - t[0][0]) * (t[2][1] - t[0][1]) - (t[1][1] - t[0][1]) * (t[2][0] - t[0][0]);
    if (std::abs(uv_area2) < 1e-12) continue;  // degenerate in UV: no texels
    const bool front = !options.cull_back_faces || signed_area2(m, f) < 0;
    const int64_t xa = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(std::min({t[0][0], t[1][0], t[2][0]}))));
    const int64_t xb = std::min<int64_t>(R - 1, static_cast<int64_t>(std::floor(std::max({t[0][0], t[1][0], t[2][0]}))));
    const int64_t ya = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(std::min({t[0][1], t[1][1], t[2][1]}))));
    const int64_t yb = std::min<int64_t>(R - 1, static_cast<int64_t>(std::floor(std::max({t[0][1], t[1][1], t[2][1]}))));
    for (int64_t ty = ya; ty <= yb; ++ty) {
      for (int64_t tx = xa; tx <= xb; ++tx) {
        double w[3] = {0, 0, 0};
        barycentric(t[0], t[1], t[2], double(tx), double(ty), w);
        if (w[0] < -1e-9 || w[1] < -1e-9 || w[2] < -1e-9) continue;
        const int64_t ti = ty * R + tx;
        if (chart[ti]) continue;  // a texel on a shared edge belongs to the first triangle
        chart[ti] = 1;
        ++charted;
        if (!front) continue;
        const double x = w[0] * m.xy[2 * v[0]] + w[1] * m.xy[2 * v[1]] + w[2] * m.xy[2 * v[2]];
        const double y = w[0] * m.xy[2 * v[0] + 1] + w[1] * m.xy[2 * v[1] + 1] + w[2] * m.xy[2 * v[2] + 1];
        if (!(x >= 0 && y >= 0 && x <= W - 1 && y <= H - 1)) continue;  // outside the photo (or NaN)
        const double d = w[0] * m.z[v[0]] + w[1] * m.z[v[1]] + w[2] * m.z[v[2]];
        const int32_t near = zb.at(std::lround(x), std::lround(y));
        if (near >= 0 && near != f && !share_vertex(m, near, f)) {
          // The nearest surface at that pixel, evaluated at the exact point (its plane, extrapolated). The slack
          // grows with the depth slopes: on grazing triangles a sub-pixel offset changes the depth a lot.
          const int64_t* n = &m.tri[3 * near];
          double wn[3];
          if (barycentric(&m.xy[2 * n[0]], &m.xy[2 * n[1]], &m.xy[2 * n[2]], x, y, wn)) {
            const double dn = wn[0] * m.z[n[0]] + wn[1] * m.z[n[1]] + wn[2] * m.z[n[2]];
            const double slack = tol + std::min(2 * tol, 0.75 * std::max(slope[f], slope[near]));
            if (d > dn + slack) continue;  // occluded
          }
        }
        // Bilinear sample, pixel centres at integers.
        const int64_t x0 = std::min<int64_t>(static_cast<int64_t>(x), W - 1), y0 = std::min<int64_t>(static_cast<int64_t>(y), H - 1);
        const int64_t x1 = std::min<int64_t>(x0 + 1, W - 1), y1 = std::min<int64_t>(y0 + 1, H - 1);
        const double fx = x - x0, fy = y - y0;
        for (int c = 0; c < 3; ++c) {
          const double a = pix[(y0 * W + x0) * 3 + c], b = pix[(y0 * W + x1) * 3 + c];
          const double e = pix[(y1 * W + x0) * 3 + c], g = pix[(y1 * W + x1) * 3 + c];
          const double val = (1 - fy) * ((1 - fx) * a + fx * b) + fy * ((1 - fx) * e + fx * g);
          tex[c * R * R + ti] = static_cast<uint8_t>(std::clamp(std::lround(val), 0L, 255L));
        }
        mask[ti] = 1;
        ++visible;
      }
    }
  }
  out.coverage = static_cast<double>(visible) / static_cast<double>(R * R);
  out.chart_coverage = static_cast<double>(charted) / static_cast<double>(R * R);
  return out;
}

at::Tensor draw_mesh_overlay(const at::Tensor& image, const at::Tensor& projected, const at::Tensor& depth,
                             const at::Tensor& triangles, const OverlayOptions& options) {
  check_image(image);
  const Mesh2D m = read_mesh(projected, depth, triangles);
  const int64_t H = image.size(0), W = image.size(1);
  at::Tensor out = image.contiguous().clone();
  cv::Mat canvas(static_cast<int>(H), static_cast<int>(W), CV_8UC3, out.data_ptr<uint8_t>());
  const ZBuffer zb = rasterize(m, H, W);

  // Per-triangle shade: |cos| between the face normal (in x, y, depth — one unit for all three) and the view axis.
  std::vector<double> shade(m.num_triangles);
  std::vector<bool> front(m.num_triangles);
  for (int64_t f = 0; f < m.num_triangles; ++f) {
    const int64_t a = m.tri[3 * f], b = m.tri[3 * f + 1], c = m.tri[3 * f + 2];
    const double e1[3] = {m.xy[2 * b] - m.xy[2 * a], m.xy[2 * b + 1] - m.xy[2 * a + 1], m.z[b] - m.z[a]};
    const double e2[3] = {m.xy[2 * c] - m.xy[2 * a], m.xy[2 * c + 1] - m.xy[2 * a + 1], m.z[c] - m.z[a]};
    const double n[3] = {e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2], e1[0] * e2[1] - e1[1] * e2[0]};
    const double len = std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
    shade[f] = len > 0 ? std::abs(n[2]) / len : 0;
    front[f] = n[2] < 0;  // the same sign as the signed area
  }
  const double alpha = std::clamp(options.alpha, 0.0, 1.0);
  std::vector<bool> seen(m.num_triangles, false);
  for (int64_t y = 0; y < zb.h; ++y) {
    for (int64_t x = 0; x < zb.w; ++x) {
      const int32_t f = zb.id[y * zb.w + x];
      if (f < 0) continue;
      seen[f] = true;
      const double l = 0.25 + 0.75 * shade[f];
      const double col[3] = {front[f] ? 170 * l : 240 * l, front[f] ? 200 * l : 60 * l, front[f] ? 255 * l : 60 * l};
      auto* px = canvas.ptr<uint8_t>(static_cast<int>(zb.y0 + y)) + 3 * (zb.x0 + x);
      for (int c = 0; c < 3; ++c) px[c] = cv::saturate_cast<uint8_t>((1 - alpha) * px[c] + alpha * col[c]);
    }
  }
  if (options.wireframe && zb.w >= 150) {
    cv::Mat lines = canvas.clone();
    const int shift = 4;  // sub-pixel endpoints
    auto pt = [&](int64_t v) {
      return cv::Point(static_cast<int>(std::lround(m.xy[2 * v] * (1 << shift))),
                       static_cast<int>(std::lround(m.xy[2 * v + 1] * (1 << shift))));
    };
    for (int64_t f = 0; f < m.num_triangles; ++f) {
      if (!seen[f] || !front[f]) continue;
      const int64_t* t = &m.tri[3 * f];
      for (int k = 0; k < 3; ++k) {
        cv::line(lines, pt(t[k]), pt(t[(k + 1) % 3]), cv::Scalar(40, 60, 140), 1, cv::LINE_AA, shift);
      }
    }
    cv::addWeighted(lines, 0.5, canvas, 0.5, 0.0, canvas);
  }
  if (options.box[2] > 0 && options.box[3] > 0) {
    cv::rectangle(canvas, cv::Rect2d(options.box[0], options.box[1], options.box[2], options.box[3]),
                  cv::Scalar(255, 220, 0), std::max(1, static_cast<int>(std::max(W, H) / 400)), cv::LINE_AA);
  }
  if (options.points.defined() && options.points.numel() > 0) {
    FACETEX_CHECK_USAGE(options.points.dim() == 2 && options.points.size(1) == 2, "points must be [N, 2], got {}",
                        options.points.sizes().vec());
    const at::Tensor p = options.points.to(at::kFloat).contiguous();
    const float* pp = p.data_ptr<float>();
    const int radius = std::max(1, static_cast<int>(std::lround(zb.w / 120.0)));
    for (int64_t i = 0; i < p.size(0); ++i) {
      cv::circle(canvas, cv::Point2f(pp[2 * i], pp[2 * i + 1]), radius, cv::Scalar(60, 255, 60), cv::FILLED,
                 cv::LINE_AA);
    }
  }
  return out;
}

}  // namespace facetex::models::face3d
