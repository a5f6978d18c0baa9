// Counts what the host asks of LibTorch while a census is open: ATen operator calls, autograd backward nodes, scalar
// reads (item()) and device-to-host transfers. On a GPU every ATen call that computes is at least one kernel launch
// (the CUDA kernels of kernels/ launch outside the dispatcher and are not counted), and every device-to-host read is
// a host sync — the CPU stops queueing work until the GPU has drained its stream — so these counts say how
// launch- and sync-bound a training iteration can be. Counting uses LibTorch's RecordFunction observers; it slows
// dispatch, so it is off unless asked for (FACETEX_OP_CENSUS=1 in the trainer, docs/operations.md).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace facetex::train {

struct OpCounts {
  int64_t ops = 0;             // ATen operator calls (nested calls included: composite ops count their parts)
  int64_t backward_nodes = 0;  // autograd nodes run by backward()/grad()
  int64_t scalar_reads = 0;    // item() on any device (each one a sync when the tensor lives on a GPU)
  int64_t device_to_host = 0;  // item() or copy from a GPU tensor to the host: a host sync each
  int64_t blocking_host_to_device = 0;  // host-to-GPU copies without non_blocking: LibTorch synchronises the stream

  OpCounts operator-(const OpCounts& o) const {
    return {ops - o.ops, backward_nodes - o.backward_nodes, scalar_reads - o.scalar_reads,
            device_to_host - o.device_to_host, blocking_host_to_device - o.blocking_host_to_device};
  }
  OpCounts& operator+=(const OpCounts& o) {
    ops += o.ops, backward_nodes += o.backward_nodes, scalar_reads += o.scalar_reads, device_to_host += o.device_to_host;
    blocking_host_to_device += o.blocking_host_to_device;
    return *this;
  }
  // "ops 1234, backward nodes 56, item() 7, device->host 8, blocking host->device 2", each divided by `per`.
  std::string str(double per = 1.0) const;
};

// Process-wide counting (every thread, the autograd engine's included) while at least one census is alive.
class OpCensus {
 public:
  // `by_name`: also count each operator by name (slower still), for top_operators().
  explicit OpCensus(bool by_name = false);
  ~OpCensus();
  OpCensus(const OpCensus&) = delete;
  OpCensus& operator=(const OpCensus&) = delete;

  // Everything counted since the first live census opened.
  OpCounts now() const;
  // The `n` most called operators since the last call (by_name censuses only), most called first.
  static std::vector<std::pair<std::string, int64_t>> top_operators(size_t n);
};

}  // namespace facetex::train
