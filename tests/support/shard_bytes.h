// Where an HDF5 file's bytes lie (a shard's rows, a checkpoint's tensors), for tests that damage one row or one value
// on disk (bit rot, a bad sector) and check that verify, the loader, resume and the pre-start checks notice. Found through HDF5's chunk index,
// so the tests do not depend on the file layout HDF5 chooses.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace facetex::test {

// File offset of the stored chunk of `dataset` that holds the element at `coord` (the chunk's first byte).
uint64_t chunk_file_offset(const std::filesystem::path& file, const std::string& dataset,
                           const std::vector<uint64_t>& coord);

// File offset of the first stored byte of a contiguous (unchunked) dataset, e.g. a checkpoint's tensors.
uint64_t contiguous_file_offset(const std::filesystem::path& file, const std::string& dataset);

// A file offset inside the stored bytes of pixel row `row` (raw /images or encoded /encoded storage).
uint64_t row_file_offset(const std::filesystem::path& file, int64_t row);

// XORs one byte of `file` at `offset` with 0x5A, in place.
void flip_byte(const std::filesystem::path& file, uint64_t offset);

}  // namespace facetex::test
