// The hand-written CUDA kernels against the reference (the same public functions with Impl::kReference, on the
// same CUDA tensors): values, first and second derivatives, float32/float64/float16, tiled and generic upfirdn2d
// shapes, strided inputs. Every test skips cleanly without a CUDA build and device.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <chrono>
#include <cstdlib>
#include <functional>

#include "kernels/bias_act.h"
#include "kernels/grid_sample.h"
#include "kernels/image_normalize.h"
#include "kernels/upfirdn2d.h"
#include "tests/kernels/autograd_util.h"
#include "tests/support/parity_compare.h"

using namespace facetex;
using kernels::Activation;
using kernels::BiasActArgs;
using kernels::Impl;
using kernels::Upfirdn2dArgs;

#define SKIP_WITHOUT_CUDA_KERNELS()                                                         \
  do {                                                                                      \
    if (!kernels::cuda_kernels_available()) GTEST_SKIP() << "no CUDA device in this build/machine"; \
  } while (0)

namespace {

// Normalised max error allowed between CUDA and reference, per dtype (float16 stores ~3 decimal digits).
double tolerance(at::ScalarType dtype) {
  return dtype == at::kDouble ? 1e-10 : dtype == at::kHalf ? 2e-2 : 1e-5;
}

struct UpfirdnCase {
  const char* name;
  Upfirdn2dArgs args;
  std::vector<int64_t> filter_shape;
  std::vector<int64_t> x_shape;
};

Upfirdn2dArgs make_args(int up, int down, std::array<int, 4> padding, bool flip, double gain) {
  Upfirdn2dArgs a;
  a.up_x = a.up_y = up;
  a.down_x = a.down_y = down;
  a.padding = padding;
  a.flip_filter = flip;
  a.gain = gain;
  return a;
}

std::vector<UpfirdnCase> upfirdn_cases() {
  std::vector<UpfirdnCase> cases = {
      // The parity file's configurations (small, generic kernel and tiled kernels).
      {"up2_fir1331", make_args(2, 1, {2, 1, 2, 1}, false, 4), {4, 4}, {2, 3, 9, 11}},
      {"down2_fir1331", make_args(1, 2, {1, 1, 1, 1}, false, 1), {4, 4}, {2, 3, 9, 11}},
      {"generic_pad1201_flip", make_args(1, 1, {1, 2, 0, 1}, true, 2.5), {4, 4}, {2, 3, 9, 11}},
      {"up2_down3_rect_crop", make_args(2, 3, {-1, 3, 2, -2}, true, 0.7), {3, 5}, {2, 3, 9, 11}},
      {"up2_sym6_separable", make_args(2, 1, {6, 5, 6, 5}, false, 4), {12}, {2, 3, 9, 11}},
      {"down2_sym6_separable_flip", make_args(1, 2, {5, 5, 5, 5}, true, 1), {12}, {2, 3, 9, 11}},
      // Network-sized planes crossing several 32x16 tiles, odd sizes, crops.
      {"tiled_up2_4x4", make_args(2, 1, {2, 1, 2, 1}, false, 4), {4, 4}, {3, 5, 37, 45}},
      {"tiled_filter_4x4", make_args(1, 1, {2, 2, 2, 2}, false, 1), {4, 4}, {3, 5, 37, 45}},
      {"tiled_down2_4x4", make_args(1, 2, {1, 1, 1, 1}, true, 1), {4, 4}, {3, 5, 64, 70}},
      {"tiled_up2_sym6", make_args(2, 1, {6, 5, 6, 5}, false, 4), {12}, {2, 3, 44, 44}},
      {"tiled_down2_sym6_crop", make_args(1, 2, {-1, -1, -1, -1}, true, 1), {12}, {2, 3, 88, 88}},
      {"generic_up3_down2", make_args(3, 2, {0, 2, 4, -1}, false, 1.3), {5, 2}, {2, 2, 20, 23}},
  };
  return cases;
}

at::TensorOptions on_cuda(at::ScalarType dtype) { return at::TensorOptions(at::kCUDA).dtype(dtype); }

}  // namespace

TEST(CudaKernels, Upfirdn2dAgreesWithTheReferenceToSecondOrder) {
  SKIP_WITHOUT_CUDA_KERNELS();
  at::manual_seed(1);  // reproducible inputs
  for (const UpfirdnCase& c : upfirdn_cases()) {
    for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
      SCOPED_TRACE(std::string(c.name) + " " + c10::toString(dtype));
      const at::Tensor f = at::rand(c.filter_shape, on_cuda(at::kFloat)) + 0.1;
      const at::Tensor x0 = at::randn(c.x_shape, on_cuda(dtype));
      std::vector<std::vector<at::Tensor>> results;
      for (Impl impl : {Impl::kReference, Impl::kCuda}) {
        const at::Tensor x = x0.clone().requires_grad_(true);
        const at::Tensor y = kernels::upfirdn2d(x, f, c.args, impl);
        // sin makes the first gradient depend on y, so the second derivative goes through the backward's backward.
        const at::Tensor dx = test::gradients(y.sin().sum(), {x}, true)[0];
        const at::Tensor d2x = test::gradients(dx.pow(2).sum(), {x}, false)[0];
        results.push_back({y.detach(), dx.detach(), d2x});
      }
      for (size_t k = 0; k < 3; ++k) {
        ASSERT_EQ(results[1][k].sizes(), results[0][k].sizes()) << "output " << k;
        EXPECT_LE(test::normalised_max_error(results[1][k], results[0][k]), tolerance(dtype)) << "output " << k;
      }
    }
  }
}

TEST(CudaKernels, Upfirdn2dHandlesHalfPrecisionAndStridedInputs) {
  SKIP_WITHOUT_CUDA_KERNELS();
  at::manual_seed(2);  // reproducible inputs
  for (const UpfirdnCase& c : upfirdn_cases()) {
    SCOPED_TRACE(c.name);
    const at::Tensor f = at::rand(c.filter_shape, on_cuda(at::kFloat)) + 0.1;
    const at::Tensor x = at::randn(c.x_shape, on_cuda(at::kFloat));
    const at::Tensor expected = kernels::upfirdn2d(x, f, c.args, Impl::kReference);
    const at::Tensor half = kernels::upfirdn2d(x.to(at::kHalf), f, c.args, Impl::kCuda);
    EXPECT_EQ(half.scalar_type(), at::kHalf);
    EXPECT_LE(test::normalised_max_error(half, expected), tolerance(at::kHalf));
    // channels_last and a transposed view: the kernel reads through strides.
    const at::Tensor channels_last = x.contiguous(at::MemoryFormat::ChannelsLast);
    EXPECT_LE(test::normalised_max_error(kernels::upfirdn2d(channels_last, f, c.args, Impl::kCuda), expected), 1e-6);
    const at::Tensor transposed = x.transpose(2, 3).contiguous().transpose(2, 3);
    EXPECT_LE(test::normalised_max_error(kernels::upfirdn2d(transposed, f, c.args, Impl::kCuda), expected), 1e-6);
  }
}

TEST(CudaKernels, BiasActAgreesWithTheReferenceToSecondOrder) {
  SKIP_WITHOUT_CUDA_KERNELS();
  at::manual_seed(3);  // reproducible inputs
  const std::vector<Activation> acts = {Activation::kLinear, Activation::kRelu,  Activation::kLrelu,
                                        Activation::kTanh,   Activation::kSigmoid, Activation::kElu,
                                        Activation::kSelu,   Activation::kSoftplus, Activation::kSwish};
  for (Activation act : acts) {
    for (const bool clamped : {false, true}) {
      for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
        SCOPED_TRACE(std::string(kernels::activation_name(act)) + (clamped ? " clamp" : "") + " " +
                     c10::toString(dtype));
        BiasActArgs a;
        a.act = act;
        if (clamped) a.clamp = 1.5;
        const at::Tensor x0 = at::randn({6, 16, 9, 7}, on_cuda(dtype)) * 2;
        const at::Tensor b0 = at::randn({16}, on_cuda(dtype));
        const at::Tensor R = at::randn_like(x0);
        std::vector<std::vector<at::Tensor>> results;
        for (Impl impl : {Impl::kReference, Impl::kCuda}) {
          const at::Tensor x = x0.clone().requires_grad_(true);
          const at::Tensor b = b0.clone().requires_grad_(true);
          const at::Tensor y = kernels::bias_act(x, b, a, impl);
          const auto first = test::gradients((y * R).sum(), {x, b}, true);
          const auto second = test::gradients(first[0].pow(2).sum(), {x, b}, false);
          results.push_back({y.detach(), first[0].detach(), first[1].detach(), second[0], second[1]});
        }
        const char* names[] = {"y", "dL_dx", "dL_db", "d2_dx", "d2_db"};
        for (size_t k = 0; k < 5; ++k) {
          EXPECT_LE(test::normalised_max_error(results[1][k], results[0][k]), tolerance(dtype)) << names[k];
        }
      }
    }
  }
}

TEST(CudaKernels, BiasActHandlesHalfPrecisionOtherDimsAndNoBias) {
  SKIP_WITHOUT_CUDA_KERNELS();
  at::manual_seed(4);  // reproducible inputs
  BiasActArgs a;
  a.act = Activation::kLrelu;
  a.clamp = 256;
  const at::Tensor x = at::randn({4, 32, 8, 8}, on_cuda(at::kFloat)) * 3;
  const at::Tensor b = at::randn({32}, on_cuda(at::kFloat));
  const at::Tensor expected = kernels::bias_act(x, b, a, Impl::kReference);
  const at::Tensor half = kernels::bias_act(x.to(at::kHalf), b.to(at::kHalf), a, Impl::kCuda);
  EXPECT_LE(test::normalised_max_error(half, expected), tolerance(at::kHalf));
  a.dim = 3;
  const at::Tensor b8 = at::randn({8}, on_cuda(at::kFloat));
  EXPECT_LE(test::normalised_max_error(kernels::bias_act(x, b8, a, Impl::kCuda),
                                       kernels::bias_act(x, b8, a, Impl::kReference)),
            1e-6);
  a.act = Activation::kSwish;
  EXPECT_LE(test::normalised_max_error(kernels::bias_act(x, {}, a, Impl::kCuda),
                                       kernels::bias_act(x, {}, a, Impl::kReference)),
            1e-6);
  // A non-contiguous input.
  const at::Tensor strided = x.transpose(2, 3);
  EXPECT_LE(test::normalised_max_error(kernels::bias_act(strided, b8, a, Impl::kCuda),
                                       kernels::bias_act(strided, b8, a, Impl::kReference)),
            1e-6);
}

// The NHWC FP16 blocks (fp16_channels_last): channels-last inputs give the same numbers as NCHW ones, to second
// order, and the outputs stay channels-last (a kernel that returned NCHW would make every following convolution
// convert the layout back).
TEST(CudaKernels, ChannelsLastInputsGiveTheSameResultsAndKeepTheirLayout) {
  SKIP_WITHOUT_CUDA_KERNELS();
  at::manual_seed(6);  // reproducible inputs
  const auto cl = at::MemoryFormat::ChannelsLast;
  for (at::ScalarType dtype : {at::kFloat, at::kHalf}) {
    SCOPED_TRACE(c10::toString(dtype));
    for (Activation act : {Activation::kLrelu, Activation::kSwish}) {
      BiasActArgs a;
      a.act = act;
      a.clamp = 1.5;
      const at::Tensor x0 = at::randn({4, 24, 8, 6}, on_cuda(dtype)) * 2;
      const at::Tensor b0 = at::randn({24}, on_cuda(dtype));
      const at::Tensor R = at::randn_like(x0);
      std::vector<std::vector<at::Tensor>> results;
      for (const bool channels_last : {false, true}) {
        const at::Tensor x = (channels_last ? x0.contiguous(cl) : x0.clone()).requires_grad_(true);
        const at::Tensor b = b0.clone().requires_grad_(true);
        const at::Tensor y = kernels::bias_act(x, b, a, Impl::kCuda);
        EXPECT_EQ(y.is_contiguous(cl) && !y.is_contiguous(), channels_last) << "bias_act output layout";
        const auto first = test::gradients((y * R).sum(), {x, b}, true);
        const auto second = test::gradients(first[0].pow(2).sum(), {x, b}, false);
        results.push_back({y.detach(), first[0].detach(), first[1].detach(), second[0], second[1]});
      }
      const char* names[] = {"y", "dL_dx", "dL_db", "d2_dx", "d2_db"};
      for (size_t k = 0; k < 5; ++k) {
        // The same elementwise arithmetic in another order of elements; only the bias sums may round differently.
        EXPECT_LE(test::normalised_max_error(results[1][k], results[0][k]), k == 2 || k == 4 ? tolerance(dtype) : 0)
            << kernels::activation_name(act) << " " << names[k];
      }
    }
    const at::Tensor f = kernels::setup_filter({1, 3, 3, 1}).to(at::kCUDA);  // the CUDA path wants x and f together
    const at::Tensor x0 = at::randn({4, 24, 8, 6}, on_cuda(dtype));
    for (const bool down : {false, true}) {
      std::vector<at::Tensor> outputs, grads;
      for (const bool channels_last : {false, true}) {
        const at::Tensor x = (channels_last ? x0.contiguous(cl) : x0.clone()).requires_grad_(true);
        const at::Tensor y = down ? kernels::downsample2d(x, f) : kernels::upsample2d(x, f);
        EXPECT_EQ(y.is_contiguous(cl) && !y.is_contiguous(), channels_last) << "upfirdn2d output layout";
        y.pow(2).sum().backward();
        outputs.push_back(y.detach());
        grads.push_back(x.grad());
      }
      EXPECT_EQ(test::normalised_max_error(outputs[1], outputs[0]), 0) << (down ? "downsample2d" : "upsample2d");
      EXPECT_EQ(test::normalised_max_error(grads[1], grads[0]), 0) << (down ? "downsample2d" : "upsample2d") << " grad";
    }
  }
}

TEST(CudaKernels, GridSampleAgreesWithTheReferenceThroughGradOutput) {
  SKIP_WITHOUT_CUDA_KERNELS();
  at::manual_seed(5);  // reproducible inputs
  const at::Tensor x0 = at::randn({2, 3, 20, 24}, on_cuda(at::kFloat));
  const at::Tensor grid = at::rand({2, 30, 30, 2}, on_cuda(at::kFloat)) * 2.4 - 1.2;
  std::vector<std::vector<at::Tensor>> results;
  for (Impl impl : {Impl::kReference, Impl::kCuda}) {
    const at::Tensor x = x0.clone().requires_grad_(true);
    const at::Tensor y = kernels::grid_sample(x, grid, impl);
    const at::Tensor dx = test::gradients(y.sin().sum(), {x}, true)[0];
    const at::Tensor d2x = test::gradients(dx.pow(2).sum(), {x}, false)[0];
    results.push_back({y.detach(), dx.detach(), d2x});
  }
  for (size_t k = 0; k < 3; ++k) EXPECT_LE(test::normalised_max_error(results[1][k], results[0][k]), 1e-5) << k;
}

// Not a test: prints reference-vs-CUDA timings of network-sized calls when FACETEX_KERNEL_TIMINGS=1.
TEST(CudaKernels, Timings) {
  SKIP_WITHOUT_CUDA_KERNELS();
  at::manual_seed(6);  // reproducible inputs
  const char* wanted = std::getenv("FACETEX_KERNEL_TIMINGS");
  if (wanted == nullptr || std::string(wanted) != "1") GTEST_SKIP() << "set FACETEX_KERNEL_TIMINGS=1";
  // Mean milliseconds per call; reading a value back waits for the queued kernels.
  const auto time_ms = [](const std::function<at::Tensor()>& call) {
    at::Tensor out;
    for (int i = 0; i < 3; ++i) out = call();
    out.sum().item<double>();
    constexpr int kRuns = 20;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kRuns; ++i) out = call();
    out.sum().item<double>();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / kRuns;
  };
  const at::Tensor f4 = kernels::setup_filter({1, 3, 3, 1}).to(at::kCUDA);
  const at::Tensor f12 = at::rand({12}, on_cuda(at::kFloat));
  struct Timed {
    const char* name;
    const at::Tensor& input;  // with the output: the bytes a memory-bound kernel must move at least once
    std::function<at::Tensor(Impl)> call;
  };
  const at::Tensor img = at::randn({8, 128, 128, 128}, on_cuda(at::kFloat));
  const at::Tensor img_half = img.to(at::kHalf);
  const at::Tensor rgb = at::randn({32, 3, 268, 268}, on_cuda(at::kFloat));
  const at::Tensor act = at::randn({16, 512, 32, 32}, on_cuda(at::kFloat));
  const at::Tensor bias = at::randn({512}, on_cuda(at::kFloat));
  BiasActArgs lrelu;
  lrelu.act = Activation::kLrelu;
  const std::vector<Timed> timed = {
      {"upsample2d 4x4 [8,128,128,128] f32", img,
       [&](Impl i) { return kernels::upsample2d(img, f4, 2, 0, false, 1, i); }},
      {"upsample2d 4x4 [8,128,128,128] f16", img_half,
       [&](Impl i) { return kernels::upsample2d(img_half, f4, 2, 0, false, 1, i); }},
      {"downsample2d 4x4 [8,128,128,128] f32", img,
       [&](Impl i) { return kernels::downsample2d(img, f4, 2, 0, false, 1, i); }},
      {"filter2d 4x4 pad 1 [8,128,128,128] f32", img,
       [&](Impl i) { return kernels::filter2d(img, f4, 1, false, 1, i); }},
      {"upsample2d sym6 [32,3,268,268] f32", rgb,
       [&](Impl i) { return kernels::upsample2d(rgb, f12, 2, 0, false, 1, i); }},
      {"downsample2d sym6 [32,3,268,268] f32", rgb,
       [&](Impl i) { return kernels::downsample2d(rgb, f12, 2, -6, true, 1, i); }},
      {"bias_act lrelu [16,512,32,32] f32", act, [&](Impl i) { return kernels::bias_act(act, bias, lrelu, i); }},
  };
  for (const Timed& t : timed) {
    const double ref = time_ms([&] { return t.call(Impl::kReference); });
    const double cuda = time_ms([&] { return t.call(Impl::kCuda); });
    // Effective bandwidth of the CUDA kernel: input + output bytes over its time (the H100/H200 copy engines move
    // about 3-4.3 TB/s read + write; a kernel far below that is bound by something other than memory).
    const at::Tensor out = t.call(Impl::kCuda);
    const double bytes = double(t.input.numel() * t.input.element_size() + out.numel() * out.element_size());
    std::printf("[timing] %-42s reference %8.3f ms  cuda %8.3f ms  (x%.1f)  cuda %7.1f GB/s\n", t.name, ref, cuda,
                ref / cuda, bytes / (cuda * 1e6));
  }
}
