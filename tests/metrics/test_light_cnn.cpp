// LightCNN-29 v2 against PyTorch: a random-weight network in the published checkpoint layout ({'state_dict':
// 'module.'-prefixed keys}, made by make_light_cnn_reference.py with Debian's python3-torch), converted with
// tools/convert_torch_state_dict.py --key state_dict --prefix-strip module., loaded and run on the same input.
// Skipped without python3-torch.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "models/aux/light_cnn.h"
#include "tests/support/fixtures.h"

namespace aux = facetex::models::aux;
namespace test = facetex::test;

namespace {
at::Tensor read_f32(const std::filesystem::path& p, std::vector<int64_t> shape) {
  const std::string bytes = test::read_bytes(p);
  at::Tensor t = at::empty(shape, at::kFloat);
  EXPECT_EQ(bytes.size(), static_cast<size_t>(t.numel()) * 4);
  std::memcpy(t.data_ptr<float>(), bytes.data(), bytes.size());
  return t;
}
}  // namespace

TEST(LightCnn29v2, MatchesPyTorchReference) {
  const std::string python = "/usr/bin/python3";
  if (test::run_command(python + " -c 'import torch, numpy, h5py'").exit_code != 0)
    GTEST_SKIP() << "no python3-torch / numpy / h5py";
  test::TempDir tmp;
  const std::string src = FACETEX_METRICS_SOURCE_DIR;
  auto r = test::run_command(python + " " + src + "/tests/metrics/make_light_cnn_reference.py " + tmp.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_command(python + " " + src + "/tools/convert_torch_state_dict.py " + (tmp / "light_cnn.pth").string() +
                        " " + (tmp / "light_cnn.h5").string() + " --key state_dict --prefix-strip module. --name light_cnn");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto net = aux::load_light_cnn(tmp / "light_cnn.h5");
  const at::Tensor rgb = read_f32(tmp / "input.f32", {2, 3, 144, 160});
  const at::Tensor expect = read_f32(tmp / "features.f32", {2, 256});
  const at::Tensor got = net->identity_features(rgb);
  ASSERT_EQ(got.sizes().vec(), (std::vector<int64_t>{2, 256}));
  const float err = (got - expect).abs().max().item<float>(), scale = expect.abs().max().item<float>();
  std::printf("LightCNN-29v2 fc features vs PyTorch: max |diff| %.3g (max |value| %.3g)\n", err, scale);
  EXPECT_LT(err, 1e-4f * std::max(1.0f, scale));
  EXPECT_THROW(net->features(at::zeros({1, 1, 64, 64})), facetex::UsageError);
  EXPECT_THROW(aux::load_light_cnn(tmp / "missing.h5"), facetex::DataError);
}
