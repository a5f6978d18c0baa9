// Collectives between the ranks of a job (DESIGN.md §6). One interface, three backends:
//   single : one process, every collective is the identity (no MPI needed);
//   mpi    : Open MPI on CPU tensors (cluster/mpi_communicator.cpp);
//   nccl   : CUDA tensors, NCCL communicator bootstrapped over MPI (cluster/nccl_communicator.cpp, CUDA builds).
// Every rank must issue the same collectives in the same order (the MPI rule). Tensors are contiguous and are
// reduced in place. A collective that does not complete within FACETEX_COMM_TIMEOUT seconds (a dead or hung peer)
// ends the process with exit code 1 and a message naming the rank and the operation — never an indefinite hang.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "cluster/world.h"

namespace facetex::cluster {

enum class ReduceOp { kSum, kMax, kMin };

// A collective started asynchronously; wait() returns when its result is in the tensor.
class CommWork {
 public:
  virtual ~CommWork() = default;
  virtual void wait() = 0;
  // Seconds the operation itself took once it started (for the overlap accounting of the gradient reducer).
  virtual double busy_seconds() const = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* backend() const = 0;

  virtual void allreduce(at::Tensor& t, ReduceOp op = ReduceOp::kSum) = 0;
  // Starts an allreduce (sum) of `t` in place; operations complete in the order they were started.
  virtual std::shared_ptr<CommWork> allreduce_async(at::Tensor t) = 0;
  virtual void broadcast(at::Tensor& t, int root) = 0;
  // [size, ...t.shape]: every rank's tensor, in rank order. All ranks pass the same shape.
  virtual at::Tensor allgather(const at::Tensor& t) = 0;
  virtual void barrier() = 0;

  // Conveniences built on the above.
  void allreduce_average(at::Tensor& t);
  // Whether `flag` is true on any rank (the preemption agreement).
  bool any(bool flag);
  // The same value on every rank? (NaN-safe bitwise comparison of doubles via allgather.)
  bool agree(double value);
};

// backend: "auto" (single for one rank, else mpi — nccl when the tensors live on CUDA and NCCL is built), "single",
// "mpi" or "nccl". `device` is where the tensors handed to the collectives live. UsageError for a backend this build
// lacks or that does not fit the world.
std::shared_ptr<Communicator> make_communicator(const World& world, const std::string& backend,
                                                const c10::Device& device);

// Seconds a collective may take before the job is declared hung (FACETEX_COMM_TIMEOUT, default 600).
double comm_timeout_seconds();

}  // namespace facetex::cluster
