// DFR and RigNet against their PyTorch definitions (random weights in the production state-dict layout, converted
// by tools/convert_torch_state_dict.py).
//
// Tolerance: both sides run the same float32 matrix products (LibTorch 1.13 here and in python3-torch); only the
// BLAS blocking/summation order may differ, which moves results by a few float32 ulps of the largest terms of each
// dot product (n <= 5120 terms: worst case ~ n * 6e-8 relative, in practice ~1e-6). A normalised max error of
// 1e-5 passes those and fails any wrong layer, order or concatenation (errors of order 1).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "core/error.h"
#include "models/aux/dfr_model.h"
#include "models/aux/rig_net.h"
#include "tests/aux/aux_reference.h"
#include "tests/support/parity_compare.h"

using namespace facetex;
using namespace facetex::models::aux;

TEST(DFRModel, ConvertedStateDictReproducesPyTorch) {
  FACETEX_AUX_REFERENCE(ref);
  auto dfr = load_dfr_model(ref->weights("dfr"));
  EXPECT_EQ(dfr->num_ws(), 10);  // read from L1.weight [1024, 10 * 512]
  const at::Tensor coeffs = dfr->forward(ref->tensor("dfr/ws"));
  ASSERT_EQ(coeffs.sizes(), (std::vector<int64_t>{3, 257}));
  const double err = test::normalised_max_error(coeffs, ref->tensor("dfr/coeffs"));
  std::printf("DFRModel normalised max error: %.3g\n", err);
  EXPECT_LE(err, 1e-5);
}

TEST(RigNet, ConvertedStateDictReproducesPyTorch) {
  FACETEX_AUX_REFERENCE(ref);
  auto rig = load_rig_net(ref->weights("rignet"));
  EXPECT_EQ(rig->num_ws(), 10);
  const at::Tensor delta = rig->forward(ref->tensor("rignet/ws"), ref->tensor("rignet/p_edit"));
  ASSERT_EQ(delta.sizes(), (std::vector<int64_t>{3, 10, 512}));
  const double err = test::normalised_max_error(delta, ref->tensor("rignet/delta"));
  std::printf("RigNet normalised max error: %.3g\n", err);
  EXPECT_LE(err, 1e-5);
}

TEST(RigNet, LatentComesBeforeCoefficientsInTheDecoderInput) {
  // Decoder weights that read only input column 0 (the first latent unit) must see the encoder output, not p.
  RigNet rig(2);
  at::NoGradGuard no_grad;
  for (auto& p : rig.named_parameters()) p.value().zero_();
  rig.named_parameters()["encoder.1.bias"].fill_(3.0);  // latent of layer 1 = 3 everywhere
  rig.named_parameters()["decoder.1.weight"].select(1, 0).fill_(1.0);
  const at::Tensor delta = rig.forward(at::zeros({1, 2, 512}), at::full({1, 257}, 5.0));
  EXPECT_TRUE(at::allclose(delta.select(1, 1), at::full({1, 512}, 3.0)));
  EXPECT_TRUE(at::allclose(delta.select(1, 0), at::zeros({1, 512})));
}

TEST(DFRModel, RejectsWsOfTheWrongShape) {
  DFRModel dfr(10);
  EXPECT_THROW(dfr.forward(at::zeros({2, 18, 512})), RuntimeError);
  RigNet rig(10);
  EXPECT_THROW(rig.forward(at::zeros({2, 10, 512}), at::zeros({2, 256})), RuntimeError);
}
