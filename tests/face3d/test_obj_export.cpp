// OBJ + MTL + PNG export: parse the files back and compare with what was written.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "models/face3d/morphable_model.h"
#include "models/face3d/obj_export.h"
#include "tests/support/fixtures.h"

using namespace facetex;
using namespace facetex::models::face3d;
namespace fs = std::filesystem;

namespace {

struct ParsedObj {
  std::vector<std::string> mtllib, usemtl;
  std::vector<std::array<float, 3>> v;
  std::vector<std::array<float, 2>> vt;
  std::vector<std::array<std::string, 3>> f;
};

ParsedObj parse_obj(const fs::path& path) {
  ParsedObj o;
  std::istringstream in(test::read_bytes(path));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string tag;
    ls >> tag;
    if (tag == "v") {
      std::array<float, 3> p;
      ls >> p[0] >> p[1] >> p[2];
      o.v.push_back(p);
    } else if (tag == "vt") {
      std::array<float, 2> p;
      ls >> p[0] >> p[1];
      o.vt.push_back(p);
    } else if (tag == "f") {
      std::array<std::string, 3> p;
      ls >> p[0] >> p[1] >> p[2];
      o.f.push_back(p);
    } else if (tag == "mtllib") {
      std::string s;
      ls >> s;
      o.mtllib.push_back(s);
    } else if (tag == "usemtl") {
      std::string s;
      ls >> s;
      o.usemtl.push_back(s);
    }
  }
  return o;
}

}  // namespace

TEST(ObjExport, RoundTripsMeshMaterialAndTexture) {
  test::TempDir dir;
  SyntheticModelOptions opt;
  opt.grid = 10;
  opt.id_dims = opt.exp_dims = opt.tex_dims = 3;
  const MorphableModel m = make_synthetic_model(opt);
  at::manual_seed(4);
  const at::Tensor vertices = m.mean_shape + 0.01 * at::randn(m.mean_shape.sizes());
  const at::Tensor texture = at::randint(0, 256, {3, 16, 24}, at::kByte);  // RGB, any H x W
  write_textured_obj(dir.path() / "out", "face_0001", vertices, m.uv, m.triangles, texture);

  const fs::path obj = dir.path() / "out" / "face_0001.obj";
  const ParsedObj o = parse_obj(obj);
  ASSERT_EQ(o.v.size(), 100u);
  ASSERT_EQ(o.vt.size(), 100u);
  ASSERT_EQ(o.f.size(), static_cast<size_t>(m.num_triangles()));
  // Shortest round-trip decimals: the floats read back bit-exactly.
  for (int k = 0; k < 3; ++k) EXPECT_EQ(o.v[0][k], vertices[0][k].item<float>());
  for (int k = 0; k < 3; ++k) EXPECT_EQ(o.v[57][k], vertices[57][k].item<float>());
  EXPECT_EQ(o.vt[0][0], m.uv[0][0].item<float>());
  EXPECT_EQ(o.vt[0][1], m.uv[0][1].item<float>());  // v up, as stored
  EXPECT_EQ(o.vt[99][1], m.uv[99][1].item<float>());
  for (int k = 0; k < 3; ++k) {
    const std::string id = std::to_string(m.triangles[0][k].item<int64_t>() + 1);  // 1-based, v/vt the same
    EXPECT_EQ(o.f[0][k], id + "/" + id);
  }
  ASSERT_EQ(o.mtllib, std::vector<std::string>{"face_0001.mtl"});
  ASSERT_EQ(o.usemtl.size(), 1u);

  const std::string mtl = test::read_bytes(dir.path() / "out" / "face_0001.mtl");
  EXPECT_NE(mtl.find("newmtl " + o.usemtl[0] + "\n"), std::string::npos) << mtl;
  EXPECT_NE(mtl.find("Kd 1 1 1\n"), std::string::npos) << mtl;
  EXPECT_NE(mtl.find("map_Kd face_0001.png\n"), std::string::npos) << mtl;

  const std::string png = test::read_bytes(dir.path() / "out" / "face_0001.png");
  const cv::Mat decoded = cv::imdecode(cv::Mat(1, static_cast<int>(png.size()), CV_8U, const_cast<char*>(png.data())),
                                       cv::IMREAD_UNCHANGED);
  ASSERT_EQ(decoded.type(), CV_8UC3);
  ASSERT_EQ(decoded.rows, 16);
  ASSERT_EQ(decoded.cols, 24);
  const at::Tensor rgb =
      at::from_blob(decoded.data, {16, 24, 3}, at::kByte).flip({2}).permute({2, 0, 1}).contiguous();  // BGR -> RGB
  EXPECT_TRUE(at::equal(rgb, texture));

  for (const auto& e : fs::directory_iterator(dir.path() / "out")) {
    EXPECT_EQ(e.path().filename().string().find(".partial-"), std::string::npos) << e.path();
  }
}

TEST(ObjExport, FloatTexturesAreScaledFromUnitRange) {
  test::TempDir dir;
  const at::Tensor v = at::tensor({0.0f, 0.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0.0f, 1.0f, 0.0f}).view({3, 3});
  const at::Tensor uv = at::tensor({0.0f, 0.0f, 1.0f, 0.0f, 0.0f, 1.0f}).view({3, 2});
  const at::Tensor tri = at::tensor({0, 1, 2}, at::kLong).view({1, 3});
  at::Tensor tex = at::zeros({3, 2, 2});
  tex[0][0][0] = 1.0;   // red at the top-left
  tex[2][1][1] = 0.5;   // half blue at the bottom-right
  tex[1][0][1] = 2.0;   // out of range: clamped to 255
  write_textured_obj(dir.path(), "tri", v, uv, tri, tex);
  const cv::Mat decoded = cv::imread((dir.path() / "tri.png").string(), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(decoded.type(), CV_8UC3);
  EXPECT_EQ(decoded.at<cv::Vec3b>(0, 0), cv::Vec3b(0, 0, 255));  // BGR
  EXPECT_EQ(decoded.at<cv::Vec3b>(1, 1), cv::Vec3b(128, 0, 0));
  EXPECT_EQ(decoded.at<cv::Vec3b>(0, 1), cv::Vec3b(0, 255, 0));
  EXPECT_THROW(write_textured_obj(dir.path(), "bad", v, uv, tri + 1, tex), std::exception);  // index 3 of 3 vertices
}
