// GradientReducer vs a plain allreduce of the same bytes, and how much of its communication hides behind backward.
// Run under the launcher, e.g.  mpirun -np 2 build/bench/bench_reducer [--mb 80] [--bucket-mb 25] [--iters 5]
//                                                                      [--comm auto|mpi|nccl] [--device cpu|cuda]
// (--comm nccl --device cuda: the NCCL backend on CUDA gradients; one rank per GPU.)
//
// Printed by rank 0 (docs/benchmarks.md):
//   plain   : one Communicator::allreduce of one flat float32 tensor of the total gradient bytes (the MPI_Allreduce
//             of those bytes, through the communication thread) — algbw = bytes / time.
//   reducer : GradientReducer::reduce_now() over a parameter list of the same total bytes (bucketed; the gradients
//             live in the buckets, so after the first call there is no copy, only the in-place averaging) — algbw
//             and its ratio to plain (target >= 0.9).
//   overlap : a real backward of a StyleGAN2 discriminator (64^2, batch 4 per rank) with the reducer armed:
//             step time without any reduction, with the reducer, communication seconds, exposed (waited) seconds,
//             and hidden = 1 - exposed / communication.
#include <ATen/ATen.h>
#include <torch/cuda.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "cluster/communicator.h"
#include "cluster/gradient_reducer.h"
#include "cluster/mpi_communicator.h"
#include "cluster/world.h"
#include "core/fatal_signal.h"
#include "models/stylegan2/discriminator.h"

using namespace facetex;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The slowest rank's time is the collective's time.
double max_over_ranks(cluster::Communicator& comm, double s) {
  at::Tensor t = at::full({1}, s, at::kDouble);
  comm.allreduce(t, cluster::ReduceOp::kMax);
  return t.item<double>();
}

// CUDA work is asynchronous: the timed region ends when the device has finished too.
bool g_sync_cuda = false;

double best_of(cluster::Communicator& comm, int iters, const std::function<void()>& fn) {
  fn();  // warm-up
  if (g_sync_cuda) torch::cuda::synchronize();
  double best = 1e30;
  for (int i = 0; i < iters; ++i) {
    comm.barrier();
    const auto t0 = Clock::now();
    fn();
    if (g_sync_cuda) torch::cuda::synchronize();
    best = std::min(best, max_over_ranks(comm, since(t0)));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  // Line-buffered: the figures reach a log even if the process dies later; a crash prints a backtrace.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  facetex::install_fatal_signal_report("bench_reducer");
  double mb = 80, bucket_mb = 25;
  int iters = 5;
  std::string comm_name = "auto", device_name = "cpu";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--mb") mb = std::atof(argv[i + 1]);
    else if (a == "--bucket-mb") bucket_mb = std::atof(argv[i + 1]);
    else if (a == "--iters") iters = std::atoi(argv[i + 1]);
    else if (a == "--comm") comm_name = argv[i + 1];
    else if (a == "--device") device_name = argv[i + 1];
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  int code = 0;
  {
    const cluster::World world = cluster::discover_world();
    const c10::Device device = device_name == "cuda" ? c10::Device(c10::kCUDA, world.local_rank) : c10::Device(c10::kCPU);
    const auto fopts = at::TensorOptions().device(device);
    g_sync_cuda = device.is_cuda();
    auto comm = cluster::make_communicator(world, comm_name, device);
    const bool root = comm->rank() == 0;
    if (root) {
      std::printf("bench_reducer: %d ranks (%s), %.0f MB of float32 gradients on %s, buckets of %.0f MB, best of %d\n",
                  comm->size(), comm->backend(), mb, device_name.c_str(), bucket_mb, iters);
    }

    // Parameters shaped like a conv net's: many tensors from a few KB to a few MB.
    const int64_t total = static_cast<int64_t>(mb * 1024 * 1024 / 4);
    std::vector<at::Tensor> params;
    for (int64_t used = 0, k = 0; used < total; ++k) {
      const int64_t n = std::min<int64_t>(total - used, k % 3 == 0 ? 2359296 : (k % 3 == 1 ? 512 : 65536));
      params.push_back(at::zeros({n}, fopts).requires_grad_(true));
      params.back().mutable_grad() = at::full({n}, float(comm->rank() + 1), fopts);
      used += n;
    }
    at::Tensor flat = at::ones({total}, fopts);
    const double bytes = double(total) * 4;
    const double plain = best_of(*comm, iters, [&] { comm->allreduce(flat); });
    cluster::GradientReducer reducer(comm, params, {bucket_mb});
    double collectives = 1e30;
    const double reduced = best_of(*comm, iters, [&] {
      reducer.reduce_now();
      collectives = std::min(collectives, reducer.last().comm_seconds);
    });
    collectives = max_over_ranks(*comm, collectives);
    if (root) {
      std::printf("  plain    %8.1f ms  algbw %6.2f GB/s\n", plain * 1e3, bytes / plain / 1e9);
      std::printf("  reducer  %8.1f ms  algbw %6.2f GB/s  ratio %.2f  (%d buckets; bucket collectives alone %.1f ms, "
                  "ratio %.2f; the rest is the in-place division by the world size)\n",
                  reduced * 1e3, bytes / reduced / 1e9, plain / reduced, reducer.num_buckets(), collectives * 1e3,
                  plain / collectives);
    }

    // Overlap with a real backward.
    models::stylegan2::DiscriminatorConfig dc;
    dc.img_resolution = 64;
    dc.mbstd_group_size = 4;
    at::manual_seed(0);
    models::stylegan2::Discriminator D(dc);
    D.to(device);
    std::vector<at::Tensor> dp = D.parameters(true);
    int64_t dn = 0;
    for (auto& p : dp) dn += p.numel();
    at::Tensor x = at::randn({4, 3, 64, 64}, fopts);
    auto step = [&](cluster::GradientReducer* r) {
      for (auto& p : dp) p.mutable_grad() = at::Tensor();
      if (r) r->arm();
      at::softplus(D.forward(x)).mean().backward();
      if (r) r->finish();
    };
    const double bare = best_of(*comm, iters, [&] { step(nullptr); });
    cluster::GradientReducer dreducer(comm, dp, {bucket_mb});
    double comm_s = 0, exposed = 0;
    const double with = best_of(*comm, iters, [&] {
      step(&dreducer);
      comm_s = dreducer.last().comm_seconds;
      exposed = dreducer.last().exposed_seconds;
    });
    comm_s = max_over_ranks(*comm, comm_s);
    exposed = max_over_ranks(*comm, exposed);
    if (root) {
      std::printf("  overlap  D 64^2 (%.1f M params, %d buckets): step %.1f ms bare, %.1f ms with the reducer; "
                  "communication %.1f ms, exposed %.1f ms, hidden %.0f%%\n",
                  dn / 1e6, dreducer.num_buckets(), bare * 1e3, with * 1e3, comm_s * 1e3, exposed * 1e3,
                  100 * (comm_s > 0 ? 1 - std::min(1.0, exposed / comm_s) : 1.0));
    }
  }
  cluster::finish_mpi(code);
  return code;
}
