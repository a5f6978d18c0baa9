// UV-texture rendering and compositing: coverage mask, constant textures, the texel convention (x = u (R - 1),
// y = (1 - v)(R - 1), v up), bilinear values against a hand-written sampler, the texture gradient against finite
// differences in float64, and per-sample masks in the composite.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/rasterize.h"
#include "models/face3d/renderer.h"
#include "tests/render/synthetic_face_mesh.h"

using namespace facetex;
using kernels::Impl;
using kernels::RasterOutput;
using models::face3d::composite;
using models::face3d::render_uv_texture;
using models::face3d::Rendered;

namespace {

// A screen-aligned quad over pixels [x0, x1) x [y0, y1) at depth 4, with (u, v) = (0, 1) at the top-left corner
// and (1, 0) at the bottom-right: the texture appears upright, u to the right, v up.
struct Quad {
  at::Tensor screen;  // [B, 4, 3]
  at::Tensor uv;      // [4, 2]
  at::Tensor faces;   // [2, 3]
};

Quad upright_quad(int64_t batch, float x0, float y0, float x1, float y1) {
  Quad q;
  q.screen =
      at::tensor({x0, y0, 4.0f, x1, y0, 4.0f, x1, y1, 4.0f, x0, y1, 4.0f}).reshape({1, 4, 3}).repeat({batch, 1, 1});
  q.uv = at::tensor({0.0f, 1.0f, 1.0f, 1.0f, 1.0f, 0.0f, 0.0f, 0.0f}).reshape({4, 2});
  q.faces = at::tensor(std::vector<int64_t>{0, 1, 2, 0, 2, 3}).reshape({2, 3});
  return q;
}

// Bilinear lookup with border clamping at texel coordinates (x, y) of a [C, R, R] float64 texture.
std::vector<double> bilinear(const at::Tensor& texture, double x, double y) {
  const int64_t r = texture.size(1);
  x = std::clamp(x, 0.0, static_cast<double>(r - 1));
  y = std::clamp(y, 0.0, static_cast<double>(r - 1));
  const int64_t x0 = std::min<int64_t>(static_cast<int64_t>(x), r - 2),
                y0 = std::min<int64_t>(static_cast<int64_t>(y), r - 2);
  const double fx = x - x0, fy = y - y0;
  std::vector<double> out;
  for (int64_t c = 0; c < texture.size(0); ++c) {
    auto t = [&](int64_t yy, int64_t xx) { return texture[c][yy][xx].item<double>(); };
    out.push_back((1 - fy) * ((1 - fx) * t(y0, x0) + fx * t(y0, x0 + 1)) +
                  fy * ((1 - fx) * t(y0 + 1, x0) + fx * t(y0 + 1, x0 + 1)));
  }
  return out;
}

}  // namespace

TEST(RenderUvTexture, ConstantTextureRendersConstantOnCoveredPixelsOnly) {
  const test::FaceMesh mesh = test::make_face_mesh(25);
  const at::Tensor v = test::project_face(mesh.vertices, {0.0, 40.0}, 48, 48);
  const RasterOutput raster = kernels::rasterize(v, mesh.faces, 48, 48);
  const at::Tensor colour = at::tensor({0.25f, -0.5f, 0.75f}).reshape({1, 3, 1, 1});
  const Rendered out = render_uv_texture(colour.expand({2, 3, 16, 16}).contiguous(), mesh.uv, mesh.faces, raster);
  ASSERT_EQ(out.rgb.sizes(), (std::vector<int64_t>{2, 3, 48, 48}));
  ASSERT_EQ(out.mask.sizes(), (std::vector<int64_t>{2, 1, 48, 48}));
  EXPECT_TRUE(at::equal(out.mask, raster.face_index.ge(0).unsqueeze(1).to(at::kFloat)));
  EXPECT_GT(out.mask.sum().item<float>(), 200.0f);
  EXPECT_TRUE(at::allclose(out.rgb, colour * out.mask, 0.0, 1e-6));
}

TEST(RenderUvTexture, VPointsUpAndUPointsRight) {
  // Texture (image rows downward): top row red, left column green, the rest blue. On the upright quad the top of
  // the render (v near 1) must be red, the left (u near 0) green, the bottom right blue.
  at::Tensor texture = at::zeros({1, 3, 8, 8});
  texture.select(1, 2).fill_(1);
  texture.select(1, 2).select(1, 0).fill_(0);
  texture.select(1, 0).select(1, 0).fill_(1);  // row 0 red
  texture.select(1, 2).select(2, 0).fill_(0);
  texture.select(1, 1).select(2, 0).fill_(1);  // column 0 green
  texture.select(1, 0).select(2, 0).fill_(0);
  const Quad q = upright_quad(1, 0, 0, 64, 64);
  const Rendered out = render_uv_texture(texture, q.uv, q.faces, kernels::rasterize(q.screen, q.faces, 64, 64));
  auto rgb = [&](int64_t row, int64_t col) {
    return std::vector<float>{out.rgb[0][0][row][col].item<float>(), out.rgb[0][1][row][col].item<float>(),
                              out.rgb[0][2][row][col].item<float>()};
  };
  EXPECT_GT(rgb(0, 32)[0], 0.9f) << "top middle should be red";
  EXPECT_GT(rgb(32, 0)[1], 0.9f) << "left middle should be green";
  EXPECT_GT(rgb(63, 63)[2], 0.9f) << "bottom right should be blue";
  EXPECT_LT(rgb(63, 32)[0], 0.01f) << "bottom middle should not be red";
}

TEST(RenderUvTexture, SamplesBilinearlyAtTheDocumentedTexelCoordinates) {
  // A tilted, perspective quad with a random texture: every covered pixel equals a hand-written bilinear lookup at
  // x = u (R - 1), y = (1 - v)(R - 1), with u, v interpolated by the rasteriser's barycentrics.
  at::manual_seed(5);  // reproducible texture
  const at::Tensor texture = at::rand({1, 3, 7, 7}, at::kDouble);
  const at::Tensor screen =
      at::tensor({3.2f, 2.1f, 2.0f, 27.7f, 5.3f, 3.0f, 29.1f, 30.2f, 6.0f, 1.4f, 26.5f, 4.0f}).reshape({1, 4, 3});
  const at::Tensor uv = at::tensor({-0.1f, 1.05f, 0.9f, 1.0f, 1.0f, 0.1f, 0.05f, -0.05f})
                            .reshape({4, 2});  // a bit outside [0, 1]: border
  const at::Tensor faces = at::tensor(std::vector<int64_t>{0, 1, 2, 0, 2, 3}).reshape({2, 3});
  const RasterOutput raster = kernels::rasterize(screen, faces, 32, 32);
  const Rendered out = render_uv_texture(texture, uv, faces, raster);
  EXPECT_EQ(out.rgb.scalar_type(), at::kDouble);
  int64_t checked = 0;
  for (int64_t py = 0; py < 32; ++py) {
    for (int64_t px = 0; px < 32; ++px) {
      const int face = raster.face_index[0][py][px].item<int>();
      if (face < 0) {
        EXPECT_EQ(out.rgb[0].select(1, py).select(1, px).abs().sum().item<double>(), 0.0);
        continue;
      }
      double u = 0, v = 0;
      for (int k = 0; k < 3; ++k) {
        const double b = raster.barycentric[0][py][px][k].item<float>();
        u += b * uv[faces[face][k].item<int64_t>()][0].item<float>();
        v += b * uv[faces[face][k].item<int64_t>()][1].item<float>();
      }
      const std::vector<double> expected = bilinear(texture[0], u * 6, (1 - v) * 6);
      for (int c = 0; c < 3; ++c)
        EXPECT_NEAR(out.rgb[0][c][py][px].item<double>(), expected[c], 1e-5) << px << "," << py;
      ++checked;
    }
  }
  EXPECT_GT(checked, 500);
}

TEST(RenderUvTexture, TextureGradientMatchesFiniteDifferencesInFloat64) {
  at::manual_seed(6);  // reproducible texture and loss weights
  const test::FaceMesh mesh = test::make_face_mesh(9);
  const at::Tensor v = test::project_face(mesh.vertices, {20.0, -30.0}, 20, 20);
  const RasterOutput raster = kernels::rasterize(v, mesh.faces, 20, 20);
  const at::Tensor texture = at::rand({2, 2, 5, 5}, at::kDouble).requires_grad_(true);
  const at::Tensor weights = at::randn({2, 2, 20, 20}, at::kDouble);
  auto loss = [&](const at::Tensor& t) {
    return (render_uv_texture(t, mesh.uv, mesh.faces, raster).rgb * weights).sum();
  };
  const at::Tensor analytic = torch::autograd::grad({loss(texture)}, {texture})[0];
  at::Tensor numeric = at::zeros_like(analytic);
  const double eps = 1e-6;
  const at::Tensor base = texture.detach();
  for (int64_t i = 0; i < base.numel(); ++i) {
    at::Tensor plus = base.clone(), minus = base.clone();
    plus.view({-1})[i] += eps;
    minus.view({-1})[i] -= eps;
    numeric.view({-1})[i] = (loss(plus) - loss(minus)).item<double>() / (2 * eps);
  }
  EXPECT_GT(analytic.abs().max().item<double>(), 0.1);
  EXPECT_LT((analytic - numeric).abs().max().item<double>(), 1e-7);
  // Each sample's texture only receives gradient from its own render.
  const at::Tensor first_only = torch::autograd::grad(
      {(render_uv_texture(texture, mesh.uv, mesh.faces, raster).rgb.select(0, 0) * weights.select(0, 0)).sum()},
      {texture})[0];
  EXPECT_EQ(first_only.select(0, 1).abs().sum().item<double>(), 0.0);
}

TEST(Composite, EachSampleUsesItsOwnMask) {
  // Three samples with three different coverages (the public code applied sample 3's alpha to every sample).
  const int64_t b = 3, h = 24, w = 24;
  at::Tensor screen = at::zeros({b, 4, 3});
  const std::vector<std::array<float, 4>> boxes = {{2, 2, 10, 10}, {8, 4, 22, 12}, {0, 12, 24, 24}};
  for (int64_t i = 0; i < b; ++i)
    screen[i] = upright_quad(1, boxes[i][0], boxes[i][1], boxes[i][2], boxes[i][3]).screen[0];
  const Quad q = upright_quad(1, 0, 0, 1, 1);
  const RasterOutput raster = kernels::rasterize(screen, q.faces, h, w);
  at::manual_seed(7);  // reproducible textures and backgrounds
  const at::Tensor texture = at::rand({b, 3, 8, 8}) * 2 - 1;
  const Rendered out = render_uv_texture(texture, q.uv, q.faces, raster);
  const at::Tensor bg = at::rand({b, 3, h, w}) * 2 - 1;
  const at::Tensor composed = composite(bg, out.rgb, out.mask);
  for (int64_t i = 0; i < b; ++i) {
    const at::Tensor m = out.mask[i];
    EXPECT_EQ(m.sum().item<float>(), (boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1])) << "sample " << i;
    EXPECT_TRUE(at::equal(composed[i] * (1 - m), bg[i] * (1 - m))) << "sample " << i;
    EXPECT_TRUE(at::equal(composed[i] * m, out.rgb[i] * m)) << "sample " << i;
  }
  EXPECT_THROW(composite(bg, out.rgb, out.mask.select(1, 0)), RuntimeError);
  EXPECT_THROW(composite(bg.slice(0, 0, 2), out.rgb, out.mask), RuntimeError);
}

// A sampling set up once serves many textures: the same images and texture gradients as rendering each anew.
TEST(RenderUvTexture, OneSamplingServesManyTextures) {
  const Quad q = upright_quad(2, 1, 2, 15, 13);
  const RasterOutput raster = kernels::rasterize(q.screen, q.faces, 16, 16);
  const models::face3d::UvSampling sampling = models::face3d::uv_sampling(q.uv, q.faces, raster);
  at::manual_seed(3);
  for (int k = 0; k < 3; ++k) {
    const at::Tensor texture = (at::rand({2, 3, 8, 8}) * 2 - 1).requires_grad_(true);
    const Rendered once = models::face3d::sample_uv_texture(texture, sampling);
    const Rendered anew = render_uv_texture(texture, q.uv, q.faces, raster);
    EXPECT_TRUE(at::equal(once.rgb, anew.rgb));
    EXPECT_TRUE(at::equal(once.mask, anew.mask));
    const at::Tensor weights = at::rand_like(anew.rgb);
    const at::Tensor g_once = torch::autograd::grad({(once.rgb * weights).sum()}, {texture})[0];
    const at::Tensor g_anew = torch::autograd::grad({(anew.rgb * weights).sum()}, {texture})[0];
    EXPECT_TRUE(at::equal(g_once, g_anew));
  }
  EXPECT_THROW(models::face3d::sample_uv_texture(at::rand({3, 3, 8, 8}), sampling), RuntimeError);  // batch 3 vs 2
  EXPECT_THROW(models::face3d::sample_uv_texture(at::rand({2, 3, 8, 8}), models::face3d::UvSampling{}), RuntimeError);
}

TEST(RenderUvTexture, RejectsMismatchedInputs) {
  const Quad q = upright_quad(2, 0, 0, 8, 8);
  const RasterOutput raster = kernels::rasterize(q.screen, q.faces, 8, 8);
  EXPECT_THROW(render_uv_texture(at::rand({3, 3, 4, 4}), q.uv, q.faces, raster), RuntimeError);  // batch 3 vs 2
  EXPECT_THROW(render_uv_texture(at::rand({2, 3, 4}), q.uv, q.faces, raster), RuntimeError);
  EXPECT_THROW(render_uv_texture(at::rand({2, 3, 4, 4}), q.uv.t(), q.faces, raster), RuntimeError);
  EXPECT_THROW(render_uv_texture(at::rand({2, 3, 4, 4}).to(at::kInt), q.uv, q.faces, raster), RuntimeError);
}
