// Items spread over a few worker threads, for the CPU stages of batch jobs (decoding, landmark detection, fitting,
// encoding outputs) that have no batched form. Each worker takes the next unclaimed index, so uneven items balance.
#pragma once

#include <cstdint>
#include <functional>

namespace facetex {

// Calls fn(index, worker) for every index in [0, n), on min(workers, n) threads (worker in [0, that)); with one
// worker, on the calling thread. fn should handle its own per-item errors: the first exception that escapes fn
// stops the workers from claiming further items and is rethrown once all of them have returned.
void for_each_index(int64_t n, int workers, const std::function<void(int64_t index, int worker)>& fn);

// The thread count a `--threads`-style option of 0 means: the hardware threads (at least 1).
int hardware_workers();

}  // namespace facetex
