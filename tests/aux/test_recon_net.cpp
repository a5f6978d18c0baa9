// Deep3DFaceRecon's ReconNetWrapper('resnet50') against its PyTorch definition: random weights (and far-from-
// identity BatchNorm statistics) saved as Deep3DFaceRecon saves checkpoints ({'net_recon': ..., 'opt_00': ...,
// 'epoch': 20}), converted with --key net_recon.
//
// Tolerance: 53 convolutions in float32 on both sides through the same LibTorch CPU kernels (oneDNN); differing
// algorithm choices or thread blocking change summation order, and each layer's rounding (~1e-7 relative) is
// carried through BatchNorm and the residual sums. 1e-4 normalised max error leaves room for that and still
// catches any misplaced stride, BN statistic or head (errors of order 1).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <set>

#include "models/aux/recon_net.h"
#include "models/weights/weight_file.h"
#include "tests/aux/aux_reference.h"
#include "tests/support/parity_compare.h"

using namespace facetex;
using namespace facetex::models;
using namespace facetex::models::aux;

TEST(ReconNet, ConvertedCheckpointReproducesPyTorch) {
  FACETEX_AUX_REFERENCE(ref);
  auto net = load_recon_net(ref->weights("net_recon"));
  const at::Tensor rgb = ref->tensor("recon/rgb");
  const at::Tensor coeffs = net->forward(rgb);
  ASSERT_EQ(coeffs.sizes(), (std::vector<int64_t>{2, 257}));
  const double err = test::normalised_max_error(coeffs, ref->tensor("recon/coeffs"));
  std::printf("ReconNet normalised max error: %.3g\n", err);
  EXPECT_LE(err, 1e-4);
  // Frozen: switching the module to training mode must not switch BatchNorm to batch statistics.
  net->train();
  EXPECT_TRUE(at::equal(net->forward(rgb), coeffs));
}

TEST(ReconNet, StateDictHasTorchvisionNames) {
  ReconNet net;
  const NetworkWeights state = network_state(net, "ReconNetWrapper", "{}");
  std::set<std::string> names;
  for (const auto& [name, t] : state.tensors) names.insert(name);
  EXPECT_EQ(names.size(), 332u);  // 53 conv weights + 53 BatchNorms x 5 tensors + 7 heads x (weight, bias)
  for (const char* n : {"backbone.conv1.weight", "backbone.bn1.num_batches_tracked", "backbone.layer1.0.conv1.weight",
                        "backbone.layer1.0.downsample.0.weight", "backbone.layer1.0.downsample.1.running_var",
                        "backbone.layer2.0.conv2.weight", "backbone.layer4.2.bn3.bias", "final_layers.0.weight",
                        "final_layers.6.bias"}) {
    EXPECT_TRUE(names.count(n)) << n;
  }
  EXPECT_FALSE(names.count("backbone.fc.weight"));
  EXPECT_FALSE(names.count("backbone.layer1.1.downsample.0.weight"));
  const at::Tensor x = at::zeros({1, 3, 224, 224});
  EXPECT_EQ(net.forward(x).sizes(), (std::vector<int64_t>{1, 257}));
}
