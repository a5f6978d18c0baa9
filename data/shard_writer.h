// Writes one shard. Rows are appended in order; commit() writes keys, checksums and attributes and moves the
// file into place atomically, so a shard under its final name is always complete.
#pragma once

#include <cstdint>
#include <hdf5.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "data/shard_format.h"

namespace facetex::data {

struct ShardSummary {
  std::string file;  // file name relative to the dataset folder
  int64_t count = 0;
  int64_t bytes = 0;         // file size
  uint32_t rows_crc32 = 0;   // CRC-32 of the /crc32 dataset (little-endian uint32 array): a digest of the content
  int64_t input_begin = 0;
};

class ShardWriter {
 public:
  // `deflate_level` 0..9 applies to raw storage only (PNG/JPEG are compressed already).
  ShardWriter(std::filesystem::path final_path, const ShardHeader& header, int deflate_level);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // raw: `payload` is the HWC RGB pixels; png/jpeg: the encoded file. `crc` is crc32(payload).
  // `zlib_chunk` (raw + deflate only): the payload already compressed in zlib format by the caller's thread,
  // written as-is with H5Dwrite_chunk so compression runs in parallel instead of inside the HDF5 lock.
  void append(const std::string& key, std::string_view payload, uint32_t crc, std::string_view zlib_chunk = {});
  int64_t count() const;
  // Annotation datasets written at commit (e.g. /coeffs [N, 257], /crop [N, 3], /valid [N]): the first dimension
  // must equal the number of rows appended. Chunked one row per chunk.
  void set_annotation(const std::string& name, std::vector<float> values, std::vector<hsize_t> dims);
  void set_annotation(const std::string& name, std::vector<uint8_t> values, std::vector<hsize_t> dims);
  ShardSummary commit();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Compresses a raw row in the zlib format HDF5's deflate filter reads (for ShardWriter::append).
std::string zlib_compress(std::string_view data, int level);

// Reads back the summary of an existing shard (for manifests of re-runs that skip finished shards).
ShardSummary summarize_shard(const std::filesystem::path& path);

}  // namespace facetex::data
