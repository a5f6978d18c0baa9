// The BFM-front face model files (.mat via matio + UV .npy) and the synthetic model: exact round trips, files written
// by another writer (double classes, column vectors), and clear DataErrors naming file and field for bad input.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <matio.h>

#include <array>
#include <cstring>
#include <map>
#include <set>
#include <string>

#include "core/error.h"
#include "models/face3d/morphable_model.h"
#include "tests/support/fixtures.h"

using namespace facetex;
using namespace facetex::models::face3d;
namespace fs = std::filesystem;

namespace {

SyntheticModelOptions small_options(uint64_t seed = 7) {
  SyntheticModelOptions o;
  o.seed = seed;
  o.grid = 12;
  o.id_dims = 10;
  o.exp_dims = 6;
  o.tex_dims = 8;
  return o;
}

// The fields as a file holds them (1-based indices, vectors as rows), in double: an independent writer.
std::map<std::string, at::Tensor> file_fields(const MorphableModel& m) {
  const int64_t n = m.num_vertices();
  return {{"meanshape", m.mean_shape.reshape({1, 3 * n}).to(at::kDouble)},
          {"idBase", m.id_base.to(at::kDouble)},
          {"exBase", m.exp_base.to(at::kDouble)},
          {"meantex", m.mean_tex.reshape({1, 3 * n}).to(at::kDouble)},
          {"texBase", m.tex_base.to(at::kDouble)},
          {"tri", (m.triangles + 1).to(at::kDouble)},
          {"point_buf", (m.point_buf + 1).to(at::kDouble)},
          {"keypoints", (m.keypoints + 1).reshape({1, 68}).to(at::kDouble)}};
}

// Writes double matrices with matio (column-major), like scipy.io.savemat or MATLAB would. Fields named in
// `uint8_storage` are stored the way MATLAB saves small integer-valued doubles: class double, uint8 data.
void write_mat(const fs::path& path, const std::map<std::string, at::Tensor>& fields,
               const std::set<std::string>& uint8_storage = {}) {
  mat_t* mat = Mat_CreateVer(path.c_str(), nullptr, MAT_FT_MAT5);
  ASSERT_NE(mat, nullptr);
  for (const auto& [name, t] : fields) {
    const bool compact = uint8_storage.count(name) > 0;
    at::Tensor col_major = t.to(compact ? at::kByte : at::kDouble).t().contiguous();
    size_t dims[2] = {static_cast<size_t>(t.size(0)), static_cast<size_t>(t.size(1))};
    matvar_t* var = Mat_VarCreate(name.c_str(), MAT_C_DOUBLE, compact ? MAT_T_UINT8 : MAT_T_DOUBLE, 2, dims,
                                  col_major.data_ptr(), MAT_F_DONT_COPY_DATA);
    ASSERT_NE(var, nullptr);
    ASSERT_EQ(Mat_VarWrite(mat, var, MAT_COMPRESSION_NONE), 0);
    Mat_VarFree(var);
  }
  Mat_Close(mat);
}

std::string npy(const std::string& header_dict, const std::string& payload) {
  std::string header = header_dict;
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + payload;
}

std::string floats(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.numel() * c.element_size()));
}

// Expects a DataError whose message names every string in `parts`.
template <typename F>
void expect_data_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no DataError";
  } catch (const DataError& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
  }
}

void expect_models_equal(const MorphableModel& a, const MorphableModel& b) {
  EXPECT_TRUE(at::equal(a.mean_shape, b.mean_shape));
  EXPECT_TRUE(at::equal(a.id_base, b.id_base));
  EXPECT_TRUE(at::equal(a.exp_base, b.exp_base));
  EXPECT_TRUE(at::equal(a.mean_tex, b.mean_tex));
  EXPECT_TRUE(at::equal(a.tex_base, b.tex_base));
  EXPECT_TRUE(at::equal(a.triangles, b.triangles));
  EXPECT_TRUE(at::equal(a.point_buf, b.point_buf));
  EXPECT_TRUE(at::equal(a.keypoints, b.keypoints));
  EXPECT_TRUE(at::equal(a.uv, b.uv));
}

}  // namespace

TEST(SyntheticModel, LayoutShapesAndRanges) {
  const MorphableModel m = make_synthetic_model(small_options());
  const int64_t n = 144, f = 2 * 11 * 11;
  EXPECT_EQ(m.num_vertices(), n);
  EXPECT_EQ(m.num_triangles(), f);
  EXPECT_EQ(m.mean_shape.sizes(), (std::vector<int64_t>{n, 3}));
  EXPECT_EQ(m.id_base.sizes(), (std::vector<int64_t>{3 * n, 10}));
  EXPECT_EQ(m.exp_base.sizes(), (std::vector<int64_t>{3 * n, 6}));
  EXPECT_EQ(m.tex_base.sizes(), (std::vector<int64_t>{3 * n, 8}));
  EXPECT_EQ(m.mean_tex.sizes(), (std::vector<int64_t>{n, 3}));
  EXPECT_EQ(m.point_buf.sizes(), (std::vector<int64_t>{n, 8}));
  EXPECT_EQ(m.keypoints.sizes(), (std::vector<int64_t>{68}));
  EXPECT_EQ(m.uv.sizes(), (std::vector<int64_t>{n, 2}));
  EXPECT_EQ(m.mean_shape.scalar_type(), at::kFloat);
  EXPECT_EQ(m.triangles.scalar_type(), at::kLong);
  EXPECT_GE(m.triangles.min().item<int64_t>(), 0);
  EXPECT_LT(m.triangles.max().item<int64_t>(), n);
  EXPECT_GE(m.keypoints.min().item<int64_t>(), 0);
  EXPECT_LT(m.keypoints.max().item<int64_t>(), n);
  EXPECT_GE(m.uv.min().item<float>(), 0.0f);
  EXPECT_LE(m.uv.max().item<float>(), 1.0f);
  EXPECT_GE(m.mean_tex.min().item<float>(), 0.0f);
  EXPECT_LE(m.mean_tex.max().item<float>(), 255.0f);
  // About the size of a BFM face (decimetres): ~1.6 wide, ~2 tall, some depth.
  const at::Tensor extent = std::get<0>(m.mean_shape.max(0)) - std::get<0>(m.mean_shape.min(0));
  EXPECT_NEAR(extent[0].item<float>(), 1.6f, 1e-5);
  EXPECT_NEAR(extent[1].item<float>(), 2.0f, 1e-5);
  EXPECT_GT(extent[2].item<float>(), 0.3f);
}

TEST(SyntheticModel, BasesAreOrthogonalWithTheRequestedScale) {
  SyntheticModelOptions o = small_options();
  o.basis_scale = 0.03;
  const MorphableModel m = make_synthetic_model(o);
  const double n3 = 3.0 * m.num_vertices();
  for (const at::Tensor* b : {&m.id_base, &m.exp_base}) {
    const at::Tensor gram = at::matmul(b->t().to(at::kDouble), b->to(at::kDouble));
    const at::Tensor expected = at::eye(b->size(1), at::kDouble) * (0.03 * 0.03 * n3);
    EXPECT_TRUE(at::allclose(gram, expected, 1e-4, 1e-6)) << gram;
    // A unit coefficient displaces each coordinate by basis_scale (RMS).
    EXPECT_NEAR(b->select(1, 0).square().mean().sqrt().item<float>(), 0.03f, 1e-5);
  }
  // Smooth: neighbouring vertices move much less than the RMS displacement.
  const at::Tensor mode = m.id_base.select(1, 0).reshape({12, 12, 3});
  const double step = (mode.narrow(1, 1, 11) - mode.narrow(1, 0, 11)).abs().mean().item<double>();
  EXPECT_LT(step, 0.5 * mode.abs().mean().item<double>());
}

TEST(SyntheticModel, DeterministicInSeed) {
  expect_models_equal(make_synthetic_model(small_options(3)), make_synthetic_model(small_options(3)));
  EXPECT_FALSE(at::equal(make_synthetic_model(small_options(3)).id_base, make_synthetic_model(small_options(4)).id_base));
}

TEST(SyntheticModel, PointBufListsExactlyTheAdjacentFaces) {
  const MorphableModel m = make_synthetic_model(small_options());
  const int64_t f = m.num_triangles();
  auto tri = m.triangles.accessor<int64_t, 2>();
  auto pb = m.point_buf.accessor<int64_t, 2>();
  std::vector<std::set<int64_t>> around(static_cast<size_t>(m.num_vertices()));
  for (int64_t i = 0; i < f; ++i) {
    for (int k = 0; k < 3; ++k) around[static_cast<size_t>(tri[i][k])].insert(i);
  }
  for (int64_t v = 0; v < m.num_vertices(); ++v) {
    std::set<int64_t> listed;
    for (int k = 0; k < 8; ++k) {
      if (pb[v][k] != f) listed.insert(pb[v][k]);
    }
    EXPECT_EQ(listed, around[static_cast<size_t>(v)]) << "vertex " << v;
  }
  EXPECT_EQ(m.point_buf.max().item<int64_t>(), f);  // padding present
}

TEST(SyntheticModel, KeypointsSitAtPlausibleFacePositions) {
  const MorphableModel m = make_synthetic_model(SyntheticModelOptions{});  // the default 48x48 grid, BFM sizes
  EXPECT_EQ(m.id_base.size(1), 80);
  EXPECT_EQ(m.exp_base.size(1), 64);
  EXPECT_EQ(m.tex_base.size(1), 80);
  const at::Tensor p = m.mean_shape.index_select(0, m.keypoints);
  auto x = [&](int i) { return p[i][0].item<float>(); };
  auto y = [&](int i) { return p[i][1].item<float>(); };
  auto z = [&](int i) { return p[i][2].item<float>(); };
  const std::set<int64_t> distinct(m.keypoints.data_ptr<int64_t>(), m.keypoints.data_ptr<int64_t>() + 68);
  EXPECT_EQ(distinct.size(), 68u) << "keypoints should be distinct vertices";
  EXPECT_LT(x(0), x(8));   // jaw runs image-left -> chin -> image-right
  EXPECT_LT(x(8), x(16));
  EXPECT_LT(y(8), y(57));  // chin below the lower lip
  EXPECT_LT(x(36), x(39)); // left eye: outer corner left of inner corner
  EXPECT_LT(x(39), x(42)); // eyes apart
  EXPECT_LT(x(42), x(45));
  EXPECT_GT(y(37), y(30)); // eyes above nose tip
  EXPECT_GT(y(30), y(51)); // nose above mouth
  EXPECT_GT(y(19), y(37)); // brows above eyes
  EXPECT_LT(x(48), x(54)); // mouth corners
  for (int i = 0; i < 68; ++i) {
    if (i != 30) {
      EXPECT_GT(z(30), z(i)) << "the nose tip should be the most protruding landmark, not " << i;
    }
  }
}

TEST(MorphableModelFile, SaveLoadRoundTripIsExact) {
  test::TempDir dir;
  const MorphableModel m = make_synthetic_model(small_options());
  save_morphable_model(m, dir / "face.mat", dir / "uv.npy");
  const std::string head = test::read_bytes(dir / "face.mat").substr(0, 19);
  EXPECT_EQ(head, "MATLAB 5.0 MAT-file");
  expect_models_equal(m, load_morphable_model(dir / "face.mat", dir / "uv.npy"));
  for (const auto& e : fs::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().filename().string().find(".partial-"), std::string::npos) << e.path();
  }
}

TEST(MorphableModelFile, ReadsDoubleClassesAndColumnVectors) {
  test::TempDir dir;
  const MorphableModel m = make_synthetic_model(small_options());
  save_morphable_model(m, dir / "face.mat", dir / "uv.npy");
  auto fields = file_fields(m);
  fields["meanshape"] = fields["meanshape"].t();  // (3N, 1) instead of (1, 3N)
  fields["keypoints"] = fields["keypoints"].t();
  write_mat(dir / "double.mat", fields);
  // The UVs as float64, numpy's default.
  test::write_bytes(dir / "uv64.npy",
                    npy("{'descr': '<f8', 'fortran_order': False, 'shape': (144, 2), }", floats(m.uv.to(at::kDouble))));
  expect_models_equal(m, load_morphable_model(dir / "double.mat", dir / "uv64.npy"));
  // MATLAB's compact storage of integer-valued doubles (all indices here are < 256).
  write_mat(dir / "compact.mat", file_fields(m), {"tri", "point_buf", "keypoints"});
  expect_models_equal(m, load_morphable_model(dir / "compact.mat", dir / "uv.npy"));
}

TEST(MorphableModelFile, BadFieldsAreDataErrorsNamingFileAndField) {
  test::TempDir dir;
  const MorphableModel m = make_synthetic_model(small_options());
  save_morphable_model(m, dir / "face.mat", dir / "uv.npy");
  const fs::path bad = dir / "bad.mat";
  const std::string bad_name = bad.string();
  auto with = [&](const std::string& field, const at::Tensor& value) {
    auto fields = file_fields(m);
    if (value.defined()) fields[field] = value;
    else fields.erase(field);
    write_mat(bad, fields);
    return [&] { load_morphable_model(bad, dir / "uv.npy"); };
  };
  const int64_t n = m.num_vertices(), f = m.num_triangles();

  expect_data_error(with("idBase", {}), {bad_name, "'idBase'", "missing"});
  expect_data_error(with("keypoints", {}), {bad_name, "'keypoints'", "missing"});
  at::Tensor tri = file_fields(m)["tri"];
  tri[5][1] = 0;  // 1-based files never hold 0
  expect_data_error(with("tri", tri), {bad_name, "'tri'", "index 0", "1-based"});
  tri = file_fields(m)["tri"];
  tri[0][0] = static_cast<double>(n + 1);
  expect_data_error(with("tri", tri), {bad_name, "'tri'", std::to_string(n + 1)});
  tri[0][0] = 1.5;
  expect_data_error(with("tri", tri), {bad_name, "'tri'", "non-integer"});
  at::Tensor pb = file_fields(m)["point_buf"];
  pb[3][7] = static_cast<double>(f + 2);  // F + 1 is the padding id, F + 2 is out of range
  expect_data_error(with("point_buf", pb), {bad_name, "'point_buf'", std::to_string(f + 2)});
  at::Tensor kp = file_fields(m)["keypoints"];
  kp[0][67] = 0;
  expect_data_error(with("keypoints", kp), {bad_name, "'keypoints'", "index 0"});
  expect_data_error(with("keypoints", file_fields(m)["keypoints"].narrow(1, 0, 60)),
                    {bad_name, "'keypoints'", "expected 68"});
  expect_data_error(with("idBase", file_fields(m)["idBase"].narrow(0, 0, 3 * n - 3)), {bad_name, "'idBase'", "(3N, K)"});
  expect_data_error(with("point_buf", file_fields(m)["point_buf"].narrow(1, 0, 7)), {bad_name, "'point_buf'", "(N, 8)"});
  at::Tensor mean = file_fields(m)["meanshape"];
  mean[0][4] = std::nan("");
  expect_data_error(with("meanshape", mean), {bad_name, "'meanshape'", "NaN"});
  test::write_bytes(bad, "this is not a MATLAB file at all, just some text that is long enough to look like one ......"
                         "...........................................................................");
  expect_data_error([&] { load_morphable_model(bad, dir / "uv.npy"); }, {bad_name});
  expect_data_error([&] { load_morphable_model(dir / "missing.mat", dir / "uv.npy"); }, {"missing.mat"});
}

TEST(MorphableModelFile, BadUvFilesAreDataErrorsNamingTheFile) {
  test::TempDir dir;
  const MorphableModel m = make_synthetic_model(small_options());
  save_morphable_model(m, dir / "face.mat", dir / "uv.npy");
  const fs::path uv = dir / "bad_uv.npy";
  auto load = [&] { load_morphable_model(dir / "face.mat", uv); };
  const std::string payload = floats(m.uv);

  test::write_bytes(uv, npy("{'descr': '<f4', 'fortran_order': False, 'shape': (144, 3), }",
                            floats(at::zeros({144, 3}, at::kFloat))));
  expect_data_error(load, {uv.string(), "(144, 3)", "(N, 2)"});
  test::write_bytes(uv, npy("{'descr': '<f4', 'fortran_order': False, 'shape': (100, 2), }",
                            floats(at::zeros({100, 2}, at::kFloat))));
  expect_data_error(load, {uv.string(), "100 rows", "N = 144"});
  test::write_bytes(uv, npy("{'descr': '<i4', 'fortran_order': False, 'shape': (144, 2), }", payload));
  expect_data_error(load, {uv.string(), "'<i4'"});
  test::write_bytes(uv, npy("{'descr': '>f4', 'fortran_order': False, 'shape': (144, 2), }", payload));
  expect_data_error(load, {uv.string(), "'>f4'"});
  test::write_bytes(uv, npy("{'descr': '<f4', 'fortran_order': True, 'shape': (144, 2), }", payload));
  expect_data_error(load, {uv.string(), "Fortran"});
  test::write_bytes(uv, npy("{'descr': '<f4', 'fortran_order': False, 'shape': (144, 2), }", payload.substr(8)));
  expect_data_error(load, {uv.string(), "bytes"});
  test::write_bytes(uv, npy("{'descr': '<f4', 'fortran_order': False, 'shape': (144, 2), 'x': 1, }", payload));
  expect_data_error(load, {uv.string(), "malformed"});
  test::write_bytes(uv, "PK\x03\x04 not numpy");
  expect_data_error(load, {uv.string(), "magic"});
}
