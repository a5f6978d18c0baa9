// train/lpips_term.h on a TorchScript module with vgg16.pt's call, made here (no python, no download): the chunked
// distance and image gradient against the one-pass graph, frozen weights, and the errors for bad files.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>

#include <filesystem>

#include "core/error.h"
#include "tests/support/fixtures.h"
#include "train/lpips_term.h"

namespace fs = std::filesystem;

namespace facetex {
namespace {

// forward(img, resize_images, return_lpips) -> [B, F]: a 3x3 convolution and ReLU, unit-normalised over channels at
// every pixel and flattened — per-image features as LPIPS's are. Its weight requires grad, as vgg16.pt's do; it
// insists on the projector's call.
void write_lpips_like_module(const fs::path& file) {
  torch::jit::Module m("LpipsLike");
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  m.register_parameter("weight", (at::randn({6, 3, 3, 3}, gen) * 0.3).set_requires_grad(true), /*is_buffer=*/false);
  m.define(R"JIT(
def forward(self, img, resize_images: bool = True, return_lpips: bool = False):
    assert not resize_images
    assert return_lpips
    y = torch.relu(torch.conv2d(img / 127.5 - 1.0, self.weight, None, 1, 1))
    y = y * torch.rsqrt(y.square().sum(1, keepdim=True) + 1e-10)
    return y.flatten(1)
)JIT");
  m.save(file.string());
}

struct Images {
  at::Tensor target, synth;
};

Images random_images(int64_t batch) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(11);
  return {at::rand({batch, 3, 12, 12}, gen) * 255, at::rand({batch, 3, 12, 12}, gen) * 255};
}

TEST(LpipsTerm, ChunksGiveTheOnePassDistanceAndImageGradient) {
  test::TempDir dir;
  write_lpips_like_module(dir / "vgg16.pt");
  const Images im = random_images(5);
  // The one-pass graph: the gradient at the images of the summed distances.
  train::LpipsTerm whole(dir / "vgg16.pt", at::kCPU, /*chunk=*/8, /*freeze_weights=*/true);
  const at::Tensor target_features = whole.target_features(im.target);
  const at::Tensor x = im.synth.clone().set_requires_grad(true);
  const at::Tensor d_graph = whole.distance(x, target_features);
  const at::Tensor g_graph = torch::autograd::grad({d_graph.sum()}, {x})[0];
  ASSERT_EQ(d_graph.sizes(), at::IntArrayRef({5}));
  EXPECT_GT(d_graph.min().item<double>(), 0.0);
  // A chunk that holds the batch: the same numbers, bit for bit.
  at::Tensor g;
  at::Tensor d = whole.distance_with_gradient(im.synth, target_features, g);
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(at::equal(d, d_graph.detach()));
  EXPECT_TRUE(at::equal(g, g_graph));
  // Chunks of 2 (2 + 2 + 1 images): the same up to rounding, and the target features too.
  train::LpipsTerm chunked(dir / "vgg16.pt", at::kCPU, /*chunk=*/2, /*freeze_weights=*/true);
  // (Features are unit vectors per pixel; a convolution over 2 images rounds differently from one over 5.)
  EXPECT_TRUE(at::allclose(chunked.target_features(im.target), target_features, 1e-5, 1e-6));
  d = chunked.distance_with_gradient(im.synth, target_features, g);
  EXPECT_TRUE(at::allclose(d, d_graph.detach(), 1e-5, 1e-7));
  EXPECT_TRUE(at::allclose(g, g_graph, 1e-5, 1e-6 * g_graph.abs().max().item<double>()));
  // Identical images are at distance 0.
  d = chunked.distance_with_gradient(im.target, target_features, g);
  EXPECT_LT(d.abs().max().item<double>(), 1e-9);
}

TEST(LpipsTerm, WeightsAreFrozenUnlessThePublicBaselineAsks) {
  test::TempDir dir;
  write_lpips_like_module(dir / "vgg16.pt");
  EXPECT_TRUE(train::LpipsTerm(dir / "vgg16.pt", at::kCPU, 4, /*freeze_weights=*/true).weights_frozen());
  EXPECT_FALSE(train::LpipsTerm(dir / "vgg16.pt", at::kCPU, 4, /*freeze_weights=*/false).weights_frozen());
}

TEST(LpipsTerm, BadFilesAndChunksAreClearErrors) {
  test::TempDir dir;
  try {
    train::LpipsTerm(dir / "missing.pt", at::kCPU, 4, true);
    FAIL() << "no error for a missing file";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.pt: LPIPS VGG16 TorchScript file not found"), std::string::npos)
        << e.what();
  }
  test::write_bytes(dir / "garbage.pt", "not a TorchScript archive\n");
  try {
    train::LpipsTerm(dir / "garbage.pt", at::kCPU, 4, true);
    FAIL() << "no error for a file that is not TorchScript";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("garbage.pt: not a TorchScript module"), std::string::npos) << e.what();
  }
  write_lpips_like_module(dir / "vgg16.pt");
  EXPECT_THROW(train::LpipsTerm(dir / "vgg16.pt", at::kCPU, 0, true), UsageError);
}

}  // namespace
}  // namespace facetex
