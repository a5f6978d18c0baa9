// The photo front end without photos: the canonical-mesh reader, the pose fit on synthetic landmarks, and the
// unwrap of a synthetic render of a known texture.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "models/face3d/canonical_mesh.h"
#include "models/face3d/photo_fit.h"
#include "models/face3d/uv_unwrap.h"
#include "tests/photo/photo_test_util.h"
#include "tests/support/fixtures.h"

namespace fs = std::filesystem;
namespace f3d = facetex::models::face3d;
namespace test = facetex::test;
using namespace facetex::test::photo;

namespace {

fs::path mesh_file() { return test::assets_dir() / "mediapipe" / "geometry_pipeline_metadata_landmarks.binarypb"; }
fs::path map_file() { return test::assets_dir() / "human" / "facemeshcoords.ts"; }

double rotation_error_deg(const Mat3& a, const Mat3& b) {  // angle of a^T b
  double tr = 0;
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k) tr += a[k][i] * b[k][i];
  return std::acos(std::clamp((tr - 1) / 2, -1.0, 1.0)) * 180 / 3.14159265358979323846;
}

at::Tensor project_points(const at::Tensor& vertices, const std::vector<int64_t>& ids, const Mat3& r, double s,
                          std::array<double, 2> t) {
  at::Tensor p, d;
  f3d::project_vertices(vertices, r, s, t, &p, &d);
  return p.index_select(0, at::tensor(ids, at::kLong));
}

}  // namespace

TEST(CanonicalMesh, CountsExtentUvAndWinding) {
  FACETEX_REQUIRE_ASSETS();
  const f3d::CanonicalMesh m = f3d::load_canonical_mesh(mesh_file());
  ASSERT_EQ(m.vertices.sizes(), (std::vector<int64_t>{468, 3}));
  ASSERT_EQ(m.uv.sizes(), (std::vector<int64_t>{468, 2}));
  ASSERT_EQ(m.triangles.sizes(), (std::vector<int64_t>{898, 3}));
  EXPECT_EQ(m.vertices.scalar_type(), at::kFloat);
  EXPECT_EQ(m.triangles.scalar_type(), at::kLong);
  // Extent 15.5 x 17.7 x 10.0 cm (real-assets.md).
  const at::Tensor ext = std::get<0>(m.vertices.max(0)) - std::get<0>(m.vertices.min(0));
  EXPECT_NEAR(ext[0].item<float>(), 15.5, 0.3);
  EXPECT_NEAR(ext[1].item<float>(), 17.7, 0.3);
  EXPECT_NEAR(ext[2].item<float>(), 10.0, 0.3);
  EXPECT_GE(m.uv.min().item<float>(), 0.f);
  EXPECT_LE(m.uv.max().item<float>(), 1.f);
  EXPECT_GE(m.triangles.min().item<int64_t>(), 0);
  EXPECT_LT(m.triangles.max().item<int64_t>(), 468);
  EXPECT_EQ(std::get<0>(at::_unique(m.triangles.flatten())).numel(), 468) << "every vertex is used";
  // v is up after the flip: the forehead (largest y) has the largest v, the chin the smallest.
  const int64_t top = m.vertices.select(1, 1).argmax().item<int64_t>();
  const int64_t bottom = m.vertices.select(1, 1).argmin().item<int64_t>();
  EXPECT_GT(m.uv[top][1].item<float>(), 0.8f);
  EXPECT_LT(m.uv[bottom][1].item<float>(), 0.2f);
  // Seen from the front (frontal pose), nearly all triangles face the camera (R4's winding).
  at::Tensor p, d;
  f3d::project_vertices(m.vertices, pose_rotation(0, 0, 0), 10.0, {200, 200}, &p, &d);
  const int64_t front = f3d::front_facing(p, m.triangles).sum().item<int64_t>();
  EXPECT_GT(front, 850) << front;
}

TEST(CanonicalMesh, Dlib68Map) {
  FACETEX_REQUIRE_ASSETS();
  const std::vector<int64_t> map = f3d::load_dlib68_to_mesh(map_file());
  ASSERT_EQ(map.size(), 68u);
  for (int64_t v : map) {
    EXPECT_GE(v, 0);
    EXPECT_LT(v, 468);
  }
  EXPECT_EQ(map[0], 127);   // jaw start
  EXPECT_EQ(map[8], 152);   // chin
  EXPECT_EQ(map[30], 4);    // nose tip
  EXPECT_EQ(map[36], 33);   // outer eye corners
  EXPECT_EQ(map[45], 263);
  EXPECT_EQ(map[67], 178);
  // Left/right symmetric landmark pairs sit on opposite sides of the mesh (x) at about the same height (y).
  const f3d::CanonicalMesh m = f3d::load_canonical_mesh(mesh_file());
  auto v = m.vertices.accessor<float, 2>();
  for (auto [l, r] : std::vector<std::pair<int, int>>{{36, 45}, {39, 42}, {48, 54}, {17, 26}, {0, 16}}) {
    EXPECT_LT(v[map[l]][0] * v[map[r]][0], 0.f) << l << "/" << r;
    EXPECT_NEAR(v[map[l]][1], v[map[r]][1], 0.6) << l << "/" << r;
  }
}

TEST(CanonicalMesh, MalformedFilesAreDataErrors) {
  test::TempDir tmp;
  test::write_bytes(tmp / "garbage.binarypb", std::string("\x0a\xff\xff\xff\xff\x0f", 6));  // field 1, huge length
  EXPECT_THROW(f3d::load_canonical_mesh(tmp / "garbage.binarypb"), facetex::DataError);
  test::write_bytes(tmp / "empty.binarypb", "");
  EXPECT_THROW(f3d::load_canonical_mesh(tmp / "empty.binarypb"), facetex::DataError);
  EXPECT_THROW(f3d::load_canonical_mesh(tmp / "missing.binarypb"), facetex::DataError);
  test::write_bytes(tmp / "a.ts", "export const VTX68: number[] = [ 1, 2, 3 ];");
  EXPECT_THROW(f3d::load_dlib68_to_mesh(tmp / "a.ts"), facetex::DataError);
  test::write_bytes(tmp / "b.ts", "export const VTX33 = [1];");
  EXPECT_THROW(f3d::load_dlib68_to_mesh(tmp / "b.ts"), facetex::DataError);
  std::string why;
  if (test::assets_available(&why)) {  // a cut-short real file
    std::string bytes = test::read_bytes(mesh_file());
    test::write_bytes(tmp / "cut.binarypb", bytes.substr(0, bytes.size() / 2));
    EXPECT_THROW(f3d::load_canonical_mesh(tmp / "cut.binarypb"), facetex::DataError);
  }
}

TEST(PhotoFit, RecoversAKnownPoseFromExactLandmarks) {
  const SyntheticMesh m = make_synthetic_mesh();
  std::mt19937 rng(3);
  std::vector<int64_t> ids;
  for (int i = 0; i < 51; ++i) ids.push_back(std::uniform_int_distribution<int64_t>(0, m.vertices.size(0) - 1)(rng));
  for (auto [yaw, pitch, roll] : std::vector<std::array<double, 3>>{{0, 0, 0}, {25, -10, 5}, {-40, 15, -20}, {10, 30, 45}}) {
    const Mat3 r = pose_rotation(yaw, pitch, roll);
    const double s = 4.5;
    const std::array<double, 2> t{310.5, 242.25};
    const at::Tensor lm = project_points(m.vertices, ids, r, s, t);
    for (bool refine : {false, true}) {
      f3d::PoseFitOptions o;
      o.refine = refine;
      const f3d::PoseFit fit = f3d::fit_pose(m.vertices, ids, lm, o);
      EXPECT_LT(fit.mean_residual_px, 1e-3) << yaw << " " << refine;
      EXPECT_LT(rotation_error_deg(fit.rotation, r), 1e-3) << yaw << " " << refine;
      EXPECT_NEAR(fit.scale, s, 1e-4);
      EXPECT_NEAR(fit.translation[0], t[0], 1e-3);
      EXPECT_NEAR(fit.translation[1], t[1], 1e-3);
      const auto ypr = fit.yaw_pitch_roll_degrees();
      EXPECT_NEAR(ypr[0], yaw, 1e-3);
      EXPECT_NEAR(ypr[1], pitch, 1e-3);
      EXPECT_NEAR(ypr[2], roll, 1e-3);
      // A proper rotation.
      double det = fit.rotation[0][0] * (fit.rotation[1][1] * fit.rotation[2][2] - fit.rotation[1][2] * fit.rotation[2][1]) -
                   fit.rotation[0][1] * (fit.rotation[1][0] * fit.rotation[2][2] - fit.rotation[1][2] * fit.rotation[2][0]) +
                   fit.rotation[0][2] * (fit.rotation[1][0] * fit.rotation[2][1] - fit.rotation[1][1] * fit.rotation[2][0]);
      EXPECT_NEAR(det, 1.0, 1e-9);
      ASSERT_EQ(fit.projected.sizes(), (std::vector<int64_t>{m.vertices.size(0), 2}));
      ASSERT_EQ(fit.depth.sizes(), (std::vector<int64_t>{m.vertices.size(0)}));
      EXPECT_LT((fit.projected.index_select(0, at::tensor(ids, at::kLong)) - lm).abs().max().item<float>(), 1e-3);
    }
  }
}

TEST(PhotoFit, NoisyLandmarksAndRefinement) {
  const SyntheticMesh m = make_synthetic_mesh();
  std::mt19937 rng(7);
  std::vector<int64_t> ids;
  for (int i = 0; i < 51; ++i) ids.push_back(std::uniform_int_distribution<int64_t>(0, m.vertices.size(0) - 1)(rng));
  const Mat3 r = pose_rotation(30, -12, 8);
  at::Tensor lm = project_points(m.vertices, ids, r, 5.0, {200, 180});
  std::normal_distribution<float> noise(0.f, 1.0f);
  auto a = lm.accessor<float, 2>();
  for (int i = 0; i < lm.size(0); ++i) {
    a[i][0] += noise(rng);
    a[i][1] += noise(rng);
  }
  f3d::PoseFitOptions lin;
  lin.refine = false;
  const f3d::PoseFit f0 = f3d::fit_pose(m.vertices, ids, lm, lin);
  const f3d::PoseFit f1 = f3d::fit_pose(m.vertices, ids, lm);
  // 1 px of noise per axis: the mean residual is about sqrt(pi/2) ~ 1.25 px (a little less: 6 parameters fitted).
  EXPECT_GT(f1.mean_residual_px, 0.8);
  EXPECT_LT(f1.mean_residual_px, 1.5);
  EXPECT_LT(rotation_error_deg(f1.rotation, r), 3.0);
  EXPECT_NEAR(f1.scale, 5.0, 0.1);
  // The refinement minimises the squared reprojection error, which the linear start does not.
  auto sq = [&](const f3d::PoseFit& f) {
    return (f.projected.index_select(0, at::tensor(ids, at::kLong)) - lm).pow(2).sum().item<double>();
  };
  EXPECT_LE(sq(f1), sq(f0) + 1e-6);
  EXPECT_GE(f1.iterations, 1);
}

TEST(PhotoFit, DegenerateInputIsADataError) {
  const SyntheticMesh m = make_synthetic_mesh();
  const std::vector<int64_t> ids{0, 100, 200, 300, 400, 500};
  at::Tensor same = at::zeros({6, 2}, at::kFloat) + 50;  // every landmark at one point
  EXPECT_THROW(f3d::fit_pose(m.vertices, ids, same), facetex::DataError);
  at::Tensor line = at::zeros({6, 2}, at::kFloat);
  for (int i = 0; i < 6; ++i) line[i][0] = float(10 * i);
  EXPECT_THROW(f3d::fit_pose(m.vertices, ids, line), facetex::DataError);
  EXPECT_THROW(f3d::fit_pose(m.vertices, {0, 1, 2}, at::zeros({3, 2})), facetex::DataError);  // too few
  EXPECT_THROW(f3d::fit_pose(m.vertices, ids, at::zeros({5, 2})), facetex::UsageError);       // shape
}

TEST(PhotoFit, CanonicalMeshWithDlib68Map) {
  FACETEX_REQUIRE_ASSETS();
  const f3d::CanonicalMesh mesh = f3d::load_canonical_mesh(mesh_file());
  const std::vector<int64_t> map = f3d::load_dlib68_to_mesh(map_file());
  const Mat3 r = pose_rotation(-20, 10, 4);
  const at::Tensor lm68 = project_points(mesh.vertices, map, r, 3.5, {250, 200});
  const f3d::PoseFit fit = f3d::fit_dlib68(mesh, map, lm68);
  EXPECT_LT(fit.mean_residual_px, 1e-3);
  EXPECT_LT(rotation_error_deg(fit.rotation, r), 1e-3);
  EXPECT_NEAR(fit.scale, 3.5, 1e-4);
}

namespace {

struct UnwrapCheck {
  double coverage = 0, mean_abs_error = 0;
  int64_t compared = 0;
};
// Mean |unwrapped - truth| over visible texels whose 3x3 neighbourhood is visible (away from the mask's edge,
// where bilinear sampling mixes in the background).
UnwrapCheck compare(const f3d::UvTexture& u, const at::Tensor& truth) {
  const int64_t R = u.mask.size(0);
  auto mk = u.mask.accessor<uint8_t, 2>();
  auto a = u.texture.accessor<uint8_t, 3>();
  auto b = truth.accessor<uint8_t, 3>();
  UnwrapCheck c;
  c.coverage = u.coverage;
  double sum = 0;
  for (int64_t y = 1; y + 1 < R; ++y)
    for (int64_t x = 1; x + 1 < R; ++x) {
      bool inner = true;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) inner = inner && mk[y + dy][x + dx];
      if (!inner) continue;
      for (int ch = 0; ch < 3; ++ch) sum += std::abs(int(a[ch][y][x]) - int(b[ch][y][x]));
      ++c.compared;
    }
  c.mean_abs_error = c.compared ? sum / (3.0 * c.compared) : 0;
  return c;
}

}  // namespace

TEST(UvUnwrap, RecoversAKnownTextureFromASyntheticRender) {
  const SyntheticMesh m = make_synthetic_mesh();
  const int R = 128, H = 480, W = 520;
  const at::Tensor truth = make_texture(R);
  for (auto [yaw, pitch, roll] : std::vector<std::array<double, 3>>{{0, 0, 0}, {30, 10, -5}}) {
    at::Tensor p, d;
    f3d::project_vertices(m.vertices, pose_rotation(yaw, pitch, roll), 28.0, {260, 240}, &p, &d);
    const at::Tensor img = render_texture(truth, m.uv, m.triangles, p, d, H, W);
    f3d::UnwrapOptions o;
    o.resolution = R;
    const f3d::UvTexture u = f3d::unwrap_to_uv(img, m.uv, m.triangles, p, d, o);
    ASSERT_EQ(u.texture.sizes(), (std::vector<int64_t>{3, R, R}));
    ASSERT_EQ(u.mask.sizes(), (std::vector<int64_t>{R, R}));
    EXPECT_NEAR(u.chart_coverage, 1.0, 1e-9) << "the planar UV layout covers the whole square";
    const UnwrapCheck c = compare(u, truth);
    EXPECT_GT(c.compared, R * R / 3) << yaw;
    EXPECT_LT(c.mean_abs_error, 2.5) << "yaw " << yaw << ", " << c.compared << " texels";
    if (yaw == 0) {
      EXPECT_GT(u.coverage, 0.97) << "a frontal view sees the whole height field";
    }
    // Nothing outside the mask is written.
    EXPECT_EQ((u.texture.sum(0) * (1 - u.mask.to(at::kLong))).sum().item<int64_t>(), 0);
  }
}

TEST(UvUnwrap, OccludedTexelsAreMasked) {
  // At 55 degrees of yaw the nose bump hides part of the front-facing cheek behind it: with the z-buffer test those
  // texels are masked; without it (a huge tolerance) they would take the nose's colour.
  const SyntheticMesh m = make_synthetic_mesh(49);
  const int R = 128;
  const at::Tensor truth = make_texture(R);
  at::Tensor p, d;
  f3d::project_vertices(m.vertices, pose_rotation(55, 0, 0), 28.0, {260, 240}, &p, &d);
  const at::Tensor img = render_texture(truth, m.uv, m.triangles, p, d, 480, 520);
  f3d::UnwrapOptions o;
  o.resolution = R;
  const f3d::UvTexture u = f3d::unwrap_to_uv(img, m.uv, m.triangles, p, d, o);
  o.depth_tolerance = 1e9;
  const f3d::UvTexture no_ztest = f3d::unwrap_to_uv(img, m.uv, m.triangles, p, d, o);
  const int64_t hidden = (no_ztest.mask.to(at::kInt) - u.mask.to(at::kInt)).sum().item<int64_t>();
  EXPECT_GT(hidden, 50) << "some front-facing texels are occluded";
  EXPECT_EQ((u.mask.to(at::kInt) - no_ztest.mask.to(at::kInt)).clamp_min(0).sum().item<int64_t>(), 0);
  const UnwrapCheck with = compare(u, truth), without = compare(no_ztest, truth);
  EXPECT_LT(with.mean_abs_error, 3.0);
  EXPECT_GT(without.mean_abs_error, with.mean_abs_error + 0.5) << "the occluded texels would be wrong";
  // Back faces are culled: turning the face away (yaw 180) leaves nothing visible.
  f3d::project_vertices(m.vertices, pose_rotation(180, 0, 0), 28.0, {260, 240}, &p, &d);
  o.depth_tolerance = 0.02;
  EXPECT_EQ(f3d::unwrap_to_uv(img, m.uv, m.triangles, p, d, o).coverage, 0.0);
}

TEST(UvUnwrap, PointsOutsideThePhotoAreNotVisibleAndOverlayDraws) {
  const SyntheticMesh m = make_synthetic_mesh();
  at::Tensor p, d;
  f3d::project_vertices(m.vertices, pose_rotation(0, 0, 0), 28.0, {0, 240}, &p, &d);  // left half off-image
  const at::Tensor img = at::full({480, 520, 3}, 128, at::kByte);
  f3d::UnwrapOptions o;
  o.resolution = 64;
  const f3d::UvTexture u = f3d::unwrap_to_uv(img, m.uv, m.triangles, p, d, o);
  EXPECT_NEAR(u.coverage, 0.5, 0.05);
  f3d::OverlayOptions ov;
  ov.points = p.slice(0, 0, 10);
  ov.box = {10, 10, 100, 100};
  const at::Tensor drawn = f3d::draw_mesh_overlay(img, p, d, m.triangles, ov);
  ASSERT_EQ(drawn.sizes(), img.sizes());
  EXPECT_GT((drawn.to(at::kInt) - img.to(at::kInt)).abs().sum().item<int64_t>(), 0);
  EXPECT_THROW(f3d::unwrap_to_uv(img.to(at::kFloat), m.uv, m.triangles, p, d, o), facetex::UsageError);
}
