// What the trainer's diagnostics count: the op census (ATen calls, autograd nodes, scalar reads) and the profile
// window's summary (on the CPU: host operators; the GPU summary of kernels runs in scripts/gpu_check/run_full.sh).
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include "train/op_census.h"
#include "train/profile_window.h"

using namespace facetex::train;

TEST(OpCensus, CountsOperatorsBackwardNodesAndScalarReads) {
  const at::Tensor x = at::randn({8, 8}).requires_grad_(true);
  OpCensus census;
  const OpCounts before = census.now();
  at::Tensor y = at::mm(x, x).relu().sum();
  y.backward();
  const double value = y.item<double>();
  (void)value;
  const OpCounts used = census.now() - before;
  EXPECT_GE(used.ops, 4) << "mm, relu, sum and what backward calls";
  EXPECT_GE(used.backward_nodes, 3) << "SumBackward0, ReluBackward0, MmBackward0";
  EXPECT_EQ(used.scalar_reads, 1) << "one item()";
  EXPECT_EQ(used.device_to_host, 0) << "a CPU tensor's item() is no device read";
  EXPECT_NE(used.str(2.0).find("item() 0.5"), std::string::npos) << used.str(2.0);

  // Nested censuses share the counters; nothing is counted once the last one closes.
  { OpCensus inner; }
  const OpCounts after_inner = census.now();
  (void)at::ones({2}).sum().item<float>();
  EXPECT_EQ((census.now() - after_inner).scalar_reads, 1) << "still counting while the outer census is open";
}

TEST(OpCensus, CudaTransfersThatSynchroniseTheHost) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  OpCensus census;
  OpCounts before = census.now();
  const at::Tensor x = at::ones({4}).to(at::kCUDA);  // blocking: the stream is synchronised
  EXPECT_EQ((census.now() - before).blocking_host_to_device, 1);
  before = census.now();
  const at::Tensor y = at::ones({4}).to(at::TensorOptions().device(at::kCUDA), /*non_blocking=*/true);
  EXPECT_EQ((census.now() - before).blocking_host_to_device, 0);
  before = census.now();
  EXPECT_EQ((x + y).sum().item<float>(), 8.0f);
  (void)x.cpu();
  const OpCounts used = census.now() - before;
  EXPECT_EQ(used.device_to_host, 2) << "item() and cpu() of a GPU tensor: " << used.str();
  EXPECT_EQ(used.scalar_reads, 1);
}

TEST(OpCensus, NamesTheMostCalledOperators) {
  OpCensus census(/*by_name=*/true);
  (void)OpCensus::top_operators(100);  // start from an empty table
  at::Tensor a = at::ones({4});
  for (int i = 0; i < 5; ++i) a = at::mul(a, 2.0);
  (void)at::sum(a);
  const auto top = OpCensus::top_operators(3);
  ASSERT_FALSE(top.empty());
  EXPECT_EQ(top.front().first, "aten::mul");
  EXPECT_EQ(top.front().second % 5, 0) << "5 calls, each with its nested calls of the same name (mul.Scalar -> mul.Tensor)";
  EXPECT_TRUE(OpCensus::top_operators(3).empty()) << "reading the table resets it";
}

TEST(ProfileWindow, SummarisesHostOperatorsOnTheCpu) {
  const at::Tensor a = at::randn({64, 64});
  ProfileWindow window(/*cuda=*/false);
  for (int i = 0; i < 3; ++i) (void)at::mm(a, a).relu();
  const ProfileSummary s = window.stop(/*iterations=*/3);
  EXPECT_FALSE(s.device);
  EXPECT_EQ(s.iterations, 3);
  EXPECT_GT(s.wall_ms, 0.0);
  bool saw_mm = false;
  for (const auto& r : s.rows) {
    if (r.name == "aten::mm") {
      saw_mm = true;
      EXPECT_EQ(r.calls, 3);
      EXPECT_GE(r.ms, 0.0);
    }
  }
  EXPECT_TRUE(saw_mm);
  for (size_t i = 1; i < s.rows.size(); ++i) EXPECT_GE(s.rows[i - 1].ms, s.rows[i].ms) << "longest first";
  const std::string text = s.text(5);
  EXPECT_EQ(text.rfind("profile: 3 iterations", 0), 0u) << text;
  EXPECT_NE(text.find("aten::mm"), std::string::npos) << text;
  EXPECT_THROW(window.stop(1), std::exception) << "a window stops once";
}

TEST(ProfileWindow, CudaKernelsWithTheirDeviceTime) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const at::Tensor a = at::randn({512, 512}, at::kCUDA);
  ProfileWindow window(/*cuda=*/true);
  for (int i = 0; i < 4; ++i) (void)at::mm(a, a).relu_();
  const ProfileSummary s = window.stop(/*iterations=*/4);
  EXPECT_TRUE(s.device);
  EXPECT_GE(s.kernels, 8) << "a GEMM and a ReLU kernel per iteration:\n" << s.text();
  EXPECT_GT(s.busy_ms, 0.0);
  EXPECT_LE(s.busy_ms, s.wall_ms * 1.01) << "the device cannot be busier than the window is long";
  std::printf("%s", s.text(5).c_str());
}
