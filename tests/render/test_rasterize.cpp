// The CPU rasteriser against analytic expectations: exact coverage of known triangles, the top-left rule (every
// pixel of a closed mesh covered exactly once, however the shared edges and vertices fall on pixel centres),
// occlusion by depth with ties to the smaller face index, barycentric ordering and normalisation, perspective
// correctness on a plane tilted in depth, empty cases, batches of poses, thread-count independence, bad inputs.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/rasterize.h"
#include "tests/render/synthetic_face_mesh.h"

using namespace facetex;
using kernels::Impl;
using kernels::RasterOutput;

namespace {

using Vertex = std::array<float, 3>;
using Face = std::array<int64_t, 3>;

at::Tensor screen(const std::vector<Vertex>& vertices) {
  at::Tensor t = at::empty({1, static_cast<int64_t>(vertices.size()), 3}, at::kFloat);
  for (size_t i = 0; i < vertices.size(); ++i)
    for (int k = 0; k < 3; ++k) t[0][i][k] = vertices[i][k];
  return t;
}

at::Tensor face_list(const std::vector<Face>& faces) {
  at::Tensor t = at::empty({static_cast<int64_t>(faces.size()), 3}, at::kLong);
  for (size_t i = 0; i < faces.size(); ++i)
    for (int k = 0; k < 3; ++k) t[i][k] = faces[i][k];
  return t;
}

RasterOutput cpu_raster(const at::Tensor& vertices, const at::Tensor& faces, int64_t h, int64_t w) {
  return kernels::rasterize(vertices, faces, h, w, Impl::kReference);
}

// How many of the faces cover each pixel, [B, H, W]: each face rasterised on its own.
at::Tensor coverage_count(const at::Tensor& vertices, const at::Tensor& faces, int64_t h, int64_t w) {
  at::Tensor count = at::zeros({vertices.size(0), h, w}, at::kInt);
  for (int64_t f = 0; f < faces.size(0); ++f)
    count += cpu_raster(vertices, faces.slice(0, f, f + 1), h, w).face_index.ge(0).to(at::kInt);
  return count;
}

// The right triangle (2, 2), (10, 2), (2, 10): centres (px + .5, py + .5) with px, py >= 2 and x + y <= 12; the
// hypotenuse is a bottom-right edge, so centres on it (px + py == 11) are not covered.
bool in_right_triangle(int64_t px, int64_t py) { return px >= 2 && py >= 2 && px + py <= 10; }

}  // namespace

TEST(Rasterize, SingleTriangleCoversExactlyTheExpectedPixels) {
  for (bool reversed : {false, true}) {
    SCOPED_TRACE(reversed ? "clockwise in y-up" : "counter-clockwise in y-up");
    const at::Tensor v = screen({{2, 2, 5}, {10, 2, 5}, {2, 10, 5}});
    const at::Tensor f = face_list({reversed ? Face{0, 2, 1} : Face{0, 1, 2}});
    const RasterOutput r = cpu_raster(v, f, 12, 14);
    ASSERT_EQ(r.face_index.sizes(), (std::vector<int64_t>{1, 12, 14}));
    ASSERT_EQ(r.barycentric.sizes(), (std::vector<int64_t>{1, 12, 14, 3}));
    ASSERT_EQ(r.face_index.scalar_type(), at::kInt);
    int64_t covered = 0;
    for (int64_t py = 0; py < 12; ++py) {
      for (int64_t px = 0; px < 14; ++px) {
        const bool expected = in_right_triangle(px, py);
        EXPECT_EQ(r.face_index[0][py][px].item<int>(), expected ? 0 : -1) << "pixel (" << px << ", " << py << ")";
        EXPECT_FLOAT_EQ(r.depth[0][py][px].item<float>(), expected ? 5.0f : 0.0f);
        covered += expected;
      }
    }
    EXPECT_EQ(covered, 28);
  }
}

TEST(Rasterize, QuadDiagonalsShareEveryPixelExactlyOnce) {
  // Corners on pixel centres, so centres lie on all four sides and on the diagonal: the left and top sides are
  // included, the right and bottom ones not, and the diagonal's centres go to exactly one of the two triangles.
  const at::Tensor v = screen({{0.5, 0.5, 3}, {8.5, 0.5, 3}, {8.5, 8.5, 3}, {0.5, 8.5, 3}});
  const std::vector<std::vector<Face>> splits = {{{0, 1, 2}, {0, 2, 3}},
                                                 {{0, 2, 1}, {0, 3, 2}},
                                                 {{0, 1, 2}, {0, 3, 2}},  // diagonal 0-2, both windings
                                                 {{0, 1, 3}, {1, 2, 3}},
                                                 {{1, 0, 3}, {1, 2, 3}}};  // diagonal 1-3
  for (const auto& split : splits) {
    const at::Tensor count = coverage_count(v, face_list(split), 10, 10);
    const at::Tensor expected = at::zeros({1, 10, 10}, at::kInt);
    expected.slice(1, 0, 8).slice(2, 0, 8).fill_(1);
    EXPECT_TRUE(at::equal(count, expected)) << "faces " << face_list(split) << "\ncount\n" << count;
  }
}

TEST(Rasterize, JitteredClosedMeshCoversEveryInteriorPixelExactlyOnce) {
  // An 8 x 8 vertex grid, 4 px apart, outline from 2.5 to 30.5 (pixel centres). Interior vertices move by
  // multiples of half a pixel, so many pixel centres fall exactly on shared edges and on shared vertices; windings
  // are random. Inside the outline every centre must belong to exactly one triangle.
  at::manual_seed(3);  // reproducible jitter, depths and windings
  const int n = 8;
  std::vector<Vertex> vertices;
  const at::Tensor jitter = at::randint(-2, 3, {n, n, 2}).to(at::kFloat) * 0.5f;
  const at::Tensor depth = at::rand({n, n}) * 3 + 2;
  for (int r = 0; r < n; ++r) {
    for (int c = 0; c < n; ++c) {
      const bool interior = r > 0 && r < n - 1 && c > 0 && c < n - 1;
      vertices.push_back({2.5f + 4 * c + (interior ? jitter[r][c][0].item<float>() : 0.0f),
                          2.5f + 4 * r + (interior ? jitter[r][c][1].item<float>() : 0.0f), depth[r][c].item<float>()});
    }
  }
  std::vector<Face> faces;
  const at::Tensor flips = at::randint(0, 2, {2 * (n - 1) * (n - 1)});
  for (int r = 0; r + 1 < n; ++r) {
    for (int c = 0; c + 1 < n; ++c) {
      const int64_t a = r * n + c, b = a + 1, d = a + n, e = d + 1;
      for (Face f : {Face{a, b, e}, Face{a, e, d}}) {
        if (flips[static_cast<int64_t>(faces.size())].item<int64_t>()) std::swap(f[1], f[2]);
        faces.push_back(f);
      }
    }
  }
  const at::Tensor v = screen(vertices), f = face_list(faces);
  const at::Tensor count = coverage_count(v, f, 33, 33);
  at::Tensor expected = at::zeros({1, 33, 33}, at::kInt);
  expected.slice(1, 2, 30).slice(2, 2, 30).fill_(1);
  EXPECT_TRUE(at::equal(count, expected)) << "coverage counts\n" << count;
  // Rendering the whole mesh covers the same pixels (the z-test never drops a covered pixel).
  EXPECT_TRUE(at::equal(cpu_raster(v, f, 33, 33).face_index.ge(0).to(at::kInt), expected));
}

TEST(Rasterize, NearerSurfaceWinsWhateverTheFaceOrder) {
  // Two overlapping triangles: the one at depth 2 must hide the one at depth 5 in the overlap, listed either way.
  const std::vector<Vertex> far = {{1, 1, 5}, {15, 1, 5}, {1, 15, 5}};
  const std::vector<Vertex> near = {{15, 15, 2}, {2, 12, 2}, {12, 2, 2}};
  for (bool near_first : {false, true}) {
    SCOPED_TRACE(near_first ? "near face first" : "far face first");
    std::vector<Vertex> all = near_first ? near : far;
    const std::vector<Vertex>& second = near_first ? far : near;
    all.insert(all.end(), second.begin(), second.end());
    const at::Tensor v = screen(all);
    const RasterOutput r = cpu_raster(v, face_list({{0, 1, 2}, {3, 4, 5}}), 16, 16);
    const int near_face = near_first ? 0 : 1;
    const at::Tensor near_alone =
        cpu_raster(v, face_list({near_first ? Face{0, 1, 2} : Face{3, 4, 5}}), 16, 16).face_index.ge(0);
    // Wherever the near triangle covers, it is what we see; pixel (7, 7) is inside both.
    EXPECT_TRUE(at::equal(r.face_index.eq(near_face), near_alone));
    EXPECT_EQ(r.face_index[0][7][7].item<int>(), near_face);
    EXPECT_FLOAT_EQ(r.depth[0][7][7].item<float>(), 2.0f);
    EXPECT_TRUE(r.face_index.eq(1 - near_face).any().item<bool>());  // the far one still shows elsewhere
  }
}

TEST(Rasterize, EqualDepthGoesToTheSmallerFaceIndex) {
  const at::Tensor v = screen({{1, 1, 4}, {9, 1, 4}, {1, 9, 4}});
  const RasterOutput r = cpu_raster(v, face_list({{0, 1, 2}, {0, 2, 1}, {1, 2, 0}}), 10, 10);
  EXPECT_TRUE(at::equal(r.face_index.ge(0), r.face_index.eq(0)));
  EXPECT_GT(r.face_index.eq(0).sum().item<int64_t>(), 0);
}

TEST(Rasterize, DepthTestMatchesAPerPixelOracleOnATriangleSoup) {
  // 60 random, intersecting triangles with varied depths: the rendered face at each pixel is the nearest of the
  // faces covering it when rasterised one by one (ties to the smaller index), with that face's depth.
  at::manual_seed(4);  // reproducible soup
  const int64_t faces_n = 60, h = 24, w = 28;
  at::Tensor v = at::cat({at::rand({1, 3 * faces_n, 1}) * (w + 8) - 4, at::rand({1, 3 * faces_n, 1}) * (h + 8) - 4,
                          at::rand({1, 3 * faces_n, 1}) * 6 + 1},
                         2);
  const at::Tensor f = at::arange(3 * faces_n, at::kLong).reshape({faces_n, 3});
  at::Tensor best_depth = at::full({1, h, w}, INFINITY), best_face = at::full({1, h, w}, -1, at::kInt);
  for (int64_t k = 0; k < faces_n; ++k) {
    const RasterOutput one = cpu_raster(v, f.slice(0, k, k + 1), h, w);
    const at::Tensor nearer = one.face_index.ge(0) & one.depth.lt(best_depth);
    best_depth = at::where(nearer, one.depth, best_depth);
    best_face = at::where(nearer, at::full_like(best_face, static_cast<int>(k)), best_face);
  }
  const RasterOutput all = cpu_raster(v, f, h, w);
  EXPECT_TRUE(at::equal(all.face_index, best_face));
  EXPECT_TRUE(at::equal(all.depth, at::where(best_face.ge(0), best_depth, at::zeros_like(best_depth))));
  // Barycentrics of covered pixels are in [0, 1] and sum to 1; uncovered ones are 0.
  const at::Tensor covered = all.face_index.ge(0);
  EXPECT_LT((all.barycentric.sum(3) - 1).abs().masked_select(covered).max().item<float>(), 1e-6f);
  EXPECT_GE(all.barycentric.min().item<float>(), 0.0f);
  EXPECT_EQ(all.barycentric.masked_select(covered.logical_not().unsqueeze(-1)).abs().sum().item<float>(), 0.0f);
}

TEST(Rasterize, BarycentricsFollowTheFaceColumnsAndReproduceVertexValues) {
  // The centre of pixel (2, 2) is the vertex at the right-angle corner; it lies on a top and a left edge, so it
  // is covered. Rotating and reflecting the face's columns must move the 1 accordingly; the vertex's depth and
  // any vertex attribute interpolated with the barycentrics come back exactly.
  const at::Tensor v = screen({{2.5, 2.5, 2}, {12.5, 2.5, 6}, {2.5, 12.5, 9}});
  const std::vector<float> attribute = {10.0f, -3.0f, 7.0f};
  for (const Face& face : {Face{0, 1, 2}, Face{1, 2, 0}, Face{2, 0, 1}, Face{0, 2, 1}, Face{2, 1, 0}, Face{1, 0, 2}}) {
    const RasterOutput r = cpu_raster(v, face_list({face}), 16, 16);
    ASSERT_EQ(r.face_index[0][2][2].item<int>(), 0);
    const at::Tensor bary = r.barycentric[0][2][2];
    float interpolated = 0;
    for (int k = 0; k < 3; ++k) {
      EXPECT_EQ(bary[k].item<float>(), face[k] == 0 ? 1.0f : 0.0f) << "column " << k;
      interpolated += bary[k].item<float>() * attribute[face[k]];
    }
    EXPECT_EQ(interpolated, attribute[0]);
    EXPECT_EQ(r.depth[0][2][2].item<float>(), 2.0f);
  }
}

TEST(Rasterize, PerspectiveCorrectOnAPlaneTiltedInDepth) {
  // A camera-space plane seen by a pinhole camera (focal f, centre c) has 1/z affine in screen space. The quad's
  // corners are placed on pixel centres with depth 2 at the top and 8 at the bottom; at every covered pixel the
  // rasteriser's depth must follow the analytic 1/z, and the camera-space Y interpolated with its barycentrics must
  // match the ray-plane intersection. Screen-space (affine) interpolation would be off by up to ~2 depth units.
  const double f = 64, c = 32, top = 4.5, bottom = 60.5;
  auto inv_depth = [&](double row) { return 0.5 + (0.125 - 0.5) * (row - top) / (bottom - top); };
  auto camera_y = [&](double row, double depth) { return -(row - c) * depth / f; };
  const at::Tensor v = screen({{4.5, 4.5, 2}, {60.5, 4.5, 2}, {60.5, 60.5, 8}, {4.5, 60.5, 8}});
  const std::vector<Face> faces = {{0, 1, 2}, {0, 2, 3}};
  const std::vector<double> vertex_y = {camera_y(top, 2), camera_y(top, 2), camera_y(bottom, 8), camera_y(bottom, 8)};
  const std::vector<double> vertex_z = {2, 2, 8, 8};
  const RasterOutput r = cpu_raster(v, face_list(faces), 64, 64);
  double worst_depth = 0, worst_y = 0, largest_affine_gap = 0;
  for (int64_t py = 0; py < 64; ++py) {
    for (int64_t px = 0; px < 64; ++px) {
      const int face = r.face_index[0][py][px].item<int>();
      if (face < 0) continue;
      const double row = py + 0.5, z = 1.0 / inv_depth(row);
      worst_depth = std::max(worst_depth, std::abs(r.depth[0][py][px].item<float>() - z) / z);
      double y = 0, affine_z = 0;
      // Screen-space barycentrics, for the affine comparison: perspective ones times z_i, renormalised.
      double screen_sum = 0;
      for (int k = 0; k < 3; ++k) screen_sum += r.barycentric[0][py][px][k].item<float>() * vertex_z[faces[face][k]];
      for (int k = 0; k < 3; ++k) {
        const double b = r.barycentric[0][py][px][k].item<float>();
        y += b * vertex_y[faces[face][k]];
        affine_z += b * vertex_z[faces[face][k]] / screen_sum * vertex_z[faces[face][k]];
      }
      worst_y = std::max(worst_y, std::abs(y - camera_y(row, z)));
      largest_affine_gap = std::max(largest_affine_gap, std::abs(affine_z - z));
    }
  }
  EXPECT_EQ(r.face_index.ge(0).sum().item<int64_t>(), 56 * 56);
  EXPECT_LT(worst_depth, 1e-6);
  EXPECT_LT(worst_y, 1e-5);
  EXPECT_GT(largest_affine_gap, 1.5);
}

TEST(Rasterize, EmptyImages) {
  const int64_t h = 8, w = 9;
  auto expect_empty = [&](const RasterOutput& r, const char* what) {
    SCOPED_TRACE(what);
    EXPECT_TRUE(r.face_index.eq(-1).all().item<bool>());
    EXPECT_TRUE(r.barycentric.eq(0).all().item<bool>());
    EXPECT_TRUE(r.depth.eq(0).all().item<bool>());
    EXPECT_EQ(r.depth.sizes(), (std::vector<int64_t>{1, h, w}));
  };
  const at::Tensor one = face_list({{0, 1, 2}});
  expect_empty(cpu_raster(screen({{1, 1, -1}, {8, 1, 2}, {1, 7, 2}}), one, h, w), "a vertex behind the camera");
  expect_empty(cpu_raster(screen({{1, 1, 0}, {8, 1, 0}, {1, 7, 0}}), one, h, w), "vertices on the camera plane");
  expect_empty(cpu_raster(screen({{1, 1, 2}, {4, 4, 2}, {7, 7, 2}}), one, h, w), "a degenerate triangle");
  expect_empty(cpu_raster(screen({{20, 1, 2}, {30, 1, 2}, {20, 7, 2}}), one, h, w), "off screen");
  expect_empty(cpu_raster(screen({{1, 1, NAN}, {8, 1, 2}, {1, 7, 2}}), one, h, w), "a NaN depth");
  expect_empty(cpu_raster(screen({{1, 1, 2}, {8, 1, 2}, {1, 7, 2}}), at::empty({0, 3}, at::kLong), h, w), "no faces");
  // A sliver thinner than any pixel centre spacing covers nothing, without error.
  expect_empty(cpu_raster(screen({{1, 1.1f, 2}, {8, 1.2f, 2}, {1, 1.3f, 2}}), one, h, w), "a sliver between rows");
}

TEST(Rasterize, BatchOfPosesMatchesImagesRasterisedAlone) {
  const test::FaceMesh mesh = test::make_face_mesh(33);
  const std::vector<double> yaws = {0.0, 35.0, -60.0, 90.0};
  const at::Tensor v = test::project_face(mesh.vertices, yaws, 64, 80);
  const RasterOutput batch = cpu_raster(v, mesh.faces.to(at::kInt), 64, 80);
  for (size_t b = 0; b < yaws.size(); ++b) {
    const RasterOutput alone = cpu_raster(v.slice(0, b, b + 1), mesh.faces, 64, 80);
    EXPECT_TRUE(at::equal(batch.face_index.slice(0, b, b + 1), alone.face_index)) << "yaw " << yaws[b];
    EXPECT_TRUE(at::equal(batch.barycentric.slice(0, b, b + 1), alone.barycentric)) << "yaw " << yaws[b];
    EXPECT_TRUE(at::equal(batch.depth.slice(0, b, b + 1), alone.depth)) << "yaw " << yaws[b];
  }
  // The poses really differ: coverage changes as the face turns away.
  const at::Tensor area = batch.face_index.ge(0).sum({1, 2});
  EXPECT_GT(area[0].item<int64_t>(), area[3].item<int64_t>());
  EXPECT_FALSE(at::equal(batch.face_index[0], batch.face_index[1]));
  // The face seen frontally: the nose tip (nearest point) is drawn, at a depth nearer than the rim.
  EXPECT_LT(batch.depth[0][32][40].item<float>(), 9.5f);
}

TEST(Rasterize, ResultDoesNotDependOnTheThreadCount) {
  const test::FaceMesh mesh = test::make_face_mesh(41);
  const at::Tensor v = test::project_face(mesh.vertices, {10.0, -25.0}, 100, 90);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const RasterOutput one = cpu_raster(v, mesh.faces, 100, 90);
  at::set_num_threads(std::max(threads, 4));
  const RasterOutput many = cpu_raster(v, mesh.faces, 100, 90);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one.face_index, many.face_index));
  EXPECT_TRUE(at::equal(one.barycentric, many.barycentric));
  EXPECT_TRUE(at::equal(one.depth, many.depth));
}

TEST(Rasterize, RejectsBadInputsWithShapesInTheMessage) {
  const at::Tensor v = screen({{1, 1, 2}, {8, 1, 2}, {1, 7, 2}});
  const at::Tensor f = face_list({{0, 1, 2}});
  EXPECT_THROW(cpu_raster(v.squeeze(0), f, 8, 8), RuntimeError);
  EXPECT_THROW(cpu_raster(v.to(at::kDouble), f, 8, 8), RuntimeError);
  EXPECT_THROW(cpu_raster(v, f.to(at::kFloat), 8, 8), RuntimeError);
  EXPECT_THROW(cpu_raster(v, f, 0, 8), RuntimeError);
  try {
    cpu_raster(v, face_list({{0, 1, 3}}), 8, 8);
    FAIL() << "an out-of-range vertex index was accepted";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("[1, 3, 3]"), std::string::npos) << e.what();
  }
  // The range is read once per faces tensor: a checked tensor edited in place, or a new tensor (possibly at the same
  // address), is checked again.
  at::Tensor g = face_list({{0, 1, 2}});
  (void)cpu_raster(v, g, 8, 8);
  g[0][2] = 5;
  EXPECT_THROW(cpu_raster(v, g, 8, 8), RuntimeError) << "an in-place edit bumps the version: checked again";
  for (int i = 0; i < 3; ++i) {
    (void)cpu_raster(v, face_list({{0, 1, 2}}), 8, 8);
    EXPECT_THROW(cpu_raster(v, face_list({{0, 1, 4}}), 8, 8), RuntimeError) << "a fresh tensor is checked, round " << i;
  }
}
