#include "cluster/communicator.h"

#include <ATen/ATen.h>

#include <cstring>

#include "cluster/mpi_communicator.h"
#include "cluster/nccl_communicator.h"
#include "core/env_param.h"
#include "core/error.h"

namespace facetex::cluster {
namespace {

FACETEX_PARAM_DOUBLE(CommTimeout, "FACETEX_COMM_TIMEOUT", 600.0)

// One process: every collective is the identity; async work is already done.
class SingleCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const char* backend() const override { return "single"; }
  void allreduce(at::Tensor&, ReduceOp) override {}
  std::shared_ptr<CommWork> allreduce_async(at::Tensor) override {
    struct Done final : CommWork {
      void wait() override {}
      double busy_seconds() const override { return 0; }
    };
    return std::make_shared<Done>();
  }
  void broadcast(at::Tensor&, int root) override {
    FACETEX_CHECK_USAGE(root == 0, "broadcast root {} is not a rank of 1", root);
  }
  at::Tensor allgather(const at::Tensor& t) override { return t.unsqueeze(0).clone(); }
  void barrier() override {}
};

}  // namespace

double comm_timeout_seconds() { return param_CommTimeout(); }

void Communicator::allreduce_average(at::Tensor& t) {
  allreduce(t, ReduceOp::kSum);
  if (size() > 1) t.div_(size());
}

bool Communicator::any(bool flag) {
  at::Tensor t = at::full({1}, flag ? 1 : 0, at::kInt);
  allreduce(t, ReduceOp::kMax);
  return t.item<int>() != 0;
}

bool Communicator::agree(double value) {
  at::Tensor t = at::empty({1}, at::kLong);
  int64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(bits));
  t.fill_(bits);
  const at::Tensor all = allgather(t);
  return at::all(all.eq(bits)).item<bool>();
}

std::shared_ptr<Communicator> make_communicator(const World& world, const std::string& backend,
                                                const c10::Device& device) {
  FACETEX_CHECK_USAGE(backend == "auto" || backend == "single" || backend == "mpi" || backend == "nccl",
                      "run.comm must be auto, single, mpi or nccl (got '{}')", backend);
  if (backend == "single" || (backend == "auto" && world.size == 1)) {
    FACETEX_CHECK_USAGE(world.size == 1, "run.comm = single, but the {} launcher started {} ranks", world.launcher,
                        world.size);
    return std::make_shared<SingleCommunicator>();
  }
  if (backend == "nccl" || (backend == "auto" && device.is_cuda())) {
    FACETEX_CHECK_USAGE(device.is_cuda(), "run.comm = nccl needs CUDA tensors (run.device = cuda)");
    // No silent fallback to reducing CUDA gradients through host memory over MPI: say what is missing.
    FACETEX_CHECK_USAGE(nccl_available(), "multi-rank training on CUDA needs the NCCL communicator, which this build "
                                          "does not include (CUDA LibTorch + NCCL at configure time); use run.device "
                                          "= cpu or a CUDA+NCCL build");
    return make_nccl_communicator(world, device);
  }
  FACETEX_CHECK_USAGE(device.is_cpu(), "the MPI communicator reduces CPU tensors; run.device is {}", device.str());
  return make_mpi_communicator(world);
}

}  // namespace facetex::cluster
