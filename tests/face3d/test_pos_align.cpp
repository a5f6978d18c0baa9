// The Deep3DFaceRecon alignment (paper-system-spec.md §3.5): reference landmarks, POS, resize-and-crop, the no-face
// convention and the crop <-> image back-mapping.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "core/error.h"
#include "models/face3d/camera.h"
#include "models/face3d/geometry.h"
#include "models/face3d/pos_align.h"

using namespace facetex;
using namespace facetex::models::face3d;

namespace {

at::Tensor synthetic_lm3d() {
  SyntheticModelOptions o;
  o.grid = 48;
  o.id_dims = o.exp_dims = o.tex_dims = 4;
  return model_reference_lm3d(make_synthetic_model(o)).to(at::kDouble);
}

// Scaled orthographic projection into an image of the given height (the model POS fits): x = s (R X)_x + t0,
// row = H - 1 - (s (R X)_y + t1).
at::Tensor project_orthographic(const at::Tensor& lm3d, const at::Tensor& rotation, double s, double t0, double t1,
                                int64_t height) {
  const at::Tensor p = at::matmul(lm3d, rotation.t());
  return at::stack({s * p.select(1, 0) + t0, (height - 1) - (s * p.select(1, 1) + t1)}, 1);
}

}  // namespace

TEST(Landmarks, ReferenceLm3dFrom68FollowsTheSpecOrder) {
  const at::Tensor lm = at::arange(68 * 3, at::kDouble).view({68, 3});
  const at::Tensor r = reference_lm3d_from_68(lm);
  ASSERT_EQ(r.sizes(), (std::vector<int64_t>{5, 3}));
  EXPECT_TRUE(at::equal(r[0], (lm[36] + lm[39]) / 2));  // eye L: 1-based 37, 40
  EXPECT_TRUE(at::equal(r[1], (lm[42] + lm[45]) / 2));  // eye R: 43, 46
  EXPECT_TRUE(at::equal(r[2], lm[30]));                 // nose: 31
  EXPECT_TRUE(at::equal(r[3], lm[48]));                 // mouth L: 49
  EXPECT_TRUE(at::equal(r[4], lm[54]));                 // mouth R: 55

  const at::Tensor m = synthetic_lm3d();
  EXPECT_LT(m[0][0].item<double>(), m[1][0].item<double>());  // eyes left to right
  EXPECT_GT(m[0][1].item<double>(), m[2][1].item<double>());  // eyes above the nose
  EXPECT_GT(m[2][1].item<double>(), m[3][1].item<double>());  // nose above the mouth
  EXPECT_GT(m[2][2].item<double>(), m[0][2].item<double>());  // the nose protrudes
}

TEST(Landmarks, SixtyEightToFive) {
  at::manual_seed(2);
  const at::Tensor lm68 = at::rand({2, 68, 2}) * 100;
  const at::Tensor lm5 = landmarks68_to_5(lm68);
  ASSERT_EQ(lm5.sizes(), (std::vector<int64_t>{2, 5, 2}));
  EXPECT_TRUE(at::allclose(lm5.select(1, 0), lm68.narrow(1, 36, 6).mean(1)));
  EXPECT_TRUE(at::allclose(lm5.select(1, 1), lm68.narrow(1, 42, 6).mean(1)));
  EXPECT_TRUE(at::equal(lm5.select(1, 2), lm68.select(1, 30)));
  EXPECT_TRUE(at::equal(lm5.select(1, 3), lm68.select(1, 48)));
  EXPECT_TRUE(at::equal(lm5.select(1, 4), lm68.select(1, 54)));
  EXPECT_EQ(landmarks68_to_5(lm68[0]).sizes(), (std::vector<int64_t>{5, 2}));
}

TEST(Pos, RecoversAKnownSimilarityExactlyWithoutNoise) {
  const at::Tensor lm3d = synthetic_lm3d();
  const int64_t height = 1024;
  const double scales[3] = {300.0, 95.5, 612.0}, tx[3] = {512.0, 400.25, 700.0}, ty[3] = {480.0, 530.5, 300.0};
  const at::Tensor angles = at::tensor({0.0, 0.0, 0.0, 0.1, 0.3, 0.0, -0.2, -0.4, 0.15}, at::kDouble).view({3, 3});
  const at::Tensor r = rotation_matrices(angles);
  std::vector<at::Tensor> lm2d;
  for (int b = 0; b < 3; ++b) lm2d.push_back(project_orthographic(lm3d, r[b], scales[b], tx[b], ty[b], height));
  const PosFit fit = pos_fit(at::stack(lm2d).to(at::kFloat).to(at::kDouble), lm3d, height);
  ASSERT_EQ(fit.s.sizes(), (std::vector<int64_t>{3}));
  ASSERT_EQ(fit.t.sizes(), (std::vector<int64_t>{3, 2}));
  for (int b = 0; b < 3; ++b) {
    // Rotation-free sample 0 and rotated ones alike: the rows of s·R have norm s.
    EXPECT_NEAR(fit.s[b].item<double>(), scales[b], 1e-4) << b;
    EXPECT_NEAR(fit.t[b][0].item<double>(), tx[b], 1e-4) << b;
    EXPECT_NEAR(fit.t[b][1].item<double>(), ty[b], 1e-4) << b;
  }
  // One shared lm3d [K, 3] or one per sample [B, K, 3] give the same fit.
  const PosFit per_sample = pos_fit(at::stack(lm2d), lm3d.expand({3, 5, 3}), height);
  EXPECT_TRUE(at::allclose(per_sample.s, fit.s));
}

TEST(Pos, IsAccurateWithHalfAPixelOfNoise) {
  const at::Tensor lm3d = synthetic_lm3d();
  const at::Tensor eye = at::eye(3, at::kDouble);
  at::manual_seed(5);
  double worst_s = 0, worst_t = 0;
  for (int trial = 0; trial < 20; ++trial) {
    const at::Tensor clean = project_orthographic(lm3d, eye, 350.0, 500.0, 520.0, 1024);
    const at::Tensor noisy = clean + 0.5 * at::randn(clean.sizes(), at::kDouble);
    const PosFit fit = pos_fit(noisy.unsqueeze(0), lm3d, 1024);
    worst_s = std::max(worst_s, std::abs(fit.s[0].item<double>() - 350.0) / 350.0);
    worst_t = std::max(worst_t, (fit.t[0] - at::tensor({500.0, 520.0}, at::kDouble)).abs().max().item<double>());
  }
  EXPECT_LT(worst_s, 0.02);
  EXPECT_LT(worst_t, 2.0);
}

TEST(ResizeNCrop, PutsALandmarkWhereTheResizeAndCropFormulasSay) {
  const int64_t size = 200;
  const double x0 = 80.0, y0 = 120.0;  // pixel indices (column, row) of a small bright blob
  const at::Tensor cols = at::arange(size, at::kFloat).view({1, size}), rows = at::arange(size, at::kFloat).view({size, 1});
  const at::Tensor blob = at::exp(-((cols - x0).square() + (rows - y0).square()) / (2 * 2.0 * 2.0));
  at::Tensor image = at::zeros({1, 3, size, size});
  image[0][1] = blob * 255;
  PosFit fit;
  fit.s = at::tensor({68.0}, at::kDouble);              // s' = 102/68 = 1.5
  fit.t = at::tensor({95.3, 110.7}, at::kDouble).view({1, 2});
  const AlignedCrop out = resize_n_crop(image, fit);
  ASSERT_EQ(out.crop.sizes(), (std::vector<int64_t>{1, 3, 224, 224}));
  ASSERT_TRUE(out.valid[0].item<bool>());

  // The spec's formulas, evaluated independently: w = int(200*1.5) = 300, left = int(150-112+(95.3-100)*1.5) = 30,
  // up = int(150-112+(100-110.7)*1.5) = 21; bbox = [left/s', up/s', s].
  const double sp = 1.5;
  const int64_t w = 300, left = 30, up = 21;
  EXPECT_FLOAT_EQ(out.bbox[0][0].item<float>(), static_cast<float>(left / sp));
  EXPECT_FLOAT_EQ(out.bbox[0][1].item<float>(), static_cast<float>(up / sp));
  EXPECT_FLOAT_EQ(out.bbox[0][2].item<float>(), 68.0f);
  // align_corners=True maps source index i to i*(w-1)/(W-1) in the resized image.
  const double ex = x0 * (w - 1) / (size - 1) - left, ey = y0 * (w - 1) / (size - 1) - up;
  const at::Tensor ch = out.crop[0][1].to(at::kDouble);
  const at::Tensor win = ch.narrow(0, static_cast<int64_t>(ey) - 10, 21).narrow(1, static_cast<int64_t>(ex) - 10, 21)
                             .clamp_min(0);
  const at::Tensor wr = at::arange(21, at::kDouble) + (static_cast<int64_t>(ey) - 10);
  const at::Tensor wc = at::arange(21, at::kDouble) + (static_cast<int64_t>(ex) - 10);
  const double total = win.sum().item<double>();
  const double cy = (win.sum(1) * wr).sum().item<double>() / total, cx = (win.sum(0) * wc).sum().item<double>() / total;
  EXPECT_NEAR(cx, ex, 0.2);
  EXPECT_NEAR(cy, ey, 0.2);
  EXPECT_LT(out.crop[0][0].abs().max().item<float>(), 1e-6);  // the other channels stay empty

  // The back-mapping through the bbox agrees to within the align_corners offset (< 1 px here).
  const at::Tensor p = at::tensor({x0, y0}, at::kFloat).view({1, 1, 2});
  const at::Tensor in_crop = image_to_crop(p, out.bbox);
  EXPECT_NEAR(in_crop[0][0][0].item<float>(), ex, 0.6);
  EXPECT_NEAR(in_crop[0][0][1].item<float>(), ey, 0.6);
  EXPECT_TRUE(at::allclose(crop_to_image(in_crop, out.bbox), p, 1e-4, 1e-4));
}

TEST(ResizeNCrop, PadsWithZerosOutsideTheImage) {
  const at::Tensor image = at::ones({1, 3, 200, 200});
  PosFit fit;
  fit.s = at::tensor({68.0}, at::kDouble);
  fit.t = at::tensor({5.0, 190.0}, at::kDouble).view({1, 2});  // face at the top-left corner
  const AlignedCrop out = resize_n_crop(image, fit);
  // left = int(38 + (5-100)*1.5) = int(-104.5) = -104 (toward zero), up = int(38 + (100-190)*1.5) = -97.
  EXPECT_FLOAT_EQ(out.bbox[0][0].item<float>(), static_cast<float>(-104 / 1.5));
  EXPECT_FLOAT_EQ(out.bbox[0][1].item<float>(), static_cast<float>(-97 / 1.5));
  EXPECT_EQ(out.crop[0].narrow(2, 0, 104).abs().max().item<float>(), 0.0f);
  EXPECT_EQ(out.crop[0].narrow(1, 0, 97).abs().max().item<float>(), 0.0f);
  EXPECT_TRUE(at::allclose(out.crop[0].narrow(1, 97, 127).narrow(2, 104, 120), at::ones({3, 127, 120}), 1e-5, 1e-5));
}

TEST(AlignFaces, PutsTheFivePointsAtTheCanonicalCropPositions) {
  // Whatever the face's size and place, the aligned crop shows the reference landmarks at 112 + 102 (X, -Y)
  // (up to truncation and the flip's one-pixel offset): that is what the 224 protocol normalises.
  const at::Tensor lm3d = synthetic_lm3d();
  const int64_t height = 512;
  const double scales[2] = {150.0, 260.0}, tx[2] = {240.0, 300.0}, ty[2] = {260.0, 200.0};
  std::vector<at::Tensor> lm2d;
  for (int b = 0; b < 2; ++b) {
    lm2d.push_back(project_orthographic(lm3d, at::eye(3, at::kDouble), scales[b], tx[b], ty[b], height));
  }
  const at::Tensor lm5 = at::stack(lm2d).to(at::kFloat);
  const AlignedCrop out = align_faces(at::zeros({2, 3, height, height}), lm5, lm3d);
  const at::Tensor in_crop = image_to_crop(lm5, out.bbox);
  const at::Tensor canonical = at::stack({112 + 102 * lm3d.select(1, 0), 112 - 102 * lm3d.select(1, 1)}, 1);
  for (int b = 0; b < 2; ++b) {
    EXPECT_LT((in_crop[b].to(at::kDouble) - canonical).abs().max().item<double>(), 2.5) << in_crop[b] << canonical;
  }
}

TEST(AlignFaces, NoFaceAndDegenerateFitsGiveTheOffscreenBbox) {
  const at::Tensor lm3d = synthetic_lm3d();
  const at::Tensor lm5 = project_orthographic(lm3d, at::eye(3, at::kDouble), 100.0, 128.0, 128.0, 256)
                             .to(at::kFloat)
                             .unsqueeze(0)
                             .expand({2, 5, 2})
                             .contiguous();
  const at::Tensor has_face = at::tensor({1, 0}).to(at::kBool);
  const AlignedCrop out = align_faces(at::ones({2, 3, 256, 256}), lm5, lm3d, has_face);
  EXPECT_TRUE(out.valid[0].item<bool>());
  EXPECT_FALSE(out.valid[1].item<bool>());
  EXPECT_TRUE(at::equal(out.bbox[1], at::tensor({2000.0f, 2000.0f, 1.0f})));
  EXPECT_EQ(out.crop[1].abs().max().item<float>(), 0.0f);
  EXPECT_GT(out.crop[0].abs().max().item<float>(), 0.5f);

  PosFit bad;
  bad.s = at::tensor({0.0, std::nan(""), 1e-4}, at::kDouble);  // zero, NaN, and one that would need a huge resize
  bad.t = at::zeros({3, 2}, at::kDouble);
  const AlignedCrop degenerate = resize_n_crop(at::ones({3, 1, 64, 64}), bad);
  EXPECT_FALSE(degenerate.valid.any().item<bool>());
  EXPECT_TRUE(at::equal(degenerate.bbox, at::tensor({2000.0f, 2000.0f, 1.0f}).expand({3, 3})));

  // The off-screen bbox projects a face far outside any image.
  const CameraIntrinsics cam = intrinsics_from_bbox(out.bbox);
  const at::Tensor screen = project_to_screen(at::zeros({2, 1, 3}), cam);
  EXPECT_GT(screen[1][0][0].item<float>(), 2000.0f);
  EXPECT_GT(screen[1][0][1].item<float>(), 2000.0f);
}
