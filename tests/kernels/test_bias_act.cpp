// bias_act: parity with StyleGAN2-ADA's reference op (every `bias_act/*` group: y, first and second derivatives,
// float32 and float64), the activation table, and argument errors.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "core/error.h"
#include "core/h5.h"
#include "kernels/bias_act.h"
#include "tests/kernels/autograd_util.h"
#include "tests/support/parity_compare.h"
#include "tests/support/parity_file.h"

using namespace facetex;
using kernels::Activation;
using kernels::BiasActArgs;
using kernels::Impl;

namespace {

// README §4: every bias_act output, second derivatives included, within 1e-5 of its scale (observed <= 5e-7; the
// inputs keep away from kinks and clamp edges). A float64 run against outputs_f64: rounding only.
constexpr double kParityTolerance = 1e-5;
constexpr double kFloat64Tolerance = 1e-9;

BiasActArgs args_from_kwargs(const nlohmann::json& kw) {
  BiasActArgs a;
  a.act = kernels::parse_activation(kw.at("act").get<std::string>());
  a.dim = kw.value("dim", 1);
  if (kw.contains("alpha") && !kw.at("alpha").is_null()) a.alpha = kw.at("alpha").get<double>();
  if (kw.contains("gain") && !kw.at("gain").is_null()) a.gain = kw.at("gain").get<double>();
  if (kw.contains("clamp") && !kw.at("clamp").is_null()) a.clamp = kw.at("clamp").get<double>();
  return a;
}

struct Outputs {
  at::Tensor y, dL_dx, dL_db, d2_dx, d2_db;
};

// As the parity file defines them: L = sum(y * R); first gradients kept differentiable; Q = sum((dL/dx)^2);
// second gradients of Q with respect to x and b.
Outputs run(const at::Tensor& x_in, const at::Tensor& b_in, const at::Tensor& R, const BiasActArgs& a, Impl impl) {
  const at::Tensor x = x_in.detach().clone().requires_grad_(true);
  const at::Tensor b = b_in.detach().clone().requires_grad_(true);
  const at::Tensor y = kernels::bias_act(x, b, a, impl);
  const std::vector<at::Tensor> first = test::gradients((y * R).sum(), {x, b}, true);
  const std::vector<at::Tensor> second = test::gradients(first[0].pow(2).sum(), {x, b}, false);
  return {y.detach(), first[0].detach(), first[1].detach(), second[0], second[1]};
}

}  // namespace

TEST(KernelParity, BiasAct) {
  h5::Id file = h5::open_file(test::parity_file_path());
  if (!h5::exists(file, "bias_act")) {
    ADD_FAILURE() << test::parity_file_path() << " has no group bias_act";
    return;
  }
  h5::Id root = h5::open_group(file, "bias_act");
  const std::vector<std::string> cases = h5::child_names(root);
  ASSERT_FALSE(cases.empty()) << "bias_act has no subgroups";
  for (const std::string& name : cases) {
    SCOPED_TRACE("bias_act/" + name);
    try {
      h5::Id group = h5::open_group(root, name);
      const BiasActArgs a = args_from_kwargs(test::read_json_attr(group, "kwargs"));
      // The file says which alpha and gain the reference resolved; ours must resolve the same defaults.
      const nlohmann::json resolved = test::read_json_attr(group, "resolved");
      EXPECT_DOUBLE_EQ(a.gain.value_or(kernels::default_gain(a.act)), resolved.at("gain").get<double>());
      if (a.act == Activation::kLrelu) {
        EXPECT_DOUBLE_EQ(a.alpha.value_or(0.2), resolved.at("alpha").get<double>());
      }
      const at::Tensor x = test::read_tensor(group, "inputs/x");
      const at::Tensor b = test::read_tensor(group, "inputs/b");
      const at::Tensor R = test::read_tensor(group, "inputs/R");

      const Outputs out = run(x, b, R, a, Impl::kReference);
      const std::vector<std::pair<const char*, at::Tensor>> ours = {
          {"y", out.y}, {"dL_dx", out.dL_dx}, {"dL_db", out.dL_db}, {"d2_dx", out.d2_dx}, {"d2_db", out.d2_db}};
      std::string line;
      for (const auto& [key, value] : ours) {
        const double err = test::normalised_max_error(value, test::read_tensor(group, std::string("outputs/") + key));
        EXPECT_LE(err, kParityTolerance) << key;
        line += fmt::format(" {} {:.1e}", key, err);
      }
      if (h5::exists(group, "outputs_f64")) {
        const Outputs out64 = run(x.to(at::kDouble), b.to(at::kDouble), R.to(at::kDouble), a, Impl::kReference);
        const std::vector<std::pair<const char*, at::Tensor>> ours64 = {{"y", out64.y},
                                                                        {"dL_dx", out64.dL_dx},
                                                                        {"dL_db", out64.dL_db},
                                                                        {"d2_dx", out64.d2_dx},
                                                                        {"d2_db", out64.d2_db}};
        double worst64 = 0.0;
        for (const auto& [key, value] : ours64) {
          const double err =
              test::normalised_max_error(value, test::read_tensor(group, std::string("outputs_f64/") + key));
          EXPECT_LE(err, kFloat64Tolerance) << "float64 " << key;
          worst64 = std::max(worst64, err);
        }
        line += fmt::format("; float64 worst {:.1e}", worst64);
      }
      std::printf("[parity] bias_act/%-18s%s\n", name.c_str(), line.c_str());
    } catch (const std::exception& e) {
      ADD_FAILURE() << "bias_act/" << name << ": " << e.what();
    }
  }
}

TEST(BiasActTable, NamesGainsAndDefaultsFollowTheReference) {
  const std::vector<std::pair<std::string, double>> expected = {
      {"linear", 1.0}, {"relu", std::sqrt(2.0)}, {"lrelu", std::sqrt(2.0)}, {"tanh", 1.0},  {"sigmoid", 1.0},
      {"elu", 1.0},    {"selu", 1.0},            {"softplus", 1.0},         {"swish", std::sqrt(2.0)}};
  for (const auto& [name, gain] : expected) {
    const Activation act = kernels::parse_activation(name);
    EXPECT_EQ(kernels::activation_name(act), name);
    EXPECT_DOUBLE_EQ(kernels::default_gain(act), gain) << name;
  }
  EXPECT_THROW(kernels::parse_activation("gelu"), std::invalid_argument);

  // lrelu's alpha defaults to 0.2; an explicit alpha and gain replace the defaults.
  const at::Tensor x = at::tensor({-1.0, 2.0}, at::kDouble);
  BiasActArgs lrelu;
  lrelu.act = Activation::kLrelu;
  EXPECT_TRUE(at::allclose(kernels::bias_act(x, {}, lrelu), at::tensor({-0.2, 2.0}, at::kDouble) * std::sqrt(2.0)));
  lrelu.alpha = 0.5;
  lrelu.gain = 1.0;
  EXPECT_TRUE(at::allclose(kernels::bias_act(x, {}, lrelu), at::tensor({-0.5, 2.0}, at::kDouble)));
}

TEST(BiasActReference, SoftplusIsTheIdentityAboveTwentyLikePyTorch) {
  BiasActArgs a;
  a.act = Activation::kSoftplus;
  const at::Tensor x = at::tensor({19.0, 20.5, 40.0}, at::kDouble);
  const at::Tensor y = kernels::bias_act(x, {}, a);
  EXPECT_DOUBLE_EQ(y[1].item<double>(), 20.5);
  EXPECT_DOUBLE_EQ(y[2].item<double>(), 40.0);
  EXPECT_NEAR(y[0].item<double>(), std::log1p(std::exp(19.0)), 1e-12);
}

TEST(BiasActReference, BiasFollowsDimAndClampZeroesTheGradientOutside) {
  at::manual_seed(1);  // reproducible inputs
  const at::Tensor x = at::randn({2, 3, 4}, at::kDouble).requires_grad_(true);
  const at::Tensor b = at::randn({4}, at::kDouble);
  BiasActArgs a;
  a.act = Activation::kTanh;
  a.dim = 2;
  a.gain = 3.0;
  a.clamp = 2.0;
  const at::Tensor y = kernels::bias_act(x, b, a);
  const at::Tensor expected = (at::tanh(x + b.reshape({1, 1, 4})) * 3.0).clamp(-2.0, 2.0);
  EXPECT_TRUE(at::allclose(y, expected));
  const at::Tensor dx = test::gradients(y.sum(), {x}, false)[0];
  const at::Tensor unclamped = (at::tanh(x + b.reshape({1, 1, 4})) * 3.0).abs().le(2.0);
  EXPECT_TRUE(at::equal(dx.ne(0), unclamped));
  // No bias, linear, gain 1, no clamp: x itself.
  EXPECT_TRUE(kernels::bias_act(x, {}, BiasActArgs()).is_same(x));
}

TEST(BiasActReference, RejectsBadArgumentsWithClearErrors) {
  const at::Tensor x = at::ones({2, 3, 4});
  BiasActArgs a;
  EXPECT_THROW(kernels::bias_act(x, at::ones({4}), a), RuntimeError);  // b must match x.size(dim) = 3
  EXPECT_THROW(kernels::bias_act(x, at::ones({1, 3}), a), RuntimeError);
  a.dim = 3;
  EXPECT_THROW(kernels::bias_act(x, at::ones({3}), a), RuntimeError);
  a.dim = 1;
  EXPECT_THROW(kernels::bias_act(x, at::ones({3}, at::kDouble), a), RuntimeError);
  a.clamp = -1.0;
  EXPECT_THROW(kernels::bias_act(x, at::ones({3}), a), RuntimeError);
  EXPECT_THROW(kernels::bias_act(at::ones({2}, at::kInt), {}, BiasActArgs()), RuntimeError);
}
