#include "train/profile_window.h"

#include <ATen/Context.h>
#include <fmt/format.h>
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <utility>

#include "core/error.h"

namespace facetex::train {
namespace {

namespace prof = torch::autograd::profiler;
namespace impl = torch::profiler::impl;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// LibTorch 2.x reports event times in ns (startNs, durationNs), 1.13 in us (startUs, durationUs).
template <class E>
auto start_us(const E& e, int) -> decltype(static_cast<double>(e.startNs())) {
  return static_cast<double>(e.startNs()) / 1000.0;
}
template <class E>
double start_us(const E& e, long) {
  return static_cast<double>(e.startUs());
}
template <class E>
auto duration_us(const E& e, int) -> decltype(static_cast<double>(e.durationNs())) {
  return static_cast<double>(e.durationNs()) / 1000.0;
}
template <class E>
double duration_us(const E& e, long) {
  return static_cast<double>(e.durationUs());
}

void synchronize(bool cuda) {
  if (cuda) torch::cuda::synchronize();
}

}  // namespace

std::string ProfileSummary::text(size_t top) const {
  const double n = std::max<int64_t>(iterations, 1);
  std::string out;
  if (device && kernels + copies + memsets == 0) {
    out = fmt::format("profile: {} iterations, {:.1f} ms/iteration, no device activity recorded (LibTorch without "
                      "Kineto/CUPTI, or CUPTI not permitted here)\n",
                      iterations, wall_ms / n);
  } else if (device) {
    out = fmt::format("profile: {} iterations, {:.1f} ms/iteration, device busy {:.1f} ms/iteration ({:.0f}%), "
                      "{:.0f} kernels, {:.1f} copies, {:.1f} memsets per iteration\n",
                      iterations, wall_ms / n, busy_ms / n, wall_ms > 0 ? 100 * busy_ms / wall_ms : 0.0, kernels / n,
                      copies / n, memsets / n);
  } else {
    out = fmt::format("profile: {} iterations, {:.1f} ms/iteration, {:.0f} host operators per iteration (host times "
                      "include nested operators)\n",
                      iterations, wall_ms / n, kernels / n);
  }
  double total = 0;
  for (const auto& r : rows) total += r.ms;
  out += fmt::format("  {:>9} {:>6} {:>10}  {}\n", "ms/iter", "%", "calls/iter", device ? "kernel / activity" : "operator");
  for (size_t i = 0; i < rows.size() && i < top; ++i) {
    const auto& r = rows[i];
    std::string name = r.name.size() > 110 ? r.name.substr(0, 107) + "..." : r.name;
    out += fmt::format("  {:9.3f} {:6.2f} {:10.1f}  {}\n", r.ms / n, total > 0 ? 100 * r.ms / total : 0.0,
                       r.calls / n, name);
  }
  return out;
}

ProfileWindow::ProfileWindow(bool cuda) : cuda_(cuda) {
  const impl::ProfilerConfig config(impl::ProfilerState::KINETO);
  const std::set<impl::ActivityType> activities{cuda ? impl::ActivityType::CUDA : impl::ActivityType::CPU};
  synchronize(cuda_);
  prof::prepareProfiler(config, activities);
  prof::enableProfiler(config, activities);
  running_ = true;
  start_s_ = now_s();
}

ProfileWindow::~ProfileWindow() {
  if (!running_) return;
  try {
    prof::disableProfiler();
  } catch (...) {  // nothing to report from a destructor
  }
}

ProfileSummary ProfileWindow::stop(int64_t iterations) {
  FACETEX_CHECK_RUNTIME(running_, "ProfileWindow::stop called twice");
  synchronize(cuda_);
  ProfileSummary s;
  s.wall_ms = (now_s() - start_s_) * 1000;
  const auto result = prof::disableProfiler();
  running_ = false;
  s.device = cuda_;
  s.iterations = iterations;
  std::map<std::string, ProfileSummary::Row> by_name;
  std::vector<std::pair<double, double>> intervals;  // device activity [start, end) in us
  for (const auto& e : result->events()) {
    const bool on_device = e.deviceType() != c10::DeviceType::CPU;
    if (on_device != cuda_) continue;  // a GPU window summarises the device, a CPU window the host operators
    const std::string name = e.name();
    const double start = start_us(e, 0), dur = duration_us(e, 0);
    if (on_device) {
      if (name.rfind("Memcpy", 0) == 0) ++s.copies;
      else if (name.rfind("Memset", 0) == 0) ++s.memsets;
      else ++s.kernels;
      intervals.emplace_back(start, start + dur);
    } else {
      ++s.kernels;
    }
    auto& row = by_name[name];
    row.name = name;
    row.calls += 1;
    row.ms += dur / 1000;
  }
  std::sort(intervals.begin(), intervals.end());
  double covered_to = -1e300;
  for (const auto& [a, b] : intervals) {
    const double from = std::max(a, covered_to);
    if (b > from) s.busy_ms += (b - from) / 1000;
    covered_to = std::max(covered_to, b);
  }
  for (auto& [name, row] : by_name) s.rows.push_back(std::move(row));
  std::sort(s.rows.begin(), s.rows.end(), [](const auto& a, const auto& b) { return a.ms > b.ms; });
  return s;
}

}  // namespace facetex::train
