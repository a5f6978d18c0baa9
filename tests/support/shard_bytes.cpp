#include "tests/support/shard_bytes.h"

#include <hdf5.h>

#include <fstream>
#include <utility>

#include "core/error.h"
#include "core/h5.h"
#include "data/shard_format.h"

namespace facetex::test {
namespace {

// {file offset, stored size} of the chunk of `dataset` holding the element at `coord`.
std::pair<uint64_t, uint64_t> stored_chunk(const std::filesystem::path& file, const std::string& dataset,
                                           const std::vector<uint64_t>& coord) {
  h5::Id f = h5::open_file(file.string());
  h5::Id d = h5::open_dataset(f, dataset);
  std::vector<hsize_t> at(coord.begin(), coord.end());
  unsigned filter_mask = 0;
  haddr_t addr = 0;
  hsize_t size = 0;
  FACETEX_CHECK_RUNTIME(H5Dget_chunk_info_by_coord(d, at.data(), &filter_mask, &addr, &size) >= 0,
                        "{}: no stored chunk of /{} at the given element", file.string(), dataset);
  return {addr, size};
}

}  // namespace

uint64_t chunk_file_offset(const std::filesystem::path& file, const std::string& dataset,
                           const std::vector<uint64_t>& coord) {
  return stored_chunk(file, dataset, coord).first;
}

uint64_t contiguous_file_offset(const std::filesystem::path& file, const std::string& dataset) {
  h5::Id f = h5::open_file(file.string());
  h5::Id d = h5::open_dataset(f, dataset);
  const haddr_t addr = H5Dget_offset(d);
  FACETEX_CHECK_RUNTIME(addr != HADDR_UNDEF, "{}: /{} is not stored contiguously", file.string(), dataset);
  return addr;
}

uint64_t row_file_offset(const std::filesystem::path& file, int64_t row) {
  std::vector<uint64_t> offsets;
  {
    h5::Id f = h5::open_file(file.string());
    if (!h5::exists(f, "images")) offsets = h5::read_dataset<uint64_t>(f, "offsets");
  }
  if (offsets.empty()) {  // raw: one row per chunk; its middle byte
    const auto [addr, size] = stored_chunk(file, "images", {uint64_t(row), 0, 0, 0});
    return addr + size / 2;
  }
  // encoded: the middle byte of the row's file, inside the chunk of /encoded that holds it
  const uint64_t mid = (offsets[row] + offsets[row + 1]) / 2;
  const uint64_t chunk = data::kEncodedChunkBytes;
  return chunk_file_offset(file, "encoded", {mid / chunk * chunk}) + mid % chunk;
}

void flip_byte(const std::filesystem::path& file, uint64_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  FACETEX_CHECK_RUNTIME(f.good(), "{}: cannot open to damage it", file.string());
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5A);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

}  // namespace facetex::test
