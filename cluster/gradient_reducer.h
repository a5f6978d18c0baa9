// Data-parallel gradient averaging with communication hidden behind backward (DESIGN.md §6; what DDP does for the
// reference, with DDP's gradient_as_bucket_view). The parameters are laid out in buckets of about `bucket_mb` MB, in
// reverse registration order (the order backward produces their gradients). arm() points every parameter's .grad
// at its slot in the buckets (keeping what earlier accumulation rounds left there), so backward accumulates straight
// into the buckets; a hook that runs after each parameter's gradient accumulation marks it ready, and a complete
// bucket's allreduce starts on the communicator's thread/stream while backward continues. Buckets start strictly in
// index order, so every rank issues the same collectives in the same order. finish() starts what is left
// (parameters this backward did not reach), waits and divides by the world size in place — no copies in or out.
//
//   reducer.arm();            // before the backward of the last accumulation round only
//   loss.backward();
//   reducer.finish();         // .grad now holds the average over all ranks
//
// Parameters that received no gradient and had none before arm() keep none (the graph is the same on every rank,
// so they are unused everywhere and the optimiser skips them, as in a single process).
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
  // `params`: the leaf tensors to average (all on one device, one floating dtype, requiring grad while the reducer
  // is built: the hooks live on their gradient accumulators, which the reducer keeps alive).
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
    bool reported = false;  // its gradient for this backward has been accumulated
    bool had_grad = false;  // it had a .grad when arm() ran
  };
  struct Bucket {
    at::Tensor buffer;
    std::vector<size_t> params;
    size_t pending = 0;
    std::shared_ptr<CommWork> work;
  };
  void on_accumulated(size_t index);
  at::Tensor slot_view(size_t index) const;
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
  std::vector<std::shared_ptr<void>> accumulators_;  // the parameters' AccumulateGrad nodes, kept alive
  std::shared_ptr<GradientReducer*> self_;            // hooks hold a weak copy: no-ops once the reducer is gone
};

}  // namespace facetex::cluster
