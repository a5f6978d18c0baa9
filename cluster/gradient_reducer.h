// Data-parallel gradient averaging with communication hidden behind backward (DESIGN.md §6; what DDP does for the
// reference). The parameters are laid out in buckets of about `bucket_mb` MB, in reverse registration order (the
// order backward produces their gradients). A hook on every parameter copies its gradient — plus what earlier
// accumulation rounds left in .grad — into its bucket slot; when a bucket is complete its allreduce starts on the
// communicator's thread while backward continues. Buckets start strictly in index order, so every rank issues the
// same collectives in the same order. finish() starts what is left (parameters this backward did not reach), waits,
// divides by the world size and writes the averages back into .grad.
//
//   reducer.arm();            // before the backward of the last accumulation round only
//   loss.backward();
//   reducer.finish();         // .grad now holds the average over all ranks
//
// Parameters that received no gradient on this rank and have no .grad keep none (the graph is the same on every
// rank, so they are unused everywhere and the optimiser skips them, as in a single process).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "cluster/communicator.h"

namespace facetex::cluster {

struct ReducerOptions {
  double bucket_mb = 25;  // DDP's default; docs/scaling.md derives the size for a cluster
};

// What one reduction did, for the metrics and the overlap benchmark.
struct ReductionStats {
  int64_t bytes = 0;            // bytes allreduced
  int buckets = 0;
  int buckets_before_finish = 0;  // started from hooks while backward was still running
  double comm_seconds = 0;      // time the collectives took on the communication thread
  double exposed_seconds = 0;   // time finish() waited for them (communication not hidden behind backward)
  double hidden_fraction() const { return comm_seconds > 0 ? 1.0 - std::min(1.0, exposed_seconds / comm_seconds) : 1.0; }
};

class GradientReducer {
 public:
  // `params`: the leaf tensors to average (all on one device, one floating dtype).
  GradientReducer(std::shared_ptr<Communicator> comm, std::vector<at::Tensor> params, ReducerOptions options = {});
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // The next backward's hooks fill buckets (call before the last accumulation round's backward).
  void arm();
  // Completes the reduction started by arm(); returns what it did.
  ReductionStats finish();
  // Without hooks: average the current .grad of every parameter (bucketed, synchronous).
  ReductionStats reduce_now();

  // Whether arm() was called and finish() is pending (a phase without a backward pass never arms).
  bool armed() const { return armed_; }
  int num_buckets() const { return static_cast<int>(buckets_.size()); }
  const ReductionStats& last() const { return last_; }

 private:
  struct Slot {
    size_t bucket;
    int64_t offset, numel;
    bool reported = false;
  };
  struct Bucket {
    at::Tensor buffer;
    std::vector<size_t> params;
    size_t pending = 0;
    std::shared_ptr<CommWork> work;
  };
  void on_gradient(size_t index, const at::Tensor& grad);
  void fill_from_grad(size_t index);
  void launch_ready_locked();
  ReductionStats complete();

  std::shared_ptr<Communicator> comm_;
  std::vector<at::Tensor> params_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::mutex mutex_;
  bool armed_ = false;
  size_t next_launch_ = 0;
  ReductionStats last_;
  std::vector<unsigned> hooks_;  // removed by the destructor
};

}  // namespace facetex::cluster
