// upfirdn2d: parity with StyleGAN2-ADA's reference op (every `upfirdn2d/*` group of the parity file, float32 and
// float64), the filter helpers' padding rules, argument errors, and the transpose formula the CUDA backward uses.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

#include "core/error.h"
#include "core/h5.h"
#include "kernels/upfirdn2d.h"
#include "kernels/upfirdn2d_transpose.h"
#include "tests/kernels/autograd_util.h"
#include "tests/support/parity_compare.h"
#include "tests/support/parity_file.h"

using namespace facetex;
using kernels::Impl;
using kernels::Upfirdn2dArgs;

namespace {

// README §4: upfirdn2d data keep away from nothing that could flip, so max|ours - ref| <= 1e-5 * max|ref| for
// every output (observed float32-vs-float64 differences: <= 1.5e-7). Against the float64 outputs a float64 run
// must agree to rounding (an independent float64 implementation matched to ~1e-14).
constexpr double kParityTolerance = 1e-5;
constexpr double kFloat64Tolerance = 1e-9;

// kwargs values may be an int or a list ([x, y] scaling; [x, y] or [x0, x1, y0, y1] padding), as in the reference.
std::array<int, 2> parse_scaling(const nlohmann::json& v) {
  if (v.is_number_integer()) return {v.get<int>(), v.get<int>()};
  return {v.at(0).get<int>(), v.at(1).get<int>()};
}
std::array<int, 4> parse_padding(const nlohmann::json& v) {
  if (v.is_number_integer()) return {v.get<int>(), v.get<int>(), v.get<int>(), v.get<int>()};
  if (v.size() == 2) return {v.at(0).get<int>(), v.at(0).get<int>(), v.at(1).get<int>(), v.at(1).get<int>()};
  return {v.at(0).get<int>(), v.at(1).get<int>(), v.at(2).get<int>(), v.at(3).get<int>()};
}

Upfirdn2dArgs args_from_kwargs(const nlohmann::json& kw) {
  Upfirdn2dArgs a;
  const auto up = parse_scaling(kw.value("up", nlohmann::json(1)));
  const auto down = parse_scaling(kw.value("down", nlohmann::json(1)));
  a.up_x = up[0];
  a.up_y = up[1];
  a.down_x = down[0];
  a.down_y = down[1];
  a.padding = parse_padding(kw.value("padding", nlohmann::json(0)));
  a.flip_filter = kw.value("flip_filter", false);
  a.gain = kw.value("gain", 1.0);
  return a;
}

struct Outputs {
  at::Tensor y, dL_dx;
};

// y and dL/dx for L = sum(y * R), as the parity file defines them.
Outputs run(const at::Tensor& x, const at::Tensor& f, const at::Tensor& R, const Upfirdn2dArgs& a, Impl impl) {
  const at::Tensor input = x.detach().clone().requires_grad_(true);
  const at::Tensor y = kernels::upfirdn2d(input, f, a, impl);
  return {y.detach(), test::gradients((y * R).sum(), {input}, false)[0]};
}

at::Tensor random_input(int64_t h, int64_t w, at::ScalarType dtype = at::kDouble) {
  return at::randn({2, 3, h, w}, at::TensorOptions().dtype(dtype));
}

}  // namespace

TEST(KernelParity, Upfirdn2d) {
  h5::Id file = h5::open_file(test::parity_file_path());
  if (!h5::exists(file, "upfirdn2d")) {
    ADD_FAILURE() << test::parity_file_path() << " has no group upfirdn2d";
    return;
  }
  h5::Id root = h5::open_group(file, "upfirdn2d");
  const std::vector<std::string> cases = h5::child_names(root);
  ASSERT_FALSE(cases.empty()) << "upfirdn2d has no subgroups";
  for (const std::string& name : cases) {
    SCOPED_TRACE("upfirdn2d/" + name);
    try {
      h5::Id group = h5::open_group(root, name);
      const Upfirdn2dArgs a = args_from_kwargs(test::read_json_attr(group, "kwargs"));
      const at::Tensor x = test::read_tensor(group, "inputs/x");
      const at::Tensor f = test::read_tensor(group, "inputs/f");
      const at::Tensor R = test::read_tensor(group, "inputs/R");

      const Outputs out = run(x, f, R, a, Impl::kReference);
      const double err_y = test::normalised_max_error(out.y, test::read_tensor(group, "outputs/y"));
      const double err_dx = test::normalised_max_error(out.dL_dx, test::read_tensor(group, "outputs/dL_dx"));
      EXPECT_LE(err_y, kParityTolerance);
      EXPECT_LE(err_dx, kParityTolerance);

      std::string f64_text = "no outputs_f64";
      if (h5::exists(group, "outputs_f64")) {
        const Outputs out64 = run(x.to(at::kDouble), f.to(at::kDouble), R.to(at::kDouble), a, Impl::kReference);
        const double err_y64 = test::normalised_max_error(out64.y, test::read_tensor(group, "outputs_f64/y"));
        const double err_dx64 = test::normalised_max_error(out64.dL_dx, test::read_tensor(group, "outputs_f64/dL_dx"));
        EXPECT_LE(err_y64, kFloat64Tolerance);
        EXPECT_LE(err_dx64, kFloat64Tolerance);
        f64_text = fmt::format("float64: y {:.1e}, dL_dx {:.1e}", err_y64, err_dx64);
      }
      std::printf("[parity] upfirdn2d/%-28s y %.1e, dL_dx %.1e (max|ours-ref|/max|ref|); %s\n", name.c_str(), err_y,
                  err_dx, f64_text.c_str());
    } catch (const std::exception& e) {
      ADD_FAILURE() << "upfirdn2d/" << name << ": " << e.what();
    }
  }
}

TEST(Upfirdn2dHelpers, SetupFilterFollowsTheReference) {
  // < 8 taps: outer product, normalised to sum 1.
  const at::Tensor f1331 = kernels::setup_filter({1, 3, 3, 1});
  ASSERT_EQ(f1331.sizes(), (at::IntArrayRef{4, 4}));
  EXPECT_EQ(f1331.scalar_type(), at::kFloat);
  const at::Tensor taps = at::tensor({1.0f, 3.0f, 3.0f, 1.0f});
  EXPECT_TRUE(at::allclose(f1331, at::outer(taps, taps) / 64, 0, 1e-7));
  // >= 8 taps: stays 1-D (separable), normalised.
  const std::vector<double> eight = {1, 2, 3, 4, 4, 3, 2, 1};
  const at::Tensor f8 = kernels::setup_filter(eight);
  ASSERT_EQ(f8.dim(), 1);
  EXPECT_NEAR(f8.sum().item<double>(), 1.0, 1e-6);
  // separable forces the layout either way; flip reverses; gain scales by gain^(ndim/2).
  EXPECT_EQ(kernels::setup_filter(eight, true, false, 1.0, 0).dim(), 2);
  EXPECT_EQ(kernels::setup_filter({1, 3, 3, 1}, true, false, 1.0, 1).dim(), 1);
  const at::Tensor ramp = kernels::setup_filter({1, 2, 3}, false, true, 4.0, 1);
  EXPECT_TRUE(at::allclose(ramp, at::tensor({6.0f, 4.0f, 2.0f})));  // flipped, times 4^(1/2)
  const at::Tensor ramp2d = kernels::setup_filter({1, 2}, false, false, 4.0, 0);
  EXPECT_TRUE(at::allclose(ramp2d, at::tensor({4.0f, 8.0f, 8.0f, 16.0f}).reshape({2, 2})));  // times 4^1
  EXPECT_THROW(kernels::setup_filter({}), RuntimeError);
}

TEST(Upfirdn2dHelpers, ResampleHelpersResolveToTheDocumentedPadding) {
  at::manual_seed(1);  // reproducible inputs
  const at::Tensor x = random_input(9, 11);
  const at::Tensor f4 = kernels::setup_filter({1, 3, 3, 1}).to(at::kDouble);
  const at::Tensor f12 = at::rand({12}, at::kDouble);  // a 1-D (separable) 12-tap filter like sym6
  const auto same = [](const at::Tensor& a, const at::Tensor& b) {
    return a.sizes() == b.sizes() && at::allclose(a, b, 0, 1e-12);
  };
  Upfirdn2dArgs a;
  // upsample2d, 4 taps: padding [2, 1, 2, 1], gain 4 (the networks' skip upsampling).
  a.up_x = a.up_y = 2;
  a.padding = {2, 1, 2, 1};
  a.gain = 4;
  EXPECT_TRUE(same(kernels::upsample2d(x, f4), kernels::upfirdn2d(x, f4, a)));
  EXPECT_EQ(kernels::upsample2d(x, f4).sizes(), (at::IntArrayRef{2, 3, 18, 22}));
  // upsample2d, 12 taps: padding [6, 5, 6, 5] (the augmentation).
  a.padding = {6, 5, 6, 5};
  EXPECT_TRUE(same(kernels::upsample2d(x, f12), kernels::upfirdn2d(x, f12, a)));
  // downsample2d, 4 taps: padding [1, 1, 1, 1], gain 1.
  a = Upfirdn2dArgs();
  a.down_x = a.down_y = 2;
  a.padding = {1, 1, 1, 1};
  EXPECT_TRUE(same(kernels::downsample2d(x, f4), kernels::upfirdn2d(x, f4, a)));
  // downsample2d, 12 taps, padding -6, flipped: [-1, -1, -1, -1] (the augmentation's crop back).
  a.padding = {-1, -1, -1, -1};
  a.flip_filter = true;
  const at::Tensor big = random_input(30, 30);
  EXPECT_TRUE(same(kernels::downsample2d(big, f12, 2, -6, true), kernels::upfirdn2d(big, f12, a)));
  // filter2d keeps the size: padding [fw/2, (fw-1)/2, ...].
  a = Upfirdn2dArgs();
  a.padding = {2, 1, 2, 1};
  EXPECT_TRUE(same(kernels::filter2d(x, f4), kernels::upfirdn2d(x, f4, a)));
  EXPECT_EQ(kernels::filter2d(x, f4).sizes(), x.sizes());
  // A 1-tap filter: (fw - up) // 2 rounds toward minus infinity when negative, as in Python.
  const at::Tensor f1 = at::ones({1, 1}, at::kDouble);
  a = Upfirdn2dArgs();
  a.up_x = a.up_y = 2;
  a.padding = {1, -1, 1, -1};
  a.gain = 4;
  EXPECT_TRUE(same(kernels::upsample2d(x, f1), kernels::upfirdn2d(x, f1, a)));

  EXPECT_EQ(kernels::filter_size(f4), (std::array<int, 2>{4, 4}));
  EXPECT_EQ(kernels::filter_size(f12), (std::array<int, 2>{12, 12}));
  EXPECT_EQ(kernels::filter_size(at::ones({3, 5})), (std::array<int, 2>{5, 3}));
}

TEST(Upfirdn2dReference, OutputSizeFollowsTheFormula) {
  at::manual_seed(2);  // reproducible inputs
  // out = ceil((in * up + pad0 + pad1 - f + 1) / down)
  for (int up : {1, 2, 3}) {
    for (int down : {1, 2, 3}) {
      Upfirdn2dArgs a;
      a.up_x = up;
      a.up_y = up;
      a.down_x = down;
      a.down_y = down;
      a.padding = {2, -1, 0, 3};
      const at::Tensor y = kernels::upfirdn2d(random_input(7, 8), at::ones({3, 4}, at::kDouble), a);
      const auto expect = [&](int in, int p0, int p1, int f) { return (in * up + p0 + p1 - f + down) / down; };
      EXPECT_EQ(y.size(2), expect(7, 0, 3, 3)) << up << " " << down;
      EXPECT_EQ(y.size(3), expect(8, 2, -1, 4)) << up << " " << down;
    }
  }
}

TEST(Upfirdn2dReference, RejectsBadArgumentsWithClearErrors) {
  const at::Tensor f = kernels::setup_filter({1, 3, 3, 1});
  const auto message_of = [](auto&& call) {
    try {
      call();
    } catch (const RuntimeError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message_of([&] { kernels::upfirdn2d(at::ones({3, 8, 8}), f, {}); }).find("[N, C, H, W]"),
            std::string::npos);
  EXPECT_NE(message_of([&] { kernels::upfirdn2d(at::ones({1, 1, 8, 8}), at::ones({2, 2, 2}), {}); }).find("filter"),
            std::string::npos);
  EXPECT_NE(message_of([&] {
              kernels::upfirdn2d(at::ones({1, 1, 8, 8}), at::ones({4, 4}).requires_grad_(true), {});
            }).find("filter"),
            std::string::npos);
  Upfirdn2dArgs crop_all;
  crop_all.padding = {-4, -4, 0, 0};
  EXPECT_NE(message_of([&] { kernels::upfirdn2d(at::ones({1, 1, 8, 8}), f, crop_all); }).find("empty output"),
            std::string::npos);
  Upfirdn2dArgs zero_up;
  zero_up.up_x = 0;
  EXPECT_NE(message_of([&] { kernels::upfirdn2d(at::ones({1, 1, 8, 8}), f, zero_up); }).find(">= 1"),
            std::string::npos);
}

// The CUDA Function computes its input gradient as another upfirdn2d (detail::upfirdn2d_transpose_args). That
// formula is checked here against autograd of the reference for every kind of call: 1-D and 2-D, non-square and
// asymmetric filters, up/down per axis, crops, flips, gains.
TEST(Upfirdn2dReference, BackwardIsTheTransposeUpfirdn2d) {
  at::manual_seed(3);  // reproducible inputs
  struct Case {
    int up_x, up_y, down_x, down_y;
    std::array<int, 4> padding;
    bool flip;
    double gain;
    std::vector<int64_t> filter_shape;
  };
  const std::vector<Case> cases = {
      {2, 2, 1, 1, {2, 1, 2, 1}, false, 4.0, {4, 4}},   {1, 1, 2, 2, {1, 1, 1, 1}, false, 1.0, {4, 4}},
      {1, 1, 1, 1, {1, 2, 0, 1}, true, 2.5, {4, 4}},    {2, 2, 3, 3, {-1, 3, 2, -2}, true, 0.7, {3, 5}},
      {2, 2, 1, 1, {6, 5, 6, 5}, false, 4.0, {12}},     {1, 1, 2, 2, {-1, -1, -1, -1}, true, 1.0, {12}},
      {3, 1, 1, 2, {0, 4, -2, 1}, false, 1.5, {2, 5}},  {1, 2, 3, 1, {3, 0, 1, 1}, true, 1.0, {7}},
  };
  for (const Case& c : cases) {
    Upfirdn2dArgs a;
    a.up_x = c.up_x;
    a.up_y = c.up_y;
    a.down_x = c.down_x;
    a.down_y = c.down_y;
    a.padding = c.padding;
    a.flip_filter = c.flip;
    a.gain = c.gain;
    const at::Tensor f = at::randn(c.filter_shape, at::kDouble);
    const at::Tensor x = random_input(23, 27).requires_grad_(true);
    const at::Tensor y = kernels::upfirdn2d(x, f, a, Impl::kReference);
    const at::Tensor dy = at::randn_like(y);
    const at::Tensor dx_autograd = test::gradients((y * dy).sum(), {x}, false)[0];
    const Upfirdn2dArgs t = kernels::detail::upfirdn2d_transpose_args(a, kernels::filter_size(f), {23, 27},
                                                                      {y.size(2), y.size(3)});
    const at::Tensor dx_transpose = kernels::upfirdn2d(dy, f, t, Impl::kReference);
    ASSERT_EQ(dx_transpose.sizes(), x.sizes()) << "case up " << c.up_x << "," << c.up_y;
    EXPECT_LE(test::normalised_max_error(dx_transpose, dx_autograd), 1e-12) << "case up " << c.up_x << "," << c.up_y;
  }
}

TEST(Upfirdn2dReference, SecondDerivativeMatchesFiniteDifferences) {
  at::manual_seed(4);  // reproducible inputs
  // The reference is built from differentiable ATen ops; a gradient-of-gradient through a nonlinearity checks it.
  Upfirdn2dArgs a;
  a.up_x = a.up_y = 2;
  a.padding = {2, 1, 2, 1};
  a.gain = 4;
  const at::Tensor f = kernels::setup_filter({1, 3, 3, 1}).to(at::kDouble);
  const at::Tensor x0 = random_input(5, 6);
  const auto q_of = [&](const at::Tensor& x, bool create_graph) {
    const at::Tensor y = kernels::upfirdn2d(x, f, a, Impl::kReference);
    const at::Tensor g = test::gradients(y.sin().sum(), {x}, create_graph)[0];
    return g.pow(2).sum();
  };
  const at::Tensor x = x0.clone().requires_grad_(true);
  const at::Tensor dq = test::gradients(q_of(x, true), {x}, false)[0];
  const double eps = 1e-6;
  for (int64_t i : {0, 17, 45, 101, 179}) {
    at::Tensor xp = x0.clone(), xm = x0.clone();
    xp.view(-1)[i] += eps;
    xm.view(-1)[i] -= eps;
    const double numeric = (q_of(xp.requires_grad_(true), false).item<double>() -
                            q_of(xm.requires_grad_(true), false).item<double>()) /
                           (2 * eps);
    EXPECT_NEAR(dq.view(-1)[i].item<double>(), numeric, 1e-6 * std::max(1.0, std::abs(numeric))) << i;
  }
}
