// fma(a, b, c) = a * b + c with broadcasting; gradients reduce to each input's shape, to any order.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "core/error.h"
#include "kernels/fma.h"
#include "tests/kernels/autograd_util.h"

using namespace facetex;

TEST(Fma, ComputesAxBPlusCWithBroadcastGradients) {
  at::manual_seed(1);  // reproducible inputs
  // Shapes as in the non-fused modulated convolution: x * dcoefs + noise.
  const at::Tensor a = at::randn({4, 8, 5, 5}, at::kDouble).requires_grad_(true);
  const at::Tensor b = at::randn({4, 8, 1, 1}, at::kDouble).requires_grad_(true);
  const at::Tensor c = at::randn({5, 5}, at::kDouble).requires_grad_(true);
  const at::Tensor y = kernels::fma(a, b, c);
  EXPECT_TRUE(at::allclose(y, a * b + c));
  const at::Tensor R = at::randn_like(y);
  const auto grads = test::gradients((y * R).sum(), {a, b, c}, true);
  EXPECT_EQ(grads[1].sizes(), b.sizes());
  EXPECT_EQ(grads[2].sizes(), c.sizes());
  EXPECT_TRUE(at::allclose(grads[0], R * b));
  EXPECT_TRUE(at::allclose(grads[1], (R * a).sum(at::IntArrayRef{2, 3}, true)));
  EXPECT_TRUE(at::allclose(grads[2], R.sum(at::IntArrayRef{0, 1})));
  // Second order: d/da of sum(dL/db^2) = 2 * dL/db * R (broadcast back).
  const at::Tensor second = test::gradients(grads[1].pow(2).sum(), {a}, false)[0];
  EXPECT_TRUE(at::allclose(second, 2 * grads[1] * R));
  EXPECT_THROW(kernels::fma(a, at::Tensor(), c), RuntimeError);
}
