// Reads one shard. Rows are located once at open (chunk file addresses from HDF5), then read by any number of
// threads with pread() outside the HDF5 library lock; decompression, CRC checks and decoding run in the calling
// thread. Datasets whose layout the fast path does not know (other filters, other chunk shapes, e.g. written by
// h5py with different settings) are read through HDF5 instead — same results, serialised.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/shard_format.h"

namespace facetex::data {

class ShardReader {
 public:
  // Validates the schema (attributes, dataset shapes and types, offsets). DataError naming the file otherwise.
  explicit ShardReader(const std::filesystem::path& path);
  ~ShardReader();
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  const ShardHeader& header() const;
  const std::string& path() const;
  int64_t count() const;
  // Bytes of one stored row (raw: H*W*3; encoded: the file's length).
  int64_t stored_bytes(int64_t row) const;
  uint32_t stored_crc(int64_t row) const;
  const std::vector<uint32_t>& stored_crcs() const;
  std::string key(int64_t row) const;  // reads /keys on first use ("?" when they cannot be read)
  // Reads /keys against their CRC-32 (shards of older versions have none): DataError naming the shard if damaged.
  void check_keys() const;
  bool lock_free_reads() const;

  // The row's stored bytes (raw HWC pixels, or the PNG/JPEG file), CRC-checked.
  // DataError "<file> row <i> (key '<k>'): <reason>" for a bad row. Thread-safe.
  void read_row(int64_t row, std::string& out) const;
  // The row as planar RGB (CHW, H*W*3 bytes at `out`), decoded when encoded, optionally mirrored. Thread-safe;
  // `scratch` is a per-thread buffer reused between calls.
  void read_chw(int64_t row, bool xflip, uint8_t* out, std::string& scratch) const;

  // Annotation datasets (written by `data annotate` / `data synth`): whether one exists, and one row of it
  // (values per row = product of the dataset's trailing dimensions; float datasets read as float32, others as uint8).
  bool has_annotation(const std::string& name) const;
  int64_t annotation_row_size(const std::string& name) const;
  void read_annotation(const std::string& name, int64_t row, float* out) const;
  void read_annotation(const std::string& name, int64_t row, uint8_t* out) const;
  // The annotations this shard holds (every root dataset that is not part of the image schema), sorted.
  std::vector<std::string> annotation_names() const;
  // An annotation's CRC-32 as recorded when it was written and as computed now from the stored values, read a block
  // of rows at a time; nullopt (nothing read) for one written before facetex recorded checksums.
  struct AnnotationChecksum {
    uint32_t recorded = 0;
    uint32_t stored = 0;
  };
  std::optional<AnnotationChecksum> annotation_checksum(const std::string& name) const;

  // "<file> row <i> (key '<k>')" — the prefix of every message about a row.
  std::string describe_row(int64_t row) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace facetex::data
