#include "core/work_pool.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace facetex {

int hardware_workers() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

void for_each_index(int64_t n, int workers, const std::function<void(int64_t, int)>& fn) {
  if (n <= 0) return;
  const int count = static_cast<int>(std::min<int64_t>(std::max(workers, 1), n));
  if (count == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i, 0);
    return;
  }
  std::atomic<int64_t> next{0};
  std::atomic<bool> stop{false};
  std::exception_ptr first;
  std::mutex mu;
  auto work = [&](int worker) {
    for (int64_t i = next++; i < n && !stop; i = next++) {
      try {
        fn(i, worker);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!first) first = std::current_exception();
        stop = true;
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(count));
  for (int t = 0; t < count; ++t) pool.emplace_back(work, t);
  for (auto& t : pool) t.join();
  if (first) std::rethrow_exception(first);
}

}  // namespace facetex
