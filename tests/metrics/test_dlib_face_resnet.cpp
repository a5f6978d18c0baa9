// dlib's face-recognition ResNet in LibTorch with face-api's weights, against dlib's documented behaviour on its
// example photos: bald_guys.jpg holds 4 people (dnn_face_recognition_ex.cpp prints "Number of people found in the
// image: 4") and the 55 "johns" chips (5 people x 11) separate at distance 0.6 (dnn_metric_learning_ex.cpp).
// Needs scripts/fetch_assets.sh's assets (skipped without them unless FACETEX_REQUIRE_ASSETS=1).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/image_codec.h"
#include "models/aux/dlib_face_resnet.h"
#include "tests/support/fixtures.h"

namespace fs = std::filesystem;
namespace aux = facetex::models::aux;
namespace test = facetex::test;

namespace {

fs::path manifest() { return test::assets_dir() / "face-api" / "model" / "face_recognition_model-weights_manifest.json"; }

facetex::data::Image read_photo(const fs::path& p) {
  return facetex::data::decode_image(facetex::read_file(p), p.string());
}


}  // namespace

TEST(DlibFaceResNet, LoadsAllWeights) {
  FACETEX_REQUIRE_ASSETS();
  const auto w = aux::load_tfjs_weights(manifest());
  int64_t total = 0, convs = 0;
  for (const auto& [name, t] : w) {
    total += t.numel();
    if (name.size() > 13 && name.compare(name.size() - 13, 13, "/conv/filters") == 0) ++convs;
  }
  EXPECT_EQ(total, 5614592);  // real-assets.md R2
  EXPECT_EQ(convs, 29);
  EXPECT_EQ(w.at("fc").sizes().vec(), (std::vector<int64_t>{256, 128}));
}

TEST(DlibFaceResNet, BadManifestsAreDataErrors) {
  test::TempDir tmp;
  EXPECT_THROW(aux::load_tfjs_weights(tmp / "missing.json"), facetex::DataError);
  test::write_bytes(tmp / "m.json", R"([{"paths":["w.bin"],"weights":[{"name":"a","shape":[4],"dtype":"float32"}]}])");
  test::write_bytes(tmp / "w.bin", std::string(8, '\0'));  // 2 of 4 floats
  EXPECT_THROW(aux::load_tfjs_weights(tmp / "m.json"), facetex::DataError);
  test::write_bytes(tmp / "w.bin", std::string(16, '\0'));
  EXPECT_EQ(aux::load_tfjs_weights(tmp / "m.json").at("a").numel(), 4);
  // uint8 quantisation: q * scale + min.
  test::write_bytes(tmp / "q.json",
                    R"([{"paths":["q.bin"],"weights":[{"name":"b","shape":[2],"dtype":"float32",)"
                    R"("quantization":{"dtype":"uint8","scale":0.5,"min":-1.0}}]}])");
  test::write_bytes(tmp / "q.bin", std::string("\x00\x04", 2));
  const at::Tensor b = aux::load_tfjs_weights(tmp / "q.json").at("b");
  EXPECT_FLOAT_EQ(b[0].item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(b[1].item<float>(), 1.0f);
  test::write_bytes(tmp / "bad.json", "{not json");
  EXPECT_THROW(aux::load_tfjs_weights(tmp / "bad.json"), facetex::DataError);
}

TEST(DlibFaceResNet, BaldGuysClusterIntoFourIdentities) {
  FACETEX_REQUIRE_ASSETS();
  const facetex::data::Image img = read_photo(test::assets_dir() / "dlib" / "faces" / "bald_guys.jpg");
  aux::DlibLandmarker landmarker(test::assets_dir() / "dlib" / "shape_predictor_68_face_landmarks.dat");
  const auto faces = landmarker.detect(img.rgb.data(), img.height, img.width);
  std::vector<std::vector<uint8_t>> chips;
  for (const auto& f : faces) chips.push_back(aux::extract_face_chip(img.rgb.data(), img.height, img.width, f.landmarks));
  ASSERT_GE(chips.size(), 4u);
  const aux::DlibFaceResNet net(manifest());
  const at::Tensor d = net.descriptor(chips);
  ASSERT_EQ(d.sizes().vec(), (std::vector<int64_t>{static_cast<int64_t>(chips.size()), 128}));
  const std::vector<int> labels = aux::threshold_clusters(d, 0.6);
  const int clusters = *std::max_element(labels.begin(), labels.end()) + 1;
  std::printf("bald_guys.jpg: %zu faces, %d identities at distance 0.6\n", chips.size(), clusters);
  EXPECT_EQ(clusters, 4);
  // Batched and one-at-a-time descriptors agree.
  for (size_t i = 0; i < chips.size(); ++i) {
    const at::Tensor one = net.descriptor(std::vector<std::vector<uint8_t>>{chips[i]});
    EXPECT_LT((one[0] - d[static_cast<int64_t>(i)]).abs().max().item<float>(), 1e-4f) << i;
  }
  // uint8 and float inputs give the same result.
  const at::Tensor as_float = net.descriptor(aux::chips_to_tensor(chips).to(at::kFloat));
  EXPECT_LT((as_float - d).abs().max().item<float>(), 1e-5f);
}

TEST(DlibFaceResNet, JohnsSeparateAtDistance06) {
  FACETEX_REQUIRE_ASSETS();
  std::vector<std::vector<uint8_t>> chips;
  std::vector<std::string> person;
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(test::assets_dir() / "dlib" / "johns"))
    if (e.is_regular_file() && e.path().extension() == ".jpg") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& p : files) {
    const facetex::data::Image im = read_photo(p);
    ASSERT_EQ(im.height, 150);
    ASSERT_EQ(im.width, 150);  // the johns are aligned 150x150 chips already
    chips.push_back(im.rgb);
    person.push_back(p.parent_path().filename().string());
  }
  ASSERT_EQ(chips.size(), 55u);
  const aux::DlibFaceResNet net(manifest());
  const at::Tensor dist = aux::descriptor_distances(net.descriptor(chips), net.descriptor(chips));
  auto a = dist.accessor<double, 2>();
  int pairs = 0, wrong = 0, same = 0;
  double max_same = 0, min_diff = 1e9;
  for (size_t i = 0; i < chips.size(); ++i)
    for (size_t j = i + 1; j < chips.size(); ++j) {
      ++pairs;
      const bool is_same = person[i] == person[j];
      same += is_same;
      if (is_same) max_same = std::max(max_same, a[i][j]);
      else min_diff = std::min(min_diff, a[i][j]);
      if (is_same != (a[i][j] < 0.6)) ++wrong;
    }
  std::printf("johns: %d pairs (%d same-person), %d wrong at 0.6; largest same-person distance %.4f, "
              "smallest different-person distance %.4f\n",
              pairs, same, wrong, max_same, min_diff);
  EXPECT_EQ(pairs, 1485);
  EXPECT_EQ(wrong, 0);
}

TEST(DlibFaceResNet, RejectsWrongChipShapes) {
  FACETEX_REQUIRE_ASSETS();
  const aux::DlibFaceResNet net(manifest());
  EXPECT_THROW(net.descriptor(at::zeros({1, 3, 112, 112}, at::kByte)), facetex::UsageError);
  EXPECT_EQ(net.descriptor(at::zeros({0, 3, 150, 150}, at::kByte)).sizes().vec(), (std::vector<int64_t>{0, 128}));
}
