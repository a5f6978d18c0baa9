// Progress of a long job: a bar on a terminal (stderr is a TTY), a log line every
// FACETEX_PROGRESS_INTERVAL seconds (default 30) otherwise, e.g. in a Slurm job's log. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace facetex {

class Progress {
 public:
  // total <= 0: unknown total (no percentage or ETA). `subsystem` names the logger used in log mode.
  Progress(std::string label, int64_t total, std::string unit = "items", std::string subsystem = "cli");
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void advance(int64_t items = 1);
  // Prints the final line (once): "<label>: N unit in T s (R unit/s)".
  void finish();

  int64_t done() const { return done_.load(std::memory_order_relaxed); }
  double elapsed_seconds() const;

 private:
  void report(bool final);

  std::string label_, unit_, subsystem_;
  int64_t total_;
  bool tty_;
  double interval_s_;
  std::atomic<int64_t> done_{0};
  std::chrono::steady_clock::time_point start_;
  std::atomic<int64_t> last_report_ns_{0};  // since start_
  std::mutex mu_;
  bool finished_ = false;
};

}  // namespace facetex
