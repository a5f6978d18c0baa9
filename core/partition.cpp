#include "core/partition.h"

#include <cstdlib>

#include "core/error.h"

namespace facetex {

std::string Part::str() const { return fmt::format("{}/{}", index, count); }

Part parse_part(const std::string& text) {
  auto slash = text.find('/');
  FACETEX_CHECK_USAGE(slash != std::string::npos, "--part expects i/N (e.g. 3/16), got '{}'", text);
  auto parse = [&](const std::string& s) {
    // Digits only: strtoll alone would take " 1", "+1" or "-0" (a mistyped array line should not run as a part).
    FACETEX_CHECK_USAGE(!s.empty() && s.size() <= 12 && s.find_first_not_of("0123456789") == std::string::npos,
                        "--part expects i/N (e.g. 3/16), got '{}'", text);
    return static_cast<int64_t>(std::strtoll(s.c_str(), nullptr, 10));
  };
  Part p{parse(text.substr(0, slash)), parse(text.substr(slash + 1))};
  FACETEX_CHECK_USAGE(p.count >= 1 && p.index >= 0 && p.index < p.count, "--part {}: need 0 <= i < N", text);
  return p;
}

Range part_range(int64_t total, const Part& part) {
  return Range{total * part.index / part.count, total * (part.index + 1) / part.count};
}

}  // namespace facetex
