// The loader's order, as pure functions (docs/formats.md "Stream order" gives the algorithm so other tools can
// reproduce it).
//
// The stream is the concatenation of epochs; epoch e visits the n items in the order epoch_permutation(n, seed, e).
// A cursor is a position in that stream. A training step consumes W*B consecutive stream positions starting at
// the cursor: rank r of W takes positions cursor + r + j*W for j in [0, B) — i.e. p % W == r when the cursor is a
// multiple of W, which it always is within one run. Because the cursor is global, a run saved with W ranks resumes
// with any other W exactly where it stopped: no item of the epoch is repeated or skipped.
#pragma once

#include <cstdint>
#include <vector>

namespace facetex::data {

// SplitMix64 (Steele, Lea & Flood 2014): small, fast, and fully specified, unlike std:: distributions.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next();
  // Uniform in [0, bound) without modulo bias (Lemire's multiply-shift with rejection).
  uint64_t below(uint64_t bound);

 private:
  uint64_t state_;
};

// Fisher–Yates shuffle of [0, n) driven by SplitMix64(mix(seed, epoch)).
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch);

struct Cursor {
  int64_t epoch = 0;
  int64_t position = 0;  // next stream position within the epoch, in [0, n)
  int64_t global(int64_t n) const { return epoch * n + position; }
  static Cursor from_global(int64_t g, int64_t n) { return Cursor{g / n, g % n}; }
  bool operator==(const Cursor& o) const { return epoch == o.epoch && position == o.position; }
  bool operator!=(const Cursor& o) const { return !(*this == o); }
};

// Stream position of slot j of rank r's batch at step s after `start`.
inline int64_t stream_position(int64_t start, int64_t step, int64_t rank, int64_t world, int64_t batch, int64_t slot) {
  return start + step * world * batch + rank + slot * world;
}

}  // namespace facetex::data
