// A window of training iterations recorded with LibTorch's profiler (Kineto), summarised for people: on a GPU the
// CUDA kernels, copies and memsets with their device times; on a CPU the ATen operators with their host times.
// The first line answers whether a step is bound by the device (busy close to 100%) or by the host (launches,
// syncs); the table says which kernels to work on. FACETEX_PROFILE_ITERATIONS in the trainer (docs/operations.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace facetex::train {

struct ProfileSummary {
  bool device = false;       // true: the rows are device activities (GPU); false: host operators (CPU run)
  int64_t iterations = 0;
  double wall_ms = 0;        // the window, device synchronised at both ends
  double busy_ms = 0;        // time the device ran anything (the union of its activity intervals)
  int64_t kernels = 0, copies = 0, memsets = 0;  // device activities (host operators in `kernels` on a CPU run)
  struct Row {
    std::string name;
    int64_t calls = 0;
    double ms = 0;           // summed duration
  };
  std::vector<Row> rows;     // by summed duration, longest first

  // "profile: N iterations, X ms/iteration, device busy Y ms/iteration (Z%), K kernels, C copies, M memsets per
  // iteration", then up to `top` rows "  ms/iter  %  calls/iter  name" (names cut to 110 characters).
  std::string text(size_t top = 30) const;
};

class ProfileWindow {
 public:
  // Starts recording: CUDA activities when `cuda` (LibTorch built with Kineto and CUPTI), else host operators.
  explicit ProfileWindow(bool cuda);
  ~ProfileWindow();
  ProfileWindow(const ProfileWindow&) = delete;
  ProfileWindow& operator=(const ProfileWindow&) = delete;

  // Stops recording and summarises the `iterations` that ran inside the window.
  ProfileSummary stop(int64_t iterations);

 private:
  bool cuda_ = false, running_ = false;
  double start_s_ = 0;
};

}  // namespace facetex::train
