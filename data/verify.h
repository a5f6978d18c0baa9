// `facetex data verify`: checks a packed dataset completely — manifest, shard schema, counts, sizes, every row's
// CRC, every annotation's CRC (landmarks, coefficients, ground-truth textures) and (for PNG/JPEG storage) that every
// row decodes to the right size — and names every bad row.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace facetex::data {

class Dataset;

struct VerifyOptions {
  std::filesystem::path dir;
  bool decode = true;  // also decode encoded rows
  int threads = 0;
};

struct VerifyReport {
  int64_t shards = 0;
  int64_t rows_checked = 0;
  int64_t bad_rows = 0;
  int64_t annotations_checked = 0;  // annotation datasets whose checksum was compared (geometry, textures)
  std::vector<std::string> problems;  // one line each: "<file> row <i> (key '<k>'): <reason>" or a shard problem
  std::vector<std::string> notes;     // harmless findings (leftover partial files, shards not in the manifest)
  bool ok() const { return problems.empty(); }
};

VerifyReport verify_dataset(const VerifyOptions& options);

// Before a job renders from a dataset's geometry (/coeffs, /crop): every shard's copy of each named annotation that
// has a checksum must match it (a flipped bit would silently move a face). DataError naming the shard and dataset
// otherwise. Reads the named datasets whole (about 1 KB per row for /coeffs).
void require_intact_annotations(const Dataset& dataset, const std::vector<std::string>& names);

}  // namespace facetex::data
