// Implementation choice: FACETEX_KERNELS parsing, the process-wide override, and what kAuto / kCuda mean in a
// build or on a tensor without CUDA kernels.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "core/error.h"
#include "kernels/dispatch.h"
#include "kernels/image_normalize.h"
#include "kernels/impl_choice.h"
#include "kernels/upfirdn2d.h"

using namespace facetex;
using kernels::Impl;

namespace {

// Restores the process-wide choice, so tests that change it do not leak into others.
class DefaultImplGuard {
 public:
  DefaultImplGuard() : saved_(kernels::default_impl()) {}
  ~DefaultImplGuard() { kernels::set_default_impl(saved_); }

 private:
  Impl saved_;
};

}  // namespace

TEST(KernelDispatch, ParsesTheThreeNamesAndRejectsOthersAsUsageErrors) {
  EXPECT_EQ(kernels::detail::parse_impl("auto", "FACETEX_KERNELS"), Impl::kAuto);
  EXPECT_EQ(kernels::detail::parse_impl("ref", "FACETEX_KERNELS"), Impl::kReference);
  EXPECT_EQ(kernels::detail::parse_impl("cuda", "FACETEX_KERNELS"), Impl::kCuda);
  for (const char* bad : {"gpu", "CUDA", "reference", " ref", ""}) {
    try {
      kernels::detail::parse_impl(bad, "FACETEX_KERNELS");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("FACETEX_KERNELS"), std::string::npos) << e.what();
      EXPECT_EQ(e.code(), ExitCode::kUsage);
    }
  }
}

TEST(KernelDispatch, SetDefaultImplOverridesTheEnvironment) {
  DefaultImplGuard guard;
  kernels::set_default_impl(Impl::kReference);
  EXPECT_EQ(kernels::default_impl(), Impl::kReference);
  kernels::set_default_impl(Impl::kCuda);
  EXPECT_EQ(kernels::default_impl(), Impl::kCuda);
  kernels::set_default_impl(Impl::kAuto);
  EXPECT_EQ(kernels::default_impl(), Impl::kAuto);
}

TEST(KernelDispatch, CpuTensorsUseTheReferenceUnlessCudaIsForced) {
  DefaultImplGuard guard;
  const at::Tensor x = at::ones({1, 1, 4, 4});
  EXPECT_FALSE(kernels::detail::use_cuda_kernel(Impl::kAuto, x, "test"));
  EXPECT_FALSE(kernels::detail::use_cuda_kernel(Impl::kReference, x, "test"));
  // Forcing CUDA where it cannot run is an error, never a silent fallback (A/B runs must measure what they say).
  EXPECT_THROW(kernels::detail::use_cuda_kernel(Impl::kCuda, x, "test"), Error);
  kernels::set_default_impl(Impl::kCuda);
  EXPECT_THROW(kernels::detail::use_cuda_kernel(Impl::kAuto, x, "test"), Error);
  EXPECT_THROW(kernels::filter2d(x, kernels::setup_filter({1, 3, 3, 1})), Error);
  kernels::set_default_impl(Impl::kReference);
  EXPECT_NO_THROW(kernels::filter2d(x, kernels::setup_filter({1, 3, 3, 1})));
}

TEST(KernelDispatch, CudaTensorsUseTheCudaKernelsUnderAuto) {
  if (!kernels::cuda_kernels_available()) GTEST_SKIP() << "no CUDA device in this build/machine";
  DefaultImplGuard guard;
  kernels::set_default_impl(Impl::kAuto);
  EXPECT_TRUE(kernels::detail::use_cuda_kernel(Impl::kAuto, at::ones({2}, at::kCUDA), "test"));
  EXPECT_FALSE(kernels::detail::use_cuda_kernel(Impl::kReference, at::ones({2}, at::kCUDA), "test"));
  // Dtypes without a kernel fall back under kAuto and are an error under kCuda.
  const at::Tensor bf16 = at::ones({2}, at::TensorOptions(at::kCUDA).dtype(at::kBFloat16));
  EXPECT_FALSE(kernels::detail::use_cuda_kernel(Impl::kAuto, bf16, "test"));
  EXPECT_THROW(kernels::detail::use_cuda_kernel(Impl::kCuda, bf16, "test"), RuntimeError);
}
