// "--part i/N": split a job into N disjoint parts for a Slurm array (task i takes part i).
#pragma once

#include <cstdint>
#include <string>

namespace facetex {

struct Part {
  int64_t index = 0;
  int64_t count = 1;
  bool whole() const { return count == 1; }
  std::string str() const;
};

// Parses "i/N" with 0 <= i < N; UsageError otherwise.
Part parse_part(const std::string& text);

// The contiguous range [begin, end) of `total` items that part i/N takes: sizes differ by at most one.
struct Range {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};
Range part_range(int64_t total, const Part& part);

}  // namespace facetex
