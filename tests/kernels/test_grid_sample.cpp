// grid_sample (bilinear, zeros, align_corners=False): the ATen-op reference and the fused-sampler Function
// (grid_sample_gradfix, what CUDA tensors use) against ATen's grid_sampler_2d, and the second-order path that R1
// through the augmentation needs, checked by finite differences in float64.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <functional>

#include "core/error.h"
#include "kernels/grid_sample.h"
#include "kernels/grid_sample_gradfix.h"
#include "tests/kernels/autograd_util.h"
#include "tests/support/parity_compare.h"

using namespace facetex;
using kernels::Impl;

namespace {

using Sampler = std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>;

const Sampler kReference = [](const at::Tensor& input, const at::Tensor& grid) {
  return kernels::grid_sample(input, grid, Impl::kReference);
};
const Sampler kGradfix = [](const at::Tensor& input, const at::Tensor& grid) {
  return kernels::detail::grid_sample_gradfix(input, grid);
};

at::Tensor aten_sampler(const at::Tensor& input, const at::Tensor& grid) {
  return at::grid_sampler_2d(input, grid, /*bilinear*/ 0, /*zeros*/ 0, /*align_corners*/ false);
}

// A grid reaching past the image on every side (zero padding matters), with some exactly integral pixel positions.
at::Tensor test_grid(int64_t n, int64_t ho, int64_t wo, at::ScalarType dtype) {
  at::Tensor grid = at::rand({n, ho, wo, 2}, at::TensorOptions().dtype(dtype)) * 2.6 - 1.3;
  grid.select(1, 0).fill_(0.0);  // centre line: sample positions (W-1)/2 exactly between or on pixels
  return grid;
}

}  // namespace

TEST(GridSample, ReferenceAndGradfixMatchAtenForwardAndBackward) {
  at::manual_seed(1);  // reproducible inputs
  const at::Tensor input = at::randn({2, 3, 7, 9});
  const at::Tensor grid = test_grid(2, 5, 6, at::kFloat);
  const at::Tensor expected = aten_sampler(input, grid);
  const at::Tensor dy = at::randn_like(expected);
  const auto [expected_dinput, expected_dgrid] =
      at::grid_sampler_2d_backward(dy, input, grid, 0, 0, false, {true, true});
  for (const auto& [name, sample] : {std::pair<const char*, Sampler>{"reference", kReference},
                                     std::pair<const char*, Sampler>{"gradfix", kGradfix}}) {
    SCOPED_TRACE(name);
    const at::Tensor x = input.clone().requires_grad_(true);
    const at::Tensor g = grid.clone().requires_grad_(true);
    const at::Tensor y = sample(x, g);
    // Same arithmetic up to float32 rounding order: within 1e-6 of the output's scale.
    EXPECT_LE(test::normalised_max_error(y, expected), 1e-6);
    const auto grads = test::gradients((y * dy).sum(), {x, g}, false);
    EXPECT_LE(test::normalised_max_error(grads[0], expected_dinput), 1e-6);
    EXPECT_LE(test::normalised_max_error(grads[1], expected_dgrid), 1e-5);
  }
}

// R1 through the augmentation: Q = sum((dL/dx)^2) with L = sum(h(grid_sample(x))) and a nonlinear h, so dQ/dx needs
// the derivative of the sampler's backward with respect to its grad_output. Both implementations against central
// differences of Q (each Q evaluated with first-order autograd only).
TEST(GridSample, SecondOrderThroughGradOutputMatchesFiniteDifferences) {
  at::manual_seed(2);  // reproducible inputs
  const at::Tensor x0 = at::randn({1, 2, 5, 6}, at::kDouble);
  const at::Tensor grid = test_grid(1, 4, 7, at::kDouble);
  for (const auto& [name, sample] : {std::pair<const char*, Sampler>{"reference", kReference},
                                     std::pair<const char*, Sampler>{"gradfix", kGradfix}}) {
    SCOPED_TRACE(name);
    const auto q_of = [&, sample = sample](const at::Tensor& x, bool create_graph) {
      const at::Tensor dL_dx = test::gradients(sample(x, grid).sin().sum(), {x}, create_graph)[0];
      return dL_dx.pow(2).sum();
    };
    const at::Tensor x = x0.clone().requires_grad_(true);
    const at::Tensor analytic = test::gradients(q_of(x, true), {x}, false)[0];
    EXPECT_GT(analytic.abs().max().item<double>(), 1e-3);  // the check is not vacuous
    const double eps = 1e-6;
    for (int64_t i = 0; i < x0.numel(); i += 7) {
      at::Tensor xp = x0.clone(), xm = x0.clone();
      xp.view(-1)[i] += eps;
      xm.view(-1)[i] -= eps;
      const double numeric =
          (q_of(xp.requires_grad_(true), false).item<double>() - q_of(xm.requires_grad_(true), false).item<double>()) /
          (2 * eps);
      EXPECT_NEAR(analytic.view(-1)[i].item<double>(), numeric, 1e-6 * std::max(1.0, std::abs(numeric))) << i;
    }
  }
}

TEST(GridSample, GradfixAndReferenceAgreeOnTheSecondOrderInFloat32) {
  at::manual_seed(3);  // reproducible inputs
  const at::Tensor input = at::randn({2, 3, 8, 8});
  const at::Tensor grid = test_grid(2, 6, 6, at::kFloat);
  std::vector<at::Tensor> results;
  for (const Sampler& sample : {kReference, kGradfix}) {
    const at::Tensor x = input.clone().requires_grad_(true);
    const at::Tensor dL_dx = test::gradients(sample(x, grid).pow(3).sum(), {x}, true)[0];
    results.push_back(test::gradients(dL_dx.pow(2).sum(), {x}, false)[0]);
  }
  EXPECT_LE((results[0] - results[1]).abs().max().item<double>(), 1e-5 * results[1].abs().max().item<double>());
}

TEST(GridSample, GradfixRefusesTheSecondDerivativeWithRespectToTheGrid) {
  at::manual_seed(4);  // reproducible inputs
  const at::Tensor x = at::randn({1, 1, 4, 4}, at::kDouble).requires_grad_(true);
  const at::Tensor grid = test_grid(1, 3, 3, at::kDouble).requires_grad_(true);
  const at::Tensor dL_dx = test::gradients(kGradfix(x, grid).pow(2).sum(), {x}, true)[0];
  EXPECT_THROW(test::gradients(dL_dx.pow(2).sum(), {grid}, false), std::exception);
  // The reference supports it.
  const at::Tensor ref_dL_dx = test::gradients(kReference(x, grid).pow(2).sum(), {x}, true)[0];
  EXPECT_NO_THROW(test::gradients(ref_dL_dx.pow(2).sum(), {grid}, false));
}

TEST(GridSample, RejectsBadShapes) {
  at::manual_seed(5);  // reproducible inputs
  const at::Tensor input = at::randn({2, 3, 4, 4});
  EXPECT_THROW(kernels::grid_sample(input[0], at::zeros({2, 3, 3, 2})), RuntimeError);
  EXPECT_THROW(kernels::grid_sample(input, at::zeros({2, 3, 3})), RuntimeError);
  EXPECT_THROW(kernels::grid_sample(input, at::zeros({2, 3, 3, 3})), RuntimeError);
  EXPECT_THROW(kernels::grid_sample(input, at::zeros({1, 3, 3, 2})), RuntimeError);
  EXPECT_THROW(kernels::grid_sample(input, at::zeros({2, 3, 3, 2}, at::kDouble)), RuntimeError);
}
