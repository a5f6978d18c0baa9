// Communicator collectives and the GradientReducer on real Open MPI: ctest runs this binary as one process and under
// `mpirun -np 2` and `-np 3` (tests/cluster/tests.cmake). Every rank runs every test; the checks are computed from
// quantities each rank can derive on its own (rank-dependent inputs with known sums).
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>

#include <memory>

#include "cluster/communicator.h"
#include "cluster/gradient_reducer.h"
#include "cluster/mpi_communicator.h"
#include "cluster/nccl_communicator.h"
#include "cluster/world.h"
#include "core/error.h"

using namespace facetex;
using namespace facetex::cluster;

namespace {

std::shared_ptr<Communicator>& comm() {
  static std::shared_ptr<Communicator> c = make_communicator(discover_world(), "auto", c10::Device(c10::kCPU));
  return c;
}

// MPI must be finalised before the process leaves, or mpirun reports the rank as failed.
class MpiEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    comm().reset();
    finish_mpi(::testing::UnitTest::GetInstance()->Passed() ? 0 : 1);
  }
};
const auto* const registered = ::testing::AddGlobalTestEnvironment(new MpiEnvironment);

}  // namespace

TEST(Communicator, MatchesTheLauncher) {
  const World w = discover_world();
  EXPECT_EQ(comm()->rank(), w.rank);
  EXPECT_EQ(comm()->size(), w.size);
  EXPECT_STREQ(comm()->backend(), w.size == 1 ? "single" : "mpi");
}

// Each rank's GPU: its local rank when the node's GPUs are all visible, 0 when the launcher shows it only its own.
TEST(World, LocalDeviceIndexFollowsTheVisibleGpus) {
  cluster::World w;
  w.local_rank = 3;
  EXPECT_EQ(cluster::local_device_index(w, 8), 3);
  EXPECT_EQ(cluster::local_device_index(w, 1), 0);
  EXPECT_EQ(cluster::local_device_index(w, 2), 1);
  EXPECT_THROW(cluster::local_device_index(w, 0), UsageError);
}

TEST(Communicator, ReductionsBroadcastGather) {
  const int r = comm()->rank(), n = comm()->size();
  at::Tensor f = at::arange(5, at::kFloat) + r;  // sum over ranks: n*i + n(n-1)/2
  comm()->allreduce(f);
  EXPECT_TRUE(at::equal(f, at::arange(5, at::kFloat) * n + n * (n - 1) / 2.0));
  at::Tensor d = at::full({3}, double(r), at::kDouble);
  comm()->allreduce(d, ReduceOp::kMax);
  EXPECT_EQ(d[0].item<double>(), n - 1);
  at::Tensor l = at::full({2}, int64_t(r + 7), at::kLong);
  comm()->allreduce(l, ReduceOp::kMin);
  EXPECT_EQ(l[1].item<int64_t>(), 7);
  at::Tensor avg = at::full({4}, float(r), at::kFloat);
  comm()->allreduce_average(avg);
  EXPECT_FLOAT_EQ(avg[0].item<float>(), (n - 1) / 2.0f);

  const int root = n - 1;
  at::Tensor b = at::full({6}, r == root ? 42.0f : -1.0f);
  comm()->broadcast(b, root);
  EXPECT_TRUE(at::all(b.eq(42)).item<bool>());

  at::Tensor g = comm()->allgather(at::full({2, 2}, int64_t(r)));
  ASSERT_EQ(g.sizes(), (at::IntArrayRef{n, 2, 2}));
  for (int k = 0; k < n; ++k) EXPECT_TRUE(at::all(g[k].eq(k)).item<bool>());
  comm()->barrier();

  EXPECT_EQ(comm()->any(r == n - 1), true);
  EXPECT_EQ(comm()->any(false), false);
  EXPECT_TRUE(comm()->agree(3.25));
  EXPECT_EQ(comm()->agree(r == 0 ? 1.0 : 2.0), n == 1);
}

TEST(Communicator, AsyncOperationsCompleteInOrder) {
  const int n = comm()->size();
  std::vector<at::Tensor> ts;
  std::vector<std::shared_ptr<CommWork>> works;
  for (int k = 0; k < 5; ++k) {
    ts.push_back(at::full({1000}, float(k + comm()->rank())));
    works.push_back(comm()->allreduce_async(ts.back()));
  }
  for (int k = 4; k >= 0; --k) works[static_cast<size_t>(k)]->wait();
  for (int k = 0; k < 5; ++k) EXPECT_FLOAT_EQ(ts[static_cast<size_t>(k)][0].item<float>(), n * k + n * (n - 1) / 2.0f);
}

TEST(Communicator, RejectsWhatItCannotReduce) {
  if (comm()->size() == 1) GTEST_SKIP() << "the single backend accepts anything";
  at::Tensor h = at::zeros({4}, at::kHalf);
  EXPECT_THROW(comm()->allreduce(h), UsageError);
  at::Tensor strided = at::zeros({4, 4}).t();
  EXPECT_THROW(comm()->allreduce(strided), UsageError);
}

namespace {

// A small MLP whose parameters are identical on every rank (same seed) and whose inputs differ per rank.
struct Mlp {
  torch::nn::Linear a{nullptr}, b{nullptr}, unused{nullptr};
  Mlp() {
    at::manual_seed(5);
    a = torch::nn::Linear(16, 64);
    b = torch::nn::Linear(64, 4);
    unused = torch::nn::Linear(4, 4);
  }
  std::vector<at::Tensor> params() {
    std::vector<at::Tensor> p;
    for (auto* m : {&unused, &a, &b}) {  // registration order: backward reaches b first
      for (auto& t : (*m)->parameters()) p.push_back(t);
    }
    return p;
  }
  at::Tensor loss(int rank, int round) {
    at::Tensor x = at::sin(at::arange(8 * 16, at::kFloat).reshape({8, 16}) * (0.1 + rank) + round);
    return b(at::tanh(a(x))).pow(2).mean();
  }
};

// The expected average: every rank's local gradients, gathered and averaged.
std::vector<at::Tensor> averaged_local_grads(Mlp& m, int rounds) {
  for (auto& p : m.params()) p.mutable_grad() = at::Tensor();
  for (int round = 0; round < rounds; ++round) m.loss(comm()->rank(), round).backward();
  std::vector<at::Tensor> out;
  for (auto& p : m.params()) {
    out.push_back(p.grad().defined() ? comm()->allgather(p.grad()).mean(0) : at::Tensor());
    p.mutable_grad() = at::Tensor();
  }
  return out;
}

}  // namespace

TEST(GradientReducer, AveragesAcrossRanksWithAccumulationRounds) {
  for (int rounds : {1, 3}) {
    for (double bucket_mb : {25.0, 0.0005}) {  // one bucket; many small buckets started from hooks
      SCOPED_TRACE(::testing::Message() << "rounds " << rounds << " bucket_mb " << bucket_mb);
      Mlp m;
      const auto expected = averaged_local_grads(m, rounds);
      GradientReducer reducer(comm(), m.params(), {bucket_mb});
      for (int round = 0; round < rounds; ++round) {
        if (round == rounds - 1) reducer.arm();  // sync only on the last round (the reference's ddp_sync)
        m.loss(comm()->rank(), round).backward();
      }
      const ReductionStats s = reducer.finish();
      const auto params = m.params();
      for (size_t k = 0; k < params.size(); ++k) {
        if (!expected[k].defined()) {
          EXPECT_FALSE(params[k].grad().defined()) << "unused parameter " << k << " got a gradient";
          continue;
        }
        // float32 sums in another order: a few ulps of the gradients' magnitude.
        EXPECT_TRUE(at::allclose(params[k].grad(), expected[k], 1e-5, 1e-7)) << "parameter " << k;
      }
      EXPECT_EQ(s.bytes, int64_t{(16 * 64 + 64 + 64 * 4 + 4 + 4 * 4 + 4) * 4});
      EXPECT_EQ(s.buckets, reducer.num_buckets());
      if (bucket_mb < 1) {
        EXPECT_GT(reducer.num_buckets(), 3);
        EXPECT_GT(s.buckets_before_finish, 0) << "no bucket started while backward was running";
      }
    }
  }
}

TEST(GradientReducer, UnreachedParametersContributeTheirExistingGradient) {
  Mlp m;
  GradientReducer reducer(comm(), m.params());
  // `unused` has a gradient from elsewhere (e.g. an earlier phase) that this backward does not touch.
  for (auto& p : m.unused->parameters()) p.mutable_grad() = at::full_like(p, float(comm()->rank()));
  reducer.arm();
  m.loss(comm()->rank(), 0).backward();
  reducer.finish();
  const int n = comm()->size();
  for (auto& p : m.unused->parameters()) EXPECT_FLOAT_EQ(p.grad().view(-1)[0].item<float>(), (n - 1) / 2.0f);
}

TEST(GradientReducer, BadUseIsAnError) {
  Mlp m;
  GradientReducer reducer(comm(), m.params());
  EXPECT_THROW(reducer.finish(), RuntimeError);
  EXPECT_THROW(GradientReducer(comm(), {}), UsageError);
}

// The NCCL backend with one rank on the GPU machine (two ranks would need two GPUs): CUDA collectives, CPU staging,
// async allreduce on the communication stream and the reducer on CUDA parameters. Skips without CUDA+NCCL.
TEST(NcclCommunicator, OneRankOnTheGpu) {
  if (comm()->size() != 1) GTEST_SKIP() << "one GPU: the NCCL case runs as a single rank";
  if (!nccl_available() || !at::hasCUDA()) GTEST_SKIP() << "needs a CUDA LibTorch build with NCCL and a GPU";
  const c10::Device gpu(c10::kCUDA, 0);
  auto nccl = make_communicator(discover_world(), "nccl", gpu);
  EXPECT_STREQ(nccl->backend(), "nccl");
  at::Tensor t = at::arange(6, at::TensorOptions().dtype(at::kFloat).device(gpu));
  nccl->allreduce(t);
  EXPECT_TRUE(at::equal(t.cpu(), at::arange(6, at::kFloat)));
  at::Tensor host = at::full({3}, 2.5, at::kDouble);  // staged through the device
  nccl->allreduce(host, ReduceOp::kMax);
  EXPECT_EQ(host[1].item<double>(), 2.5);
  EXPECT_TRUE(nccl->any(true));
  at::Tensor g = nccl->allgather(at::ones({2}, at::TensorOptions().device(gpu)));
  EXPECT_EQ(g.sizes(), (at::IntArrayRef{1, 2}));
  auto w = nccl->allreduce_async(t);
  w->wait();
  EXPECT_GE(w->busy_seconds(), 0.0);
  torch::nn::Linear lin(8, 4);
  lin->to(gpu);
  std::vector<at::Tensor> params = lin->parameters();
  GradientReducer reducer(nccl, params, {0.0001});
  reducer.arm();
  lin(at::ones({2, 8}, at::TensorOptions().device(gpu))).sum().backward();
  const ReductionStats s = reducer.finish();
  EXPECT_EQ(s.buckets, reducer.num_buckets());
  EXPECT_TRUE(at::allclose(params[1].grad().cpu(), at::full({4}, 2.0f)));  // d(sum)/d(bias) = batch
}
