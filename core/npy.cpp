#include "core/npy.h"

#include <fmt/format.h>

#include "core/crc32.h"
#include "core/error.h"

namespace facetex {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the .npy writer stores the host's floats as '<f4'");

std::string npy_float32(const float* values, const std::vector<int64_t>& shape) {
  int64_t count = 1;
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i) {
    FACETEX_CHECK_USAGE(shape[i] >= 0, "npy: negative dimension {}", shape[i]);
    count *= shape[i];
    dims += fmt::format("{}{}", i > 0 ? ", " : "", shape[i]);
  }
  if (shape.size() == 1) dims += ",";  // Python's one-element tuple
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}", dims);
  // As numpy: spaces and a final '\n' make magic (6) + version (2) + length (2) + header a multiple of 64 bytes.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>((header.size() >> 8) & 0xff);
  out += header;
  out.append(reinterpret_cast<const char*>(values), static_cast<size_t>(count) * sizeof(float));
  return out;
}

namespace {

void put16(std::string& s, uint32_t v) {
  s += static_cast<char>(v & 0xff);
  s += static_cast<char>((v >> 8) & 0xff);
}

void put32(std::string& s, uint32_t v) {
  put16(s, v & 0xffff);
  put16(s, v >> 16);
}

}  // namespace

std::string npz_archive(const std::vector<std::pair<std::string, std::string>>& members) {
  // ZIP (APPNOTE 6.3): a local header + data per member, then the central directory and its end record. Stored
  // (method 0), no ZIP64: members and the archive stay below 4 GiB, checked. DOS date 1980-01-01 00:00 (numpy's
  // zipfile writes the current time; a fixed one keeps the bytes a function of the arrays).
  constexpr uint32_t kDosTime = 0, kDosDate = (0 << 9) | (1 << 5) | 1;
  FACETEX_CHECK_USAGE(members.size() < 0xffff, "npz: too many members ({})", members.size());
  std::string out, directory;
  for (const auto& [key, bytes] : members) {
    const std::string name = key + ".npy";
    FACETEX_CHECK_USAGE(!key.empty() && name.size() < 0xffff, "npz: bad member name '{}'", key);
    FACETEX_CHECK_USAGE(bytes.size() < 0xffffffffull && out.size() + bytes.size() < 0xffffffffull,
                        "npz: member '{}' makes the archive larger than 4 GiB (no ZIP64)", key);
    const uint32_t crc = crc32(bytes.data(), bytes.size());
    const uint32_t offset = static_cast<uint32_t>(out.size()), size = static_cast<uint32_t>(bytes.size());
    put32(out, 0x04034b50);  // local file header
    put16(out, 20);          // version needed: 2.0
    put16(out, 0);           // flags
    put16(out, 0);           // stored
    put16(out, kDosTime);
    put16(out, kDosDate);
    put32(out, crc);
    put32(out, size);
    put32(out, size);
    put16(out, static_cast<uint32_t>(name.size()));
    put16(out, 0);  // extra field
    out += name;
    out += bytes;
    put32(directory, 0x02014b50);  // central directory entry
    put16(directory, 20);          // made by 2.0
    put16(directory, 20);
    put16(directory, 0);
    put16(directory, 0);
    put16(directory, kDosTime);
    put16(directory, kDosDate);
    put32(directory, crc);
    put32(directory, size);
    put32(directory, size);
    put16(directory, static_cast<uint32_t>(name.size()));
    put16(directory, 0);  // extra
    put16(directory, 0);  // comment
    put16(directory, 0);  // disk
    put16(directory, 0);  // internal attributes
    put32(directory, 0);  // external attributes
    put32(directory, offset);
    directory += name;
  }
  const uint32_t directory_offset = static_cast<uint32_t>(out.size());
  out += directory;
  put32(out, 0x06054b50);  // end of central directory
  put16(out, 0);
  put16(out, 0);
  put16(out, static_cast<uint32_t>(members.size()));
  put16(out, static_cast<uint32_t>(members.size()));
  put32(out, static_cast<uint32_t>(directory.size()));
  put32(out, directory_offset);
  put16(out, 0);  // comment
  return out;
}

}  // namespace facetex
