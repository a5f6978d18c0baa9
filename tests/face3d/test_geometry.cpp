// 3DMM geometry (coefficient split, shape formation, Euler rotation, normals, SH shading) and the perspective camera,
// against the formulas of paper-system-spec.md §3.6-3.8 and §3.11.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "core/error.h"
#include "models/face3d/camera.h"
#include "models/face3d/geometry.h"
#include "models/face3d/morphable_model.h"

using namespace facetex;
using namespace facetex::models::face3d;

namespace {

constexpr double kPi = 3.14159265358979323846;

MorphableModel small_model() {
  SyntheticModelOptions o;
  o.seed = 11;
  o.grid = 16;
  o.id_dims = 12;
  o.exp_dims = 7;
  o.tex_dims = 9;
  return make_synthetic_model(o);
}

// The spec's matrices, written out element by element in double.
at::Tensor spec_rotation(double x, double y, double z) {
  const double cx = std::cos(x), sx = std::sin(x), cy = std::cos(y), sy = std::sin(y), cz = std::cos(z),
               sz = std::sin(z);
  const at::Tensor rx = at::tensor({1.0, 0.0, 0.0, 0.0, cx, -sx, 0.0, sx, cx}, at::kDouble).view({3, 3});
  const at::Tensor ry = at::tensor({cy, 0.0, sy, 0.0, 1.0, 0.0, -sy, 0.0, cy}, at::kDouble).view({3, 3});
  const at::Tensor rz = at::tensor({cz, -sz, 0.0, sz, cz, 0.0, 0.0, 0.0, 1.0}, at::kDouble).view({3, 3});
  return at::matmul(rz, at::matmul(ry, rx));
}

}  // namespace

TEST(Coefficients, BfmLayoutSplitsAndJoins) {
  const CoeffLayout bfm;
  EXPECT_EQ(bfm.total(), 257);
  const at::Tensor c = at::arange(2 * 257, at::kFloat).view({2, 257});
  const Coeffs s = split_coeffs(c);
  EXPECT_EQ(s.id.size(1), 80);
  EXPECT_EQ(s.exp[0][0].item<float>(), 80);
  EXPECT_EQ(s.tex[0][0].item<float>(), 144);
  EXPECT_EQ(s.angles[1][0].item<float>(), 257 + 224);
  EXPECT_EQ(s.light[0][0].item<float>(), 227);
  EXPECT_EQ(s.trans[0][2].item<float>(), 256);
  EXPECT_TRUE(at::equal(join_coeffs(s), c));
  EXPECT_THROW(split_coeffs(at::zeros({2, 256})), RuntimeError);

  const MorphableModel m = small_model();
  const CoeffLayout l = CoeffLayout::for_model(m);
  EXPECT_EQ(l.id, 12);
  EXPECT_EQ(l.exp, 7);
  EXPECT_EQ(l.tex, 9);
  EXPECT_EQ(l.total(), 12 + 7 + 9 + 3 + 27 + 3);
}

TEST(Rotation, MatchesTheSpecFormulasAndIsProper) {
  const at::Tensor angles = at::tensor({0.3, 0.0, 0.0, 0.0, -0.7, 0.0, 0.0, 0.0, 1.1, 0.4, -1.2, 2.5, -3.0, 0.9, -0.2},
                                       at::kDouble)
                                .view({5, 3});
  const at::Tensor r = rotation_matrices(angles);
  ASSERT_EQ(r.sizes(), (std::vector<int64_t>{5, 3, 3}));
  for (int64_t b = 0; b < 5; ++b) {
    const at::Tensor expected = spec_rotation(angles[b][0].item<double>(), angles[b][1].item<double>(),
                                              angles[b][2].item<double>());
    EXPECT_TRUE(at::allclose(r[b], expected, 1e-12, 1e-12)) << r[b] << expected;
    EXPECT_TRUE(at::allclose(at::matmul(r[b].t(), r[b]), at::eye(3, at::kDouble), 1e-12, 1e-12));
    EXPECT_NEAR(at::det(r[b]).item<double>(), 1.0, 1e-12);
  }
  // Known cases: pitch x only is Rx; yaw +90 degrees turns +z (towards the camera) into +x.
  EXPECT_NEAR(r[0][1][2].item<double>(), -std::sin(0.3), 1e-12);
  EXPECT_NEAR(r[0][2][1].item<double>(), std::sin(0.3), 1e-12);
  const at::Tensor yaw90 = rotation_matrices(at::tensor({0.0, kPi / 2, 0.0}, at::kDouble).view({1, 3}));
  const at::Tensor z_axis = at::tensor({0.0, 0.0, 1.0}, at::kDouble).view({1, 1, 3});
  EXPECT_TRUE(at::allclose(rigid_transform(z_axis, yaw90), at::tensor({1.0, 0.0, 0.0}, at::kDouble).view({1, 1, 3}),
                           1e-12, 1e-12));
  // float32 works and is differentiable through the angles.
  at::Tensor a = at::tensor({0.1f, 0.2f, 0.3f}).view({1, 3}).requires_grad_(true);
  rotation_matrices(a).sum().backward();
  EXPECT_TRUE(a.grad().defined());
}

TEST(ShapeFormation, IsCentredAndLinearInTheCoefficients) {
  const MorphableModel m = small_model();
  const int64_t n = m.num_vertices();
  const at::Tensor zero_id = at::zeros({1, 12}), zero_exp = at::zeros({1, 7});
  const at::Tensor base = shape_formation(m, zero_id, zero_exp);
  ASSERT_EQ(base.sizes(), (std::vector<int64_t>{1, n, 3}));
  EXPECT_TRUE(at::allclose(base[0], m.mean_shape - m.mean_shape.mean(0, true), 1e-6, 1e-6));
  EXPECT_LT(base[0].mean(0).abs().max().item<float>(), 1e-6);

  at::manual_seed(1);
  const at::Tensor a1 = at::randn({3, 12}), a2 = at::randn({3, 12}), b1 = at::randn({3, 7}), b2 = at::randn({3, 7});
  const at::Tensor s1 = shape_formation(m, a1, b1) - base, s2 = shape_formation(m, a2, b2) - base;
  const at::Tensor s12 = shape_formation(m, a1 + 2 * a2, b1 + 2 * b2) - base;
  EXPECT_TRUE(at::allclose(s12, s1 + 2 * s2, 1e-4, 1e-5));
  // Identity coefficient k moves vertex v's coordinate c by idBase[3v + c, k] (the file's interleaved xyz rows).
  at::Tensor one = at::zeros({1, 12});
  one[0][5] = 1;
  const at::Tensor moved = shape_formation(m, one, zero_exp) - base;
  EXPECT_TRUE(at::allclose(moved[0].reshape({-1}), m.id_base.select(1, 5), 1e-5, 1e-6));
  // Centring uses the mean shape's centroid, not the deformed shape's: the displacement is not re-centred.
  EXPECT_TRUE(at::allclose(moved[0].mean(0), m.id_base.select(1, 5).view({n, 3}).mean(0), 1e-6, 1e-6));

  const at::Tensor albedo = texture_formation(m, at::zeros({2, 9}));
  EXPECT_TRUE(at::allclose(albedo[1], m.mean_tex));
  EXPECT_THROW(shape_formation(m, at::zeros({1, 11}), zero_exp), RuntimeError);
}

TEST(PoseFace, RotatesThenTranslates) {
  const MorphableModel m = small_model();
  at::Tensor c = at::zeros({2, CoeffLayout::for_model(m).total()});
  Coeffs k = split_coeffs(c, CoeffLayout::for_model(m));
  k.angles[1][1] = 0.5;
  k.trans[1][0] = 0.25;
  k.trans[1][2] = -1.0;
  const PosedFace p = pose_face(m, k);
  EXPECT_TRUE(at::allclose(p.vertices[0], p.shape[0]));
  const at::Tensor r = spec_rotation(0, 0.5, 0).to(at::kFloat);
  const at::Tensor expected = at::matmul(p.shape[1], r.t()) + at::tensor({0.25f, 0.0f, -1.0f});
  EXPECT_TRUE(at::allclose(p.vertices[1], expected, 1e-5, 1e-6));
}

TEST(Normals, FlatRegionPointsAtTheCameraAndRotatesWithThePose) {
  // A flat 3x3-vertex patch in z = 0, triangulated counter-clockwise seen from +z: every normal is +z.
  std::vector<float> verts;
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) verts.insert(verts.end(), {static_cast<float>(c), static_cast<float>(-r), 0.0f});
  }
  const at::Tensor v = at::tensor(verts).view({1, 9, 3});
  std::vector<int64_t> tris;
  for (int r = 0; r < 2; ++r) {
    for (int c = 0; c < 2; ++c) {
      const int64_t a = r * 3 + c, b = a + 1, d = a + 3, e = d + 1;
      tris.insert(tris.end(), {a, d, b, b, d, e});
    }
  }
  const at::Tensor tri = at::tensor(tris).view({8, 3});
  const at::Tensor fn = face_normals(v, tri);
  EXPECT_TRUE(at::allclose(fn, at::tensor({0.0f, 0.0f, 1.0f}).expand({1, 8, 3})));
  // point_buf for vertex 4 (the centre, 6 faces) and a padded corner; padding id F = 8 adds a zero normal.
  at::Tensor pb = at::full({9, 8}, 8, at::kLong);
  for (int64_t f = 0; f < 8; ++f) {
    for (int k = 0; k < 3; ++k) {
      const int64_t vid = tris[static_cast<size_t>(3 * f + k)];
      for (int slot = 0; slot < 8; ++slot) {
        if (pb[vid][slot].item<int64_t>() == 8) {
          pb[vid][slot] = f;
          break;
        }
      }
    }
  }
  const at::Tensor vn = vertex_normals(fn, pb);
  EXPECT_TRUE(at::allclose(vn, at::tensor({0.0f, 0.0f, 1.0f}).expand({1, 9, 3}), 1e-6, 1e-6));

  // On the synthetic face the middle of the forehead faces the camera, and yaw +90 degrees turns it to +x.
  const MorphableModel m = small_model();
  const at::Tensor shape = shape_formation(m, at::zeros({1, 12}), at::zeros({1, 7}));
  const at::Tensor n = vertex_normals(face_normals(shape, m.triangles), m.point_buf);
  const int64_t forehead = 3 * 16 + 8;  // row 3 of 16 (near the top), middle column
  EXPECT_GT(n[0][forehead][2].item<float>(), 0.85f) << n[0][forehead];
  EXPECT_TRUE(at::allclose(n.norm(2, {2}), at::ones({1, m.num_vertices()}), 1e-5, 1e-5));
  const at::Tensor yaw = rotation_matrices(at::tensor({0.0f, static_cast<float>(kPi / 2), 0.0f}).view({1, 3}));
  const at::Tensor turned = rigid_transform(n, yaw);
  EXPECT_GT(turned[0][forehead][0].item<float>(), 0.85f);
}

TEST(SphericalHarmonics, AmbientTermAndFirstBand) {
  const at::Tensor normals = at::tensor({0.0f, 0.0f, 1.0f, 0.0f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f}).view({1, 3, 3});
  // gamma = 0: only Deep3DFaceRecon's +0.8 ambient remains: 0.8 * pi / sqrt(4 pi) for every channel and normal.
  const at::Tensor ambient = sh_shading(normals, at::zeros({1, 27}));
  EXPECT_TRUE(at::allclose(ambient, at::full({1, 3, 3}, 0.8 * kPi / std::sqrt(4 * kPi)), 1e-6, 1e-6));
  // Red coefficient 1 (-a1 c1 ny) and green coefficient 2 (a1 c1 nz); a1 c1 = sqrt(pi).
  at::Tensor light = at::zeros({1, 27});
  light[0][1] = 1.0;
  light[0][9 + 2] = 1.0;
  light[0][18 + 3] = 1.0;  // blue: -a1 c1 nx
  const at::Tensor s = sh_shading(normals, light) - ambient;
  const float a1c1 = static_cast<float>(std::sqrt(kPi));
  const at::Tensor expected =
      at::tensor({0.0f, a1c1, 0.0f, -a1c1, 0.0f, 0.0f, 0.0f, 0.0f, -a1c1}).view({1, 3, 3});  // [normal][channel]
  EXPECT_TRUE(at::allclose(s, expected, 1e-5, 1e-5)) << s;
}

TEST(Camera, IntrinsicsFromTheCropBbox) {
  // bbox = [left/s', up/s', s] with s' = 102/s.
  const at::Tensor bbox = at::tensor({100.0f, 50.0f, 204.0f, 0.0f, 0.0f, 102.0f}).view({2, 3});
  const CameraIntrinsics c = intrinsics_from_bbox(bbox);
  // Sample 0: s' = 0.5, so 1/s' = 2.
  EXPECT_FLOAT_EQ(c.fx[0].item<float>(), 0.98f * 1015.0f * 2.0f);
  EXPECT_FLOAT_EQ(c.fy[0].item<float>(), 1015.0f * 2.0f);
  EXPECT_FLOAT_EQ(c.cx[0].item<float>(), 100.0f + 112.0f * 2.0f);
  EXPECT_FLOAT_EQ(c.cy[0].item<float>(), 50.0f + 112.0f * 2.0f);
  // Sample 1 is the 224 crop frame itself.
  EXPECT_FLOAT_EQ(c.cx[1].item<float>(), 112.0f);
  EXPECT_FLOAT_EQ(c.fy[1].item<float>(), 1015.0f);
  CameraOptions o;
  o.x_squeeze = 1.0;
  o.focal = 500;
  o.crop.crop_size = 128;
  const CameraIntrinsics d = intrinsics_from_bbox(bbox, o);
  EXPECT_FLOAT_EQ(d.fx[1].item<float>(), 500.0f);
  EXPECT_FLOAT_EQ(d.cx[1].item<float>(), 64.0f);
}

TEST(Camera, ProjectsToRasteriserScreenCoordinates) {
  const CameraIntrinsics c = intrinsics_from_bbox(at::tensor({10.0f, 20.0f, 51.0f}).view({1, 3}));
  const float fx = c.fx[0].item<float>(), fy = c.fy[0].item<float>(), cx = c.cx[0].item<float>(),
              cy = c.cy[0].item<float>();
  const at::Tensor pts = at::tensor({0.0f, 0.0f, 0.0f,   // origin -> principal point, depth 10
                                     0.0f, 0.0f, 1.0f,   // nearer the camera: depth 9
                                     1.0f, 0.0f, 0.0f,   // +X -> to the right
                                     0.0f, 1.0f, 0.0f,   // +Y -> up, i.e. a smaller row
                                     1.0f, 1.0f, -2.0f}) // further away: smaller offsets
                             .view({1, 5, 3});
  const at::Tensor s = project_to_screen(pts, c);
  ASSERT_EQ(s.sizes(), (std::vector<int64_t>{1, 5, 3}));
  ASSERT_EQ(s.scalar_type(), at::kFloat);
  auto px = [&](int i, int k) { return s[0][i][k].item<float>(); };
  EXPECT_FLOAT_EQ(px(0, 0), cx);
  EXPECT_FLOAT_EQ(px(0, 1), cy);
  EXPECT_FLOAT_EQ(px(0, 2), 10.0f);
  EXPECT_FLOAT_EQ(px(1, 0), cx);
  EXPECT_FLOAT_EQ(px(1, 2), 9.0f);
  EXPECT_FLOAT_EQ(px(2, 0), cx + fx / 10.0f);
  EXPECT_FLOAT_EQ(px(2, 1), cy);
  EXPECT_FLOAT_EQ(px(3, 1), cy - fy / 10.0f);
  EXPECT_FLOAT_EQ(px(4, 0), cx + fx / 12.0f);
  EXPECT_FLOAT_EQ(px(4, 1), cy - fy / 12.0f);
  EXPECT_FLOAT_EQ(px(4, 2), 12.0f);
  EXPECT_GT(px(4, 2), px(0, 2));  // depth grows away from the camera
  EXPECT_GT(px(0, 2), px(1, 2));
}
