// FNV-1a 64: a stable, dependency-free digest of strings and bytes. Used where a job must recognise work it already
// did (pack's and annotate's shard digests of inputs and settings) and for short, stable name suffixes. Not a
// cryptographic hash: it guards against accidents, not adversaries.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace facetex {

struct Fnv64 {
  uint64_t h = 0xcbf29ce484222325ull;
  void bytes(const void* p, size_t n) {
    const auto* c = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ c[i]) * 0x100000001b3ull;
  }
  // A string and a separator byte, so that ("ab", "c") and ("a", "bc") differ.
  void add(std::string_view s) {
    bytes(s.data(), s.size());
    h = (h ^ 0xff) * 0x100000001b3ull;
  }
  std::string hex() const { return fmt::format("{:016x}", h); }
};

// What a job records of a weights file it used: its absolute path, size and modification time — cheap for files of
// gigabytes, the same from any working directory, and different after the file is rewritten (or copied elsewhere,
// which only costs a redo or a refusal).
inline std::string file_stamp(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  const auto mtime = std::filesystem::last_write_time(path, ec).time_since_epoch().count();
  const std::filesystem::path where = std::filesystem::absolute(path, ec).lexically_normal();
  return fmt::format("{} size={} mtime={}", where.string(), size, mtime);
}

}  // namespace facetex
