// The photo front end on real photos (dlib's example faces with 68-point ground truth) and `facetex face` end to
// end. Needs scripts/fetch_assets.sh's assets (skipped without them unless FACETEX_REQUIRE_ASSETS=1).
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <memory>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/image_codec.h"
#include "models/aux/dlib_landmarks.h"
#include "models/face3d/canonical_mesh.h"
#include "models/face3d/photo_fit.h"
#include "models/face3d/uv_unwrap.h"
#include "tests/support/fixtures.h"

namespace fs = std::filesystem;
namespace f3d = facetex::models::face3d;
namespace aux = facetex::models::aux;
namespace test = facetex::test;

namespace {

// Thresholds, from measurements of this code on these photos (`facetex face eval`, docs/operations.md):
//   - detection: 18/18 (training XML) and 25/25 (testing XML) ground-truth faces, inter-ocular 15-59 px, are found
//     at IoU >= 0.3 with one upsampling. Required: >= 95% per file.
//   - landmark NME (68 points / outer-eye-corner distance) of the detected faces: mean 0.027 (training) and 0.010
//     (testing), worst face 0.10. The XMLs' points were made by this same predictor (their <comment> says so):
//     from the ground-truth boxes the NME is 0.005 / 0.002, so what remains is the detector's box differing from
//     the XML's box. dlib's predictor on independent 300-W-style annotations is typically 0.05-0.08, so a mean
//     of 0.05 is generous for these files yet catches any real regression (wrong points or a wrong point order
//     give NME > 0.3). Required: mean < 0.05 per file, every face < 0.15.
//   - mesh fit residual: mean 0.046 / 0.047 of the inter-ocular distance, worst face 0.078 (a rigid template has
//     no identity or expression). Required: mean < 0.08.
//   - UV coverage of near-frontal faces (|yaw| < 15, |pitch| < 25 deg): 0.58-0.644 (the UV layout itself covers
//     0.645 of the square). Required: 0.5-0.7.
constexpr double kMinDetectionRate = 0.95;
constexpr double kMaxMeanNme = 0.05;
constexpr double kMaxFaceNme = 0.15;
constexpr double kMaxMeanResidualInterocular = 0.08;

test::CommandResult run_facetex(const std::string& args) { return test::run_command(FACETEX_BINARY_PATH " " + args); }
int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

fs::path faces_dir() { return test::assets_dir() / "dlib" / "faces"; }

facetex::data::Image read_photo(const fs::path& p) {
  return facetex::data::decode_image(facetex::read_file(p), p.string());
}

at::Tensor as_tensor(const facetex::data::Image& im) {
  return at::from_blob(const_cast<uint8_t*>(im.rgb.data()), {im.height, im.width, 3}, at::kByte);
}

class RealPhotos : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string why;
    if (!test::assets_available(&why)) return;
    landmarker_ = std::make_unique<aux::DlibLandmarker>(test::assets_dir() / "dlib" /
                                                        "shape_predictor_68_face_landmarks.dat");
    mesh_ = std::make_unique<f3d::CanonicalMesh>(f3d::load_canonical_mesh(
        test::assets_dir() / "mediapipe" / "geometry_pipeline_metadata_landmarks.binarypb"));
    map_ = f3d::load_dlib68_to_mesh(test::assets_dir() / "human" / "facemeshcoords.ts");
  }
  static void TearDownTestSuite() {
    landmarker_.reset();
    mesh_.reset();
  }
  static std::unique_ptr<aux::DlibLandmarker> landmarker_;
  static std::unique_ptr<f3d::CanonicalMesh> mesh_;
  static std::vector<int64_t> map_;
};
std::unique_ptr<aux::DlibLandmarker> RealPhotos::landmarker_;
std::unique_ptr<f3d::CanonicalMesh> RealPhotos::mesh_;
std::vector<int64_t> RealPhotos::map_;

at::Tensor landmarks_tensor(const aux::Landmarks68& l) {
  at::Tensor t = at::empty({68, 2}, at::kFloat);
  std::memcpy(t.data_ptr<float>(), l.data(), sizeof(float) * 136);
  return t;
}

}  // namespace

TEST(LandmarkXml, ParsesBoxesAndParts) {
  FACETEX_REQUIRE_ASSETS();
  const auto images = aux::load_landmark_xml(faces_dir() / "testing_with_face_landmarks.xml");
  ASSERT_EQ(images.size(), 5u);
  size_t faces = 0;
  for (const auto& im : images) {
    EXPECT_TRUE(fs::exists(im.file)) << im.file;
    for (const auto& f : im.faces) {
      EXPECT_TRUE(f.has_parts);
      EXPECT_GT(aux::interocular_distance(f.landmarks), 10.0);
      ++faces;
    }
  }
  EXPECT_EQ(faces, 25u);
  // The first box of the file: top=181 left=274 width=52 height=53, part 00 at (277, 194).
  EXPECT_EQ(images[0].file.filename(), "2008_002470.jpg");
  EXPECT_DOUBLE_EQ(images[0].faces[0].box.left, 274);
  EXPECT_DOUBLE_EQ(images[0].faces[0].box.top, 181);
  EXPECT_DOUBLE_EQ(images[0].faces[0].box.width, 52);
  EXPECT_DOUBLE_EQ(images[0].faces[0].box.height, 53);
  EXPECT_FLOAT_EQ(images[0].faces[0].landmarks[0][0], 277);
  EXPECT_FLOAT_EQ(images[0].faces[0].landmarks[0][1], 194);
  test::TempDir tmp;
  test::write_bytes(tmp / "bad.xml", "<dataset><images><image file='a.jpg'><box top='1'");
  EXPECT_THROW(aux::load_landmark_xml(tmp / "bad.xml"), facetex::DataError);
}

TEST(LandmarkMetrics, IouNmeAndMatching) {
  const aux::FaceBox a{0, 0, 10, 10}, b{5, 0, 10, 10}, c{100, 100, 10, 10};
  EXPECT_NEAR(aux::box_iou(a, a), 1.0, 1e-12);
  EXPECT_NEAR(aux::box_iou(a, b), 50.0 / 150.0, 1e-12);
  EXPECT_EQ(aux::box_iou(a, c), 0.0);
  const auto m = aux::match_boxes({a, c}, {c, b}, 0.3);
  EXPECT_EQ(m, (std::vector<int>{1, 0}));
  EXPECT_EQ(aux::match_boxes({a}, {c}, 0.3), (std::vector<int>{-1}));
  aux::Landmarks68 t{}, p{};
  t[36] = {0, 0};
  t[45] = {40, 0};
  p = t;
  for (auto& q : p) q[0] += 2;  // every point 2 px off: NME = 2 / 40
  EXPECT_NEAR(aux::landmark_nme(p, t), 0.05, 1e-9);
}

TEST_F(RealPhotos, DetectionAndLandmarksMatchTheGroundTruth) {
  FACETEX_REQUIRE_ASSETS();
  for (const char* xml : {"training_with_face_landmarks.xml", "testing_with_face_landmarks.xml"}) {
    int truth = 0, found = 0;
    double nme_sum = 0, residual_rel_sum = 0;
    for (const auto& im : aux::load_landmark_xml(faces_dir() / xml)) {
      const auto photo = read_photo(im.file);
      const auto faces = landmarker_->detect(photo.rgb.data(), photo.height, photo.width);
      for (size_t i = 1; i < faces.size(); ++i) EXPECT_GE(faces[i - 1].box.area(), faces[i].box.area());
      std::vector<aux::FaceBox> tb, pb;
      for (const auto& f : im.faces) tb.push_back(f.box);
      for (const auto& f : faces) pb.push_back(f.box);
      const auto match = aux::match_boxes(tb, pb, 0.3);
      for (size_t i = 0; i < im.faces.size(); ++i) {
        ++truth;
        if (match[i] < 0) continue;
        ++found;
        const auto& f = faces[match[i]];
        const double nme = aux::landmark_nme(f.landmarks, im.faces[i].landmarks);
        EXPECT_LT(nme, kMaxFaceNme) << im.file << " face " << i;
        nme_sum += nme;
        const f3d::PoseFit fit = f3d::fit_dlib68(*mesh_, map_, landmarks_tensor(f.landmarks));
        residual_rel_sum += fit.mean_residual_px / aux::interocular_distance(f.landmarks);
      }
    }
    ASSERT_GT(found, 0) << xml;
    const double rate = double(found) / truth, nme = nme_sum / found, rel = residual_rel_sum / found;
    std::printf("%s: detected %d/%d, mean NME %.4f, mean fit residual %.3f of inter-ocular\n", xml, found, truth, nme,
                rel);
    EXPECT_GE(rate, kMinDetectionRate) << xml;
    EXPECT_LT(nme, kMaxMeanNme) << xml;
    EXPECT_LT(rel, kMaxMeanResidualInterocular) << xml;
  }
}

TEST_F(RealPhotos, NoFaceInAGeneratedImage) {
  FACETEX_REQUIRE_ASSETS();
  const auto img = test::make_image(320, 240, 5);
  EXPECT_TRUE(landmarker_->detect(img.rgb.data(), img.height, img.width).empty());
  const std::vector<uint8_t> black(64 * 64 * 3, 0);
  EXPECT_TRUE(landmarker_->detect(black.data(), 64, 64).empty());
}

TEST_F(RealPhotos, FrontalFacesUnwrapToAboutSixtyPercentOfTheUvMap) {
  FACETEX_REQUIRE_ASSETS();
  int frontal = 0;
  for (const char* xml : {"training_with_face_landmarks.xml", "testing_with_face_landmarks.xml"}) {
    for (const auto& im : aux::load_landmark_xml(faces_dir() / xml)) {
      const auto photo = read_photo(im.file);
      for (const auto& f : landmarker_->detect(photo.rgb.data(), photo.height, photo.width)) {
        const f3d::PoseFit fit = f3d::fit_dlib68(*mesh_, map_, landmarks_tensor(f.landmarks));
        const auto ypr = fit.yaw_pitch_roll_degrees();
        if (std::abs(ypr[0]) >= 15 || std::abs(ypr[1]) >= 25) continue;
        ++frontal;
        const f3d::UvTexture uv =
            f3d::unwrap_to_uv(as_tensor(photo), mesh_->uv, mesh_->triangles, fit.projected, fit.depth);
        EXPECT_GE(uv.coverage, 0.5) << im.file << " yaw " << ypr[0];
        EXPECT_LE(uv.coverage, 0.7) << im.file << " yaw " << ypr[0];
        EXPECT_LE(uv.coverage, uv.chart_coverage);
        // The unwrapped texels are photo colours, not the zero fill.
        const at::Tensor m = uv.mask.to(at::kBool);
        EXPECT_GT(uv.texture.sum(0).masked_select(m).to(at::kDouble).mean().item<double>(), 60.0);
      }
    }
  }
  EXPECT_GE(frontal, 10);
}

TEST(FaceCli, FitWritesEveryOutput) {
  FACETEX_REQUIRE_ASSETS();
  test::TempDir tmp;
  const fs::path out = tmp / "fit";
  const std::string assets = " --assets " + test::assets_dir().string();
  auto r = run_facetex("face fit --image " + (faces_dir() / "2008_002470.jpg").string() + " --out " + out.string() +
                       " --uv-size 128" + assets);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("residual"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("UV coverage"), std::string::npos) << r.out;
  for (const char* f : {"landmarks.json", "mesh.obj", "mesh.mtl", "mesh.png", "render.png", "uv.png", "uv_mask.png"}) {
    EXPECT_TRUE(fs::is_regular_file(out / f)) << f;
  }
  const auto j = nlohmann::json::parse(test::read_bytes(out / "landmarks.json"));
  ASSERT_GE(j.at("faces").size(), 1u);
  EXPECT_EQ(j.at("faces")[0].at("landmarks68").size(), 68u);
  EXPECT_GT(j.at("fit").at("mean_residual_px").get<double>(), 0.0);
  EXPECT_LT(j.at("fit").at("mean_residual_px").get<double>(), 10.0);
  EXPECT_EQ(j.at("uv").at("size").get<int>(), 128);
  const double coverage = j.at("uv").at("coverage").get<double>();
  EXPECT_GT(coverage, 0.3);
  const auto uv = facetex::data::decode_image(test::read_bytes(out / "uv.png"), "uv.png");
  EXPECT_EQ(uv.width, 128);
  EXPECT_EQ(uv.height, 128);
  const auto render = facetex::data::decode_image(test::read_bytes(out / "render.png"), "render.png");
  EXPECT_EQ(render.width, 500);
  EXPECT_EQ(render.height, 332);
  const std::string obj = test::read_bytes(out / "mesh.obj");
  EXPECT_EQ(std::count(obj.begin(), obj.end(), '\n') >= 468 * 2 + 898, true);
  EXPECT_NE(obj.find("mtllib mesh.mtl"), std::string::npos);
  // No temporary files left behind.
  for (const auto& e : fs::directory_iterator(out)) {
    EXPECT_EQ(e.path().filename().string().find(".partial-"), std::string::npos) << e.path();
  }
}

TEST(FaceCli, NoFaceOrNoImageIsExit3WithOneLine) {
  FACETEX_REQUIRE_ASSETS();
  test::TempDir tmp;
  const std::string assets = " --assets " + test::assets_dir().string();
  test::write_images(tmp / "in", 1, 320, 240);
  auto r = run_facetex("face fit --image " + (tmp / "in" / "img_000.png").string() + " --out " + (tmp / "o").string() +
                       assets);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("no face"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "o" / "landmarks.json"));
  test::write_bytes(tmp / "notes.jpg", "this is not an image\n");
  r = run_facetex("face fit --image " + (tmp / "notes.jpg").string() + " --out " + (tmp / "o").string() + assets);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("notes.jpg"), std::string::npos) << r.err;
  r = run_facetex("face fit --image " + (tmp / "missing.jpg").string() + " --out " + (tmp / "o").string() + assets);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  r = run_facetex("face fit --out " + (tmp / "o").string());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run_facetex("face fit --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("[face.uv_size]"), std::string::npos) << r.out;
}

TEST(FaceCli, EvalReportsFiguresAndWritesASheet) {
  FACETEX_REQUIRE_ASSETS();
  test::TempDir tmp;
  auto r = run_facetex("face eval --xml " + (faces_dir() / "testing_with_face_landmarks.xml").string() + " --sheet " +
                       (tmp / "sheet.png").string() + " --json " + (tmp / "eval.json").string() + " --tile 64" +
                       " --uv-size 128 --assets " + test::assets_dir().string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("detection 25/25"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(test::read_bytes(tmp / "eval.json"));
  EXPECT_EQ(j.at("truth_faces").get<int>(), 25);
  EXPECT_LT(j.at("nme").at("mean").get<double>(), kMaxMeanNme);
  EXPECT_EQ(j.at("faces").size(), 25u);
  const auto sheet = facetex::data::decode_image(test::read_bytes(tmp / "sheet.png"), "sheet.png");
  EXPECT_EQ(sheet.height, 9 * (64 + 4) - 4);  // 25 faces, 3 per row
  // An XML without face boxes has nothing to evaluate: a data error naming it, not a report of zeros.
  test::write_bytes(tmp / "empty.xml", "<dataset><images><image file='x.jpg'/></images></dataset>");
  r = run_facetex("face eval --xml " + (tmp / "empty.xml").string() + " --assets " + test::assets_dir().string());
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("empty.xml: no ground-truth face boxes (1 images)"), std::string::npos) << r.err;
}
