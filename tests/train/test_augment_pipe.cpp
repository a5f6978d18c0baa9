// ADA: the augment pipe against the StyleGAN2-ADA parity vectors (shared/testdata/stylegan2, groups augment_pipe/p0
// and p1: seeded draws must reproduce the recorded matrices), R1 through the pipe (second derivatives against float64
// finite differences), the pipe's options, and the p controller (update rule, interval, floor, reduction, resume).
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/h5.h"
#include "tests/support/parity_compare.h"
#include "tests/support/parity_file.h"
#include "train/ada_controller.h"
#include "train/augment_pipe.h"

using namespace facetex;
using train::AdaController;
using train::AdaOptions;
using train::AdaState;
using train::AugmentDebug;
using train::AugmentOptions;
using train::AugmentPipe;

namespace {

// README §4: augment images within 1e-4 of their scale (observed <= 4e-6); matrices bit-exact (allowed 1e-6).
constexpr double kImageTolerance = 1e-4;
constexpr double kMatrixTolerance = 1e-6;
constexpr double kFloat64Tolerance = 1e-9;

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble).cpu() - b.to(at::kDouble).cpu()).abs().max().item<double>();
}

bool bit_equal(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() && at::equal(a.cpu(), b.cpu());
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Parity with the reference pipe.

TEST(AugmentPipe, SeededDrawsReproduceTheReference) {
  h5::Id file = h5::open_file(test::parity_file_path());
  ASSERT_TRUE(h5::exists(file, "augment_pipe")) << test::parity_file_path() << " has no group augment_pipe";
  for (const std::string name : {"p0", "p1"}) {
    SCOPED_TRACE("augment_pipe/" + name);
    if (!h5::exists(h5::open_group(file, "augment_pipe"), name)) {
      ADD_FAILURE() << test::parity_file_path() << " has no group augment_pipe/" << name;
      continue;
    }
    try {
      h5::Id group = h5::open_group(file, "augment_pipe/" + name);
      const AugmentOptions options = AugmentOptions::from_json(test::read_json_attr(group, "init_kwargs"));
      const double p = test::read_tensor(group, "params/A/p").item<double>();
      EXPECT_EQ(p, h5::read_attr_double(group, "p"));
      const int64_t seed = h5::read_attr_int(group, "torch_manual_seed");
      AugmentPipe pipe(options, p);
      EXPECT_EQ(pipe.p(), p);

      // Buffers.
      const at::Tensor ref_Hz_geom = test::read_tensor(group, "params/A/Hz_geom");
      EXPECT_LE(max_abs_diff(pipe.Hz_geom(), ref_Hz_geom), 1e-7);
      const double err_fbank = max_abs_diff(pipe.Hz_fbank(), test::read_tensor(group, "params/A/Hz_fbank"));
      EXPECT_LE(err_fbank, 1e-6);

      const at::Tensor images = test::read_tensor(group, "inputs/images");
      at::manual_seed(static_cast<uint64_t>(seed));
      AugmentDebug debug;
      const at::Tensor out = pipe(images, &debug);
      ASSERT_TRUE(debug.geometric_ran);
      ASSERT_TRUE(debug.colour_ran);

      const at::Tensor ref_G = test::read_tensor(group, "outputs/G_inv_pixel");
      const at::Tensor ref_C = test::read_tensor(group, "outputs/C");
      const bool G_exact = bit_equal(debug.G_inv_pixel, ref_G), C_exact = bit_equal(debug.C, ref_C);
      const double err_G = max_abs_diff(debug.G_inv_pixel, ref_G), err_C = max_abs_diff(debug.C, ref_C);
      EXPECT_LE(err_G, kMatrixTolerance);
      EXPECT_LE(err_C, kMatrixTolerance);

      const at::Tensor margins = test::read_tensor(group, "outputs/margins");
      ASSERT_EQ(margins.numel(), 4);
      for (int i = 0; i < 4; ++i) EXPECT_EQ(debug.margins[i], margins[i].item<int>()) << "margin " << i;
      const at::Tensor grid_size = test::read_tensor(group, "outputs/grid_size");
      EXPECT_EQ(grid_size[2].item<int>(), 2 * (images.size(2) + 6));
      EXPECT_EQ(grid_size[3].item<int>(), 2 * (images.size(3) + 6));

      const double err_grid = test::normalised_max_error(debug.G_inv_grid, test::read_tensor(group, "outputs/G_inv_grid"));
      const at::Tensor ref_geom = test::read_tensor(group, "outputs/images_geom");
      const at::Tensor ref_aug = test::read_tensor(group, "outputs/images_aug");
      const double err_geom = test::normalised_max_error(debug.images_geom, ref_geom);
      const double err_aug = test::normalised_max_error(out, ref_aug);
      EXPECT_LE(err_grid, kMatrixTolerance);
      EXPECT_LE(err_geom, kImageTolerance);
      EXPECT_LE(err_aug, kImageTolerance);
      EXPECT_EQ(out.sizes(), images.sizes());
      EXPECT_EQ(out.scalar_type(), at::kFloat);

      // Float64 images: the same draws (float32), the rest in float64, against the float64 replay.
      std::string f64_text = "no outputs_f64";
      if (h5::exists(group, "outputs_f64")) {
        at::manual_seed(static_cast<uint64_t>(seed));
        AugmentDebug debug64;
        const at::Tensor out64 = pipe(images.to(at::kDouble), &debug64);
        EXPECT_TRUE(bit_equal(debug64.G_inv_pixel, debug.G_inv_pixel));
        EXPECT_TRUE(bit_equal(debug64.C, debug.C));
        const double err64 = test::normalised_max_error(out64, test::read_tensor(group, "outputs_f64/images_aug"));
        EXPECT_LE(err64, kFloat64Tolerance);
        f64_text = fmt::format("float64 images_aug {:.1e}", err64);
      }
      std::printf("[parity] augment_pipe/%s (seed %lld, p %.1f): G_inv_pixel %s (max %.1e), C %s (max %.1e), "
                  "margins [%d %d %d %d] ok, G_inv_grid %.1e, images_geom %.1e, images_aug %.1e, Hz_fbank %.1e; %s\n",
                  name.c_str(), static_cast<long long>(seed), p, G_exact ? "bit-exact" : "NOT bit-exact", err_G,
                  C_exact ? "bit-exact" : "NOT bit-exact", err_C, debug.margins[0], debug.margins[1],
                  debug.margins[2], debug.margins[3], err_grid, err_geom, err_aug, err_fbank, f64_text.c_str());
    } catch (const std::exception& e) {
      ADD_FAILURE() << "augment_pipe/" << name << ": " << e.what();
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// R1 through the pipe: Q(w, x) = || d f(A(x); w) / dx ||^2 with a tiny smooth f, differentiated again.

namespace {

struct R1Setup {
  at::Tensor x, w, r;  // images, f's weights, f's output weights
};

// f(y; w) = sum(tanh(conv3x3(y, w)) * r).
at::Tensor tiny_function(const at::Tensor& y, const at::Tensor& w, const at::Tensor& r) {
  return (at::tanh(at::conv2d(y, w, at::Tensor(), std::vector<int64_t>{1, 1}, std::vector<int64_t>{1, 1})) * r).sum();
}

// The R1 penalty through a seeded pipe; x and w must require grad. The first gradient keeps its graph.
at::Tensor r1_penalty(const AugmentPipe& pipe, uint64_t seed, const at::Tensor& x, const at::Tensor& w,
                      const at::Tensor& r) {
  at::manual_seed(seed);
  const at::Tensor logits = tiny_function(pipe(x), w, r);
  const at::Tensor g = torch::autograd::grad({logits}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  return g.square().sum();
}

R1Setup make_r1_setup(at::ScalarType dtype) {
  at::manual_seed(7);
  // Smooth images in (-1, 1): bicubically upsampled noise.
  const at::Tensor coarse = at::rand({2, 3, 5, 5}, at::kDouble) * 1.6 - 0.8;
  R1Setup s;
  s.x = at::upsample_bicubic2d(coarse, {16, 16}, false).clamp(-0.95, 0.95).to(dtype);
  s.w = (at::randn({4, 3, 3, 3}, at::kDouble) * 0.4).to(dtype);
  s.r = at::randn({2, 4, 16, 16}, at::kDouble).to(dtype);
  return s;
}

}  // namespace

TEST(AugmentPipe, R1SecondDerivativeMatchesFiniteDifferences) {
  AugmentPipe pipe(AugmentOptions::bgc(), 1.0);
  constexpr uint64_t kSeed = 1234;

  // float64: analytic double-backward against central differences of Q along random directions.
  R1Setup s = make_r1_setup(at::kDouble);
  const at::Tensor x = s.x.clone().requires_grad_(true), w = s.w.clone().requires_grad_(true);
  at::Tensor Q = r1_penalty(pipe, kSeed, x, w, s.r);
  Q.backward();
  ASSERT_TRUE(w.grad().defined());
  ASSERT_TRUE(x.grad().defined());
  const at::Tensor dQ_dw = w.grad().clone(), dQ_dx = x.grad().clone();
  EXPECT_GT(dQ_dw.abs().max().item<double>(), 0.0);
  EXPECT_GT(dQ_dx.abs().max().item<double>(), 0.0);

  at::manual_seed(99);
  const at::Tensor dir_w = at::randn_like(s.w), dir_x = at::randn_like(s.x);
  const double eps = 1e-5;
  const auto Q_at = [&](const at::Tensor& xv, const at::Tensor& wv) {
    const at::Tensor xr = xv.detach().clone().requires_grad_(true), wr = wv.detach().clone();
    return r1_penalty(pipe, kSeed, xr, wr, s.r).item<double>();
  };
  const double fd_w = (Q_at(s.x, s.w + eps * dir_w) - Q_at(s.x, s.w - eps * dir_w)) / (2 * eps);
  const double fd_x = (Q_at(s.x + eps * dir_x, s.w) - Q_at(s.x - eps * dir_x, s.w)) / (2 * eps);
  const double an_w = (dQ_dw * dir_w).sum().item<double>(), an_x = (dQ_dx * dir_x).sum().item<double>();
  const double rel_w = std::abs(an_w - fd_w) / std::abs(fd_w), rel_x = std::abs(an_x - fd_x) / std::abs(fd_x);
  EXPECT_LE(rel_w, 1e-6) << "analytic " << an_w << " finite difference " << fd_w;
  EXPECT_LE(rel_x, 1e-6) << "analytic " << an_x << " finite difference " << fd_x;

  // float32: the same draws; the double-backward runs and agrees with float64.
  const at::Tensor x32 = s.x.to(at::kFloat).requires_grad_(true), w32 = s.w.to(at::kFloat).requires_grad_(true);
  at::Tensor Q32 = r1_penalty(pipe, kSeed, x32, w32, s.r.to(at::kFloat));
  Q32.backward();
  const double rel32_w = test::relative_l2_error(w32.grad(), dQ_dw);
  const double rel32_x = test::relative_l2_error(x32.grad(), dQ_dx);
  EXPECT_LE(rel32_w, 1e-3);
  EXPECT_LE(rel32_x, 1e-3);
  std::printf("[r1] Q %.6e: dQ/dw·d analytic %.9e vs FD %.9e (rel %.1e); dQ/dx·d analytic %.9e vs FD %.9e (rel %.1e); "
              "float32 vs float64 rel L2 dQ/dw %.1e, dQ/dx %.1e\n",
              Q.item<double>(), an_w, fd_w, rel_w, an_x, fd_x, rel_x, rel32_w, rel32_x);
}

// ---------------------------------------------------------------------------------------------------------------
// Pipe behaviour.

TEST(AugmentPipe, BgcPresetHasTheSpecConstants) {
  const AugmentOptions o = AugmentOptions::bgc();
  for (double m : {o.xflip, o.rotate90, o.xint, o.scale, o.rotate, o.aniso, o.xfrac, o.brightness, o.contrast,
                   o.lumaflip, o.hue, o.saturation}) {
    EXPECT_EQ(m, 1.0);
  }
  EXPECT_EQ(o.imgfilter, 0.0);
  EXPECT_EQ(o.noise, 0.0);
  EXPECT_EQ(o.cutout, 0.0);
  EXPECT_EQ(o.xint_max, 0.125);
  EXPECT_EQ(o.scale_std, 0.2);
  EXPECT_EQ(o.rotate_max, 1.0);
  EXPECT_EQ(o.aniso_std, 0.2);
  EXPECT_EQ(o.xfrac_std, 0.125);
  EXPECT_EQ(o.brightness_std, 0.2);
  EXPECT_EQ(o.contrast_std, 0.5);
  EXPECT_EQ(o.hue_max, 1.0);
  EXPECT_EQ(o.saturation_std, 1.0);
  EXPECT_TRUE(o.any_geometric());
  EXPECT_TRUE(o.any_colour());

  const AugmentOptions all = AugmentOptions::preset("bgcfnc");
  EXPECT_EQ(all.imgfilter, 1.0);
  EXPECT_EQ(all.noise, 1.0);
  EXPECT_EQ(all.cutout, 1.0);
  EXPECT_FALSE(AugmentOptions::preset("color").any_geometric());
  EXPECT_FALSE(AugmentOptions::preset("geom").any_colour());
  EXPECT_THROW(AugmentOptions::preset("bgx"), UsageError);

  // JSON round trip with the reference's keyword names; unknown keys are rejected.
  const AugmentOptions back = AugmentOptions::from_json(o.to_json());
  EXPECT_EQ(back.to_json(), o.to_json());
  EXPECT_THROW(AugmentOptions::from_json(nlohmann::json{{"xflipp", 1}}), UsageError);

  // Hz_geom: the normalised 12-tap sym6 filter, separable.
  AugmentPipe pipe;
  EXPECT_EQ(pipe.Hz_geom().dim(), 1);
  EXPECT_EQ(pipe.Hz_geom().size(0), 12);
  EXPECT_NEAR(pipe.Hz_geom().sum().item<double>(), 1.0, 1e-6);
  EXPECT_EQ(pipe.Hz_fbank().sizes(), (std::vector<int64_t>{4, 43}));
  EXPECT_EQ(pipe.p(), 0.0);
  EXPECT_THROW(pipe.set_p(-0.1), UsageError);
}

TEST(AugmentPipe, AtPZeroTheGeometricStageRunsAndIsAnIdentity) {
  at::manual_seed(3);
  const at::Tensor images = at::upsample_bilinear2d(at::rand({3, 3, 6, 6}) * 2 - 1, {24, 24}, false);
  AugmentPipe pipe(AugmentOptions::bgc(), 0.0);
  AugmentDebug debug;
  const at::Tensor out = pipe(images, &debug);
  EXPECT_TRUE(debug.geometric_ran);  // not skipped because p = 0
  EXPECT_TRUE(at::equal(debug.G_inv_pixel, at::eye(3).expand({3, 3, 3})));
  EXPECT_TRUE(at::equal(debug.C, at::eye(4).expand({3, 4, 4})));
  EXPECT_EQ(debug.margins, (std::array<int, 4>{6, 6, 6, 6}));
  const double dev = max_abs_diff(out, images);
  EXPECT_LE(dev, 1e-5);
  EXPECT_TRUE(at::equal(out, debug.images_geom));  // the colour stage at p = 0 is exact

  // A pipe without geometric multipliers leaves the geometry alone entirely.
  AugmentPipe colour_only(AugmentOptions::preset("color"), 0.0);
  AugmentDebug debug2;
  EXPECT_TRUE(at::equal(colour_only(images, &debug2), images));
  EXPECT_FALSE(debug2.geometric_ran);
  EXPECT_TRUE(debug2.colour_ran);
}

TEST(AugmentPipe, EveryOptionRunsAndIsDeterministicUnderASeed) {
  at::manual_seed(5);
  const at::Tensor images = at::upsample_bilinear2d(at::rand({4, 3, 8, 8}) * 2 - 1, {48, 48}, false);
  AugmentPipe pipe(AugmentOptions::preset("bgcfnc"), 1.0);
  at::manual_seed(11);
  const at::Tensor a = pipe(images);
  at::manual_seed(11);
  const at::Tensor b = pipe(images);
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_EQ(a.sizes(), images.sizes());
  EXPECT_TRUE(at::isfinite(a).all().item<bool>());
  EXPECT_GT(max_abs_diff(a, images), 0.1);
  // Cutout at p = 1 with size 0.5 zeroes a rectangle of at most half the width and height of each image (less
  // where it reaches past the border).
  AugmentPipe cutout(AugmentOptions::preset("cutout"), 1.0);
  const at::Tensor zero = cutout(images).eq(0).to(at::kDouble);
  for (int64_t n = 0; n < images.size(0); ++n) {
    const at::Tensor rows = zero[n][0].amax(1), cols = zero[n][0].amax(0);
    EXPECT_GT(rows.sum().item<double>(), 0.0);
    EXPECT_LE(rows.sum().item<double>(), 24.0);
    EXPECT_LE(cols.sum().item<double>(), 24.0);
    EXPECT_EQ(zero[n].sum().item<double>(), 3 * rows.sum().item<double>() * cols.sum().item<double>());
  }

  // Grayscale images take the reference's one-channel colour path.
  const at::Tensor gray = images.mean(1, true);
  const at::Tensor g = AugmentPipe(AugmentOptions::bgc(), 1.0)(gray);
  EXPECT_EQ(g.sizes(), gray.sizes());
  EXPECT_TRUE(at::isfinite(g).all().item<bool>());
  EXPECT_THROW(AugmentPipe(AugmentOptions::bgc(), 1.0)(images.to(at::kInt)), RuntimeError);
}

// Constants are made once per (value, shape, dtype, device), as the reference's misc.constant caches them, and a
// warm cache gives the same images as a cold one, also across batch sizes and dtypes.
TEST(AugmentPipe, ConstantsAreMadeOnceAndReusedExactly) {
  at::manual_seed(5);
  const at::Tensor images = at::upsample_bilinear2d(at::rand({4, 3, 8, 8}) * 2 - 1, {32, 32}, false);
  AugmentPipe warm(AugmentOptions::bgc(), 0.0);
  at::manual_seed(3);
  const at::Tensor a = warm(images);
  const size_t made = warm.cached_constants();
  EXPECT_GT(made, 10u);
  at::manual_seed(3);
  EXPECT_TRUE(at::equal(warm(images), a));
  EXPECT_EQ(warm.cached_constants(), made) << "at p = 0 every constant of a second call is a cache hit";
  warm.set_p(0.8);
  for (const at::Tensor& x : {images, images.narrow(0, 0, 3), images.to(at::kDouble)}) {
    AugmentPipe cold(AugmentOptions::bgc(), 0.8);
    at::manual_seed(17);
    const at::Tensor expected = cold(x);
    at::manual_seed(17);
    EXPECT_TRUE(at::equal(warm(x), expected)) << x.sizes() << " " << x.scalar_type();
  }
}

TEST(AugmentPipe, RunsOnCudaWhenAvailable) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  at::manual_seed(5);
  const at::Tensor images = at::upsample_bilinear2d(at::rand({4, 3, 8, 8}) * 2 - 1, {64, 64}, false);
  AugmentPipe pipe(AugmentOptions::bgc(), 0.7);
  const at::Tensor x = images.cuda().requires_grad_(true);
  const at::Tensor y = pipe(x);
  const at::Tensor g = torch::autograd::grad({y.square().sum()}, {x}, {}, true, true)[0];
  g.square().sum().backward();
  EXPECT_TRUE(at::isfinite(y).all().item<bool>());
  EXPECT_TRUE(x.grad().defined());
}

// ---------------------------------------------------------------------------------------------------------------
// The p controller.

TEST(AdaController, UpdateRuleSignStepSizeFloorAndInterval) {
  AdaController ada;  // target 0.6, interval 4, kimg 100
  EXPECT_EQ(ada.options().target, 0.6);
  EXPECT_EQ(ada.options().interval, 4);
  EXPECT_EQ(ada.options().kimg, 100.0);
  const int64_t batch = 32;
  const double step = 32.0 * 4 / (100 * 1000);
  EXPECT_DOUBLE_EQ(ada.step_size(batch), step);

  // D confident on reals (all signs +1 > 0.6): p rises once per 4 iterations.
  for (int it = 1; it <= 3; ++it) {
    ada.report(at::ones({batch, 1}));
    EXPECT_FALSE(ada.step(batch)) << it;
    EXPECT_EQ(ada.p(), 0.0);
  }
  ada.report(at::ones({batch, 1}));
  EXPECT_TRUE(ada.step(batch));
  EXPECT_EQ(ada.p(), static_cast<double>(0.0f + static_cast<float>(step)));
  EXPECT_DOUBLE_EQ(ada.last_rt(), 1.0);
  EXPECT_EQ(ada.stats()[0], 0.0);  // cleared
  EXPECT_EQ(ada.stats()[1], 0.0);

  // r_t below target: p falls, and is floored at 0.
  for (int it = 0; it < 8; ++it) {
    at::Tensor logits = at::full({batch, 1}, -1.0f);
    ada.report(logits);
    ada.step(batch);
  }
  EXPECT_EQ(ada.p(), 0.0);

  // r_t exactly at target: no change (np.sign(0) = 0). 3 of 5 positive: r_t = 0.6.
  ada.set_p(0.5);
  for (int it = 0; it < 4; ++it) ada.step(batch);  // nothing reported: count 0 leaves p alone
  EXPECT_EQ(ada.p(), static_cast<double>(0.5f));
  ada.report(5, 3);
  for (int it = 0; it < 4; ++it) ada.step(batch);
  EXPECT_EQ(ada.p(), static_cast<double>(0.5f));
  EXPECT_DOUBLE_EQ(ada.last_rt(), 0.6);

  // Zeros count towards the mean but not the sum (sign 0).
  ada.report(at::tensor({1.0f, 0.0f, 0.0f, -2.0f}));
  EXPECT_EQ(ada.stats()[0], 4.0);
  EXPECT_EQ(ada.stats()[1], 0.0);

  // No upper clamp.
  AdaController high(AdaOptions{}, 0.9999);
  for (int it = 0; it < 4; ++it) {
    high.report(8, 8);
    high.step(64);
  }
  EXPECT_GT(high.p(), 1.0);
}

TEST(AdaController, FollowsTheReferenceFloat32Buffer) {
  // The reference: p.copy_((p + adjust).max(0)) on a float32 0-d tensor; np.sign(r - target) * batch*interval/...
  AdaOptions opt;
  opt.interval = 2;
  opt.kimg = 0.5;
  AdaController ada(opt, 0.0);
  at::Tensor p_ref = at::zeros({}, at::kFloat);
  at::manual_seed(21);
  for (int it = 1; it <= 200; ++it) {
    const at::Tensor logits = at::randn({12, 1}) + (it < 120 ? 1.5 : -1.5);
    ada.report(logits);
    ada.step(12);
  }
  // Replay the same sequence with the reference formula on a float32 tensor.
  at::manual_seed(21);
  double count = 0, sum = 0;
  for (int it = 1; it <= 200; ++it) {
    const at::Tensor logits = at::randn({12, 1}) + (it < 120 ? 1.5 : -1.5);
    count += logits.numel();
    sum += logits.sign().sum().item<double>();
    if (it % 2 == 0) {
      const double r = sum / count;
      const double adjust = (r > 0.6 ? 1.0 : (r < 0.6 ? -1.0 : 0.0)) * (12.0 * 2) / (0.5 * 1000);
      p_ref = at::maximum(p_ref + adjust, at::zeros({}, at::kFloat));
      count = sum = 0;
    }
  }
  EXPECT_GT(p_ref.item<double>(), 0.0);
  EXPECT_EQ(ada.p(), p_ref.item<double>());
}

TEST(AdaController, ReducerCombinesRanks) {
  // Two ranks with different signs; the reducer sums their [count, sum] — both see the global statistic.
  AdaController rank0, rank1;
  int calls = 0;
  std::array<double, 2> pending{0, 0};
  // A stand-in allreduce: rank 0 contributes first, rank 1 completes the sum (sequential simulation).
  for (int it = 1; it <= 8; ++it) {
    rank0.report(at::ones({4, 1}));           // +4 of 4
    rank1.report(at::full({4, 1}, -1.0f));    // -4 of 4
    rank1.report(at::full({2, 1}, 1.0f));     // +2 of 2  -> global r = 2/10 = 0.2 < 0.6
    const bool due = rank0.adjusts_on_next_step();
    EXPECT_EQ(due, rank1.adjusts_on_next_step());
    if (due) {
      const std::array<double, 2> s0 = rank0.stats(), s1 = rank1.stats();
      pending = {s0[0] + s1[0], s0[1] + s1[1]};
    }
    const auto reducer = [&](const std::array<double, 2>&) {
      ++calls;
      return pending;
    };
    rank0.step(8, reducer);
    rank1.step(8, reducer);
  }
  EXPECT_EQ(calls, 4);  // 2 adjustments x 2 ranks
  EXPECT_DOUBLE_EQ(rank0.last_rt(), 0.2);
  EXPECT_EQ(rank0.p(), rank1.p());
  EXPECT_EQ(rank0.p(), 0.0);  // pushed down, floored

  const at::Tensor t = rank0.stats_tensor();
  EXPECT_EQ(t.scalar_type(), at::kDouble);
  EXPECT_EQ(t.numel(), 2);
}

TEST(AdaController, SaveAndRestoreContinuesExactly) {
  AdaOptions opt;
  opt.kimg = 1;
  const auto drive = [](AdaController& ada, int from, int to) {
    for (int it = from; it < to; ++it) {
      ada.report(it % 3 == 0 ? 3.0 : 5.0, it % 3 == 0 ? -1.0 : 5.0);
      ada.step(16);
    }
  };
  AdaController straight(opt, 0.25);
  drive(straight, 0, 30);

  AdaController first(opt, 0.25);
  drive(first, 0, 13);  // stop mid-interval, with accumulated statistics
  // The state includes what tensor reports summed on their device: 7 more signs, (+3 - 1) + (-2 + 0) = 0.
  AdaController with_tensor_reports(opt, 0.25);
  with_tensor_reports.load_state(first.state());
  with_tensor_reports.report(at::tensor({1.0f, 2.0f, 3.0f, -1.0f}));
  with_tensor_reports.report(at::tensor({-2.0f, -5.0f, 0.0f}));
  EXPECT_EQ(with_tensor_reports.state().count, first.state().count + 7);
  EXPECT_EQ(with_tensor_reports.state().sum, first.state().sum + 0);
  with_tensor_reports.report(at::tensor({9.0f}));
  EXPECT_EQ(with_tensor_reports.stats()[1], first.state().sum + 1);
  with_tensor_reports.report(at::tensor({9.0f}));
  with_tensor_reports.load_state(first.state());  // drops the unread device sum with the rest
  EXPECT_EQ(with_tensor_reports.stats(), first.stats());
  const AdaState saved = first.state();
  EXPECT_GT(saved.count, 0.0);
  const AdaState restored_state = AdaState::from_json(nlohmann::json::parse(saved.to_json().dump()));
  AdaController resumed(opt, 0.0);
  resumed.load_state(restored_state);
  drive(resumed, 13, 30);

  EXPECT_EQ(resumed.p(), straight.p());
  EXPECT_EQ(resumed.iteration(), straight.iteration());
  EXPECT_EQ(resumed.stats(), straight.stats());
  EXPECT_DOUBLE_EQ(resumed.last_rt(), straight.last_rt());
  EXPECT_GT(straight.p(), 0.25);

  EXPECT_EQ(AdaOptions::from_json(opt.to_json()).kimg, 1.0);
  EXPECT_THROW(AdaOptions::from_json(nlohmann::json{{"interval", 0}}), UsageError);
  EXPECT_THROW(AdaOptions::from_json(nlohmann::json{{"speed", 1}}), UsageError);
  AdaState bad;
  bad.p = -1;
  EXPECT_THROW(resumed.load_state(bad), DataError);
}
