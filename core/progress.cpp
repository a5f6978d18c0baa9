#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

#include "core/env_param.h"
#include "core/error.h"
#include "core/log.h"

namespace facetex {
namespace {
FACETEX_PARAM_DOUBLE(ProgressInterval, "FACETEX_PROGRESS_INTERVAL", 30.0)
constexpr double kTtyRedrawSeconds = 0.1;

std::string format_duration(double s) {
  if (s < 0) return "?";
  int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t / 60) % 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}
}  // namespace

Progress::Progress(std::string label, int64_t total, std::string unit, std::string subsystem)
    : label_(std::move(label)), unit_(std::move(unit)), subsystem_(std::move(subsystem)), total_(total),
      tty_(isatty(STDERR_FILENO) == 1 && env_string("FACETEX_PROGRESS", "auto") != "log"),
      interval_s_(param_ProgressInterval()), start_(std::chrono::steady_clock::now()) {
  FACETEX_CHECK_USAGE(interval_s_ >= 0, "FACETEX_PROGRESS_INTERVAL must be >= 0 seconds (0: a line per update), got {}",
                      interval_s_);
}

Progress::~Progress() { finish(); }

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::advance(int64_t items) {
  done_.fetch_add(items, std::memory_order_relaxed);
  const int64_t now_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_).count();
  const double since = (now_ns - last_report_ns_.load(std::memory_order_relaxed)) * 1e-9;
  if (since < (tty_ ? kTtyRedrawSeconds : interval_s_)) return;
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock() || finished_) return;
  last_report_ns_.store(now_ns, std::memory_order_relaxed);
  report(false);
}

void Progress::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  report(true);
}

void Progress::report(bool final) {
  const int64_t done = done_.load();
  const double elapsed = elapsed_seconds();
  const double rate = elapsed > 0 ? done / elapsed : 0.0;
  if (final) {
    if (tty_) std::fputs("\r\033[K", stderr);
    log::get(subsystem_).info("{}: {} {} in {:.1f} s ({:.1f} {}/s)", label_, done, unit_, elapsed, rate, unit_);
    return;
  }
  std::string eta = (total_ > 0 && rate > 0) ? format_duration((total_ - done) / rate) : "?";
  if (tty_) {
    constexpr int kWidth = 30;
    int filled = total_ > 0 ? static_cast<int>(kWidth * std::min<double>(1.0, double(done) / total_)) : 0;
    std::string bar(filled, '#');
    bar.resize(kWidth, '-');
    std::string pct = total_ > 0 ? fmt::format("{:3.0f}%", 100.0 * done / total_) : "";
    std::fprintf(stderr, "\r\033[K%s [%s] %s %lld/%s %.1f %s/s ETA %s", label_.c_str(), bar.c_str(), pct.c_str(),
                 static_cast<long long>(done), total_ > 0 ? std::to_string(total_).c_str() : "?", rate, unit_.c_str(),
                 eta.c_str());
    std::fflush(stderr);
  } else {
    log::get(subsystem_).info("{}: {}/{} {} ({:.1f} {}/s, ETA {})", label_, done,
                              total_ > 0 ? std::to_string(total_) : "?", unit_, rate, unit_, eta);
  }
}

}  // namespace facetex
