// normalize_images: the reference's x / 127.5 - 1, exactly; CUDA agrees with the CPU path when a GPU is present.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "core/error.h"
#include "kernels/image_normalize.h"

using namespace facetex;

TEST(ImageNormalize, MatchesTheReferenceFormulaBitForBit) {
  at::Tensor x = at::arange(0, 256, at::kInt).to(at::kByte).reshape({1, 1, 16, 16});
  at::Tensor y = kernels::normalize_images(x);
  ASSERT_EQ(y.scalar_type(), at::kFloat);
  auto acc = y.flatten();
  for (int v = 0; v < 256; ++v) {
    const float want = static_cast<float>(v) / 127.5f - 1.0f;
    ASSERT_EQ(acc[v].item<float>(), want) << v;
  }
  EXPECT_EQ(y.min().item<float>(), -1.0f);
  EXPECT_EQ(y.max().item<float>(), 1.0f);
  EXPECT_THROW(kernels::normalize_images(at::zeros({2}, at::kFloat)), RuntimeError);
}

TEST(ImageNormalize, CudaKernelAgreesWithCpu) {
  if (!kernels::cuda_kernels_available()) GTEST_SKIP() << "no CUDA device in this build/machine";
  at::Tensor x = at::randint(0, 256, {4, 3, 37, 41}, at::kByte);
  at::Tensor cpu = kernels::normalize_images(x);
  at::Tensor gpu = kernels::normalize_images(x.to(at::kCUDA)).cpu();
  EXPECT_TRUE(at::equal(cpu, gpu));
  // Odd offsets exercise the unaligned tail path.
  at::Tensor sliced = x.flatten().slice(0, 3).to(at::kCUDA);
  EXPECT_TRUE(at::equal(kernels::normalize_images(x.flatten().slice(0, 3)), kernels::normalize_images(sliced).cpu()));
}
