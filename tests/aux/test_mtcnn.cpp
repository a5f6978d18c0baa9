// facenet_pytorch's MTCNN: each net against its PyTorch definition, and the batched cascade against the reference
// detect_face written out in make_aux_reference.py (random weights whose face classifiers are calibrated so that
// each stage passes part of its candidates: 3 images of 120x160, ~1100 PNet candidates, ~35 final faces).
//
// Tolerances: the nets run the same float32 LibTorch kernels on both sides (1e-5 normalised, as for DFR). The
// cascade's crops are area-resampled from a float64 summed-area table here and by float32 adaptive pooling in
// PyTorch: pixel values agree to ~1e-5, which moves probabilities by ~1e-6 and boxes/landmarks by ~1e-4 px; the
// integer crop windows (truncated box corners) are then identical unless a corner lies within that of an
// integer. Boxes and points are compared to 1e-2 px and probabilities to 1e-4: far below any effect of a wrong
// step (whole pixels or more).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "models/aux/mtcnn.h"
#include "tests/aux/aux_reference.h"
#include "tests/support/parity_compare.h"

using namespace facetex;
using namespace facetex::models::aux;

namespace {

Mtcnn load_mtcnn(const test::AuxReference& ref, MtcnnOptions options = {}) {
  return Mtcnn::load(ref.weights("pnet"), ref.weights("rnet"), ref.weights("onet"), options);
}

// Faces ordered by (image, decreasing probability), as (N, 1 + 1 + 4 + 10) rows [image, prob, box, points].
at::Tensor canonical(const at::Tensor& image, const at::Tensor& probs, const at::Tensor& boxes,
                     const at::Tensor& points) {
  const at::Tensor rows = at::cat({image.to(at::kDouble).unsqueeze(1), probs.to(at::kDouble).unsqueeze(1),
                                   boxes.to(at::kDouble), points.to(at::kDouble).reshape({-1, 10})},
                                  1);
  const at::Tensor key = image.to(at::kDouble) * 10 - probs.to(at::kDouble);  // probs are in (0, 1]
  return rows.index_select(0, std::get<1>(key.sort()));
}

void expect_faces_match(const at::Tensor& actual, const at::Tensor& expected) {
  ASSERT_EQ(actual.size(0), expected.size(0));
  EXPECT_TRUE(at::equal(actual.select(1, 0), expected.select(1, 0))) << "faces per image differ";
  const double prob_err = (actual.select(1, 1) - expected.select(1, 1)).abs().max().item<double>();
  const double box_err = (actual.narrow(1, 2, 4) - expected.narrow(1, 2, 4)).abs().max().item<double>();
  const double point_err = (actual.narrow(1, 6, 10) - expected.narrow(1, 6, 10)).abs().max().item<double>();
  std::printf("MTCNN cascade: %lld faces, max |dprob| %.3g, max |dbox| %.3g px, max |dpoint| %.3g px\n",
              static_cast<long long>(actual.size(0)), prob_err, box_err, point_err);
  EXPECT_LE(prob_err, 1e-4);
  EXPECT_LE(box_err, 1e-2);
  EXPECT_LE(point_err, 1e-2);
}

}  // namespace

TEST(MtcnnNets, ConvertedStateDictsReproducePyTorch) {
  FACETEX_AUX_REFERENCE(ref);
  auto pnet = load_pnet(ref->weights("pnet"));  // converted from torch's legacy serialisation
  auto rnet = load_rnet(ref->weights("rnet"));
  auto onet = load_onet(ref->weights("onet"));
  const PNet::Output p = pnet->forward(ref->tensor("pnet/x"));
  const RNet::Output r = rnet->forward(ref->tensor("rnet/x"));
  const ONet::Output o = onet->forward(ref->tensor("onet/x"));
  EXPECT_EQ(p.probability.sizes(), (std::vector<int64_t>{2, 2, 10, 15}));
  const std::vector<std::pair<const char*, double>> errors = {
      {"pnet/regression", test::normalised_max_error(p.regression, ref->tensor("pnet/regression"))},
      {"pnet/probability", test::normalised_max_error(p.probability, ref->tensor("pnet/probability"))},
      {"rnet/regression", test::normalised_max_error(r.regression, ref->tensor("rnet/regression"))},
      {"rnet/probability", test::normalised_max_error(r.probability, ref->tensor("rnet/probability"))},
      {"onet/regression", test::normalised_max_error(o.regression, ref->tensor("onet/regression"))},
      {"onet/landmarks", test::normalised_max_error(o.landmarks, ref->tensor("onet/landmarks"))},
      {"onet/probability", test::normalised_max_error(o.probability, ref->tensor("onet/probability"))}};
  for (const auto& [name, err] : errors) {
    std::printf("%s normalised max error: %.3g\n", name, err);
    EXPECT_LE(err, 1e-5) << name;
  }
}

TEST(Mtcnn, PyramidScalesFollowDetectFace) {
  FACETEX_AUX_REFERENCE(ref);
  const at::Tensor expected = ref->tensor("detect/scales");
  const auto scales = mtcnn_pyramid_scales(120, 160, 20, 0.709);
  ASSERT_EQ(static_cast<int64_t>(scales.size()), expected.size(0));
  for (size_t i = 0; i < scales.size(); ++i) EXPECT_EQ(scales[i], expected[i].item<double>()) << i;
}

TEST(Mtcnn, PyramidForTheTrainingResolution) {
  // 1024 px, min face 20: 0.6 * 0.709^k while 614.4 * 0.709^k >= 12 -> k = 0..11.
  const auto scales = mtcnn_pyramid_scales(1024, 1024, 20, 0.709);
  ASSERT_EQ(scales.size(), 12u);
  EXPECT_DOUBLE_EQ(scales.front(), 0.6);
  EXPECT_NEAR(scales.back(), 0.6 * std::pow(0.709, 11), 1e-15);
  EXPECT_TRUE(mtcnn_pyramid_scales(11, 500, 20, 0.709).size() == 0u);  // shorter side * 0.6 < 12: nothing to scan
}

TEST(Mtcnn, CascadeMatchesReferenceDetectFace) {
  FACETEX_AUX_REFERENCE(ref);
  const Mtcnn mtcnn = load_mtcnn(*ref);
  const at::Tensor images = ref->tensor("detect/images");  // (3, 120, 160, 3), float 0..255
  const MtcnnFaces faces = mtcnn.detect_all(images);
  expect_faces_match(canonical(faces.image_index, faces.probs, faces.boxes, faces.points),
                     canonical(ref->tensor("detect/image_index"), ref->tensor("detect/probs"),
                               ref->tensor("detect/boxes"), ref->tensor("detect/points")));
}

TEST(Mtcnn, SelectsTheMostProbableFacePerImage) {
  FACETEX_AUX_REFERENCE(ref);
  const Mtcnn mtcnn = load_mtcnn(*ref);
  const at::Tensor images = ref->tensor("detect/images");
  const MtcnnSelection s = mtcnn.detect(images);
  EXPECT_TRUE(at::equal(s.found.to(at::kInt), ref->tensor("select/found")));
  EXPECT_LE((s.probs - ref->tensor("select/probs")).abs().max().item<double>(), 1e-4);
  EXPECT_LE((s.boxes - ref->tensor("select/boxes")).abs().max().item<double>(), 1e-2);
  EXPECT_LE((s.points - ref->tensor("select/points")).abs().max().item<double>(), 1e-2);
  // Channels-first input gives the same detections.
  const MtcnnSelection nchw = mtcnn.detect(images.permute({0, 3, 1, 2}).contiguous());
  EXPECT_TRUE(at::equal(nchw.boxes, s.boxes) && at::equal(nchw.points, s.points));
}

TEST(Mtcnn, BatchedDetectionEqualsOneImageAtATime) {
  FACETEX_AUX_REFERENCE(ref);
  const Mtcnn mtcnn = load_mtcnn(*ref);
  const at::Tensor images = ref->tensor("detect/images");
  const MtcnnSelection batch = mtcnn.detect(images);
  for (int64_t b = 0; b < images.size(0); ++b) {
    const MtcnnSelection one = mtcnn.detect(images.narrow(0, b, 1));
    EXPECT_EQ(one.found[0].item<bool>(), batch.found[b].item<bool>()) << b;
    EXPECT_LE((one.boxes[0] - batch.boxes[b]).abs().max().item<double>(), 1e-4) << b;
    EXPECT_LE((one.points[0] - batch.points[b]).abs().max().item<double>(), 1e-4) << b;
  }
}

TEST(Mtcnn, NoFaceWhenTheProposalNetRejectsEverything) {
  FACETEX_AUX_REFERENCE(ref);
  Mtcnn mtcnn = load_mtcnn(*ref);
  {
    at::NoGradGuard no_grad;
    mtcnn.pnet().named_parameters()["conv4_1.bias"].copy_(at::tensor({30.0f, -30.0f}));  // P(face) ~ 1e-26
  }
  const MtcnnSelection s = mtcnn.detect(ref->tensor("detect/images"));
  EXPECT_FALSE(s.found.any().item<bool>());
  EXPECT_EQ(s.boxes.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(s.points.sizes(), (std::vector<int64_t>{3, 5, 2}));
}

TEST(Mtcnn, NoFaceWhenTheOutputNetThresholdIsUnreachable) {
  FACETEX_AUX_REFERENCE(ref);
  MtcnnOptions options;
  options.thresholds = {0.6, 0.7, 1.0};  // P > 1 never holds
  const MtcnnSelection s = load_mtcnn(*ref, options).detect(ref->tensor("detect/images"));
  EXPECT_FALSE(s.found.any().item<bool>());
}

TEST(Mtcnn, ImageTooSmallForTheMinimumFaceFindsNothing) {
  FACETEX_AUX_REFERENCE(ref);
  const MtcnnSelection s = load_mtcnn(*ref).detect(at::full({2, 16, 16, 3}, 128.0f));
  EXPECT_EQ(s.found.sizes(), (std::vector<int64_t>{2}));
  EXPECT_FALSE(s.found.any().item<bool>());
}
