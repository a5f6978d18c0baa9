// A packed dataset: dataset.json plus its shards, opened and cross-checked. Rows are numbered globally in
// manifest order (shard by shard).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/manifest.h"
#include "data/shard_reader.h"

namespace facetex::data {

// What to do with a corrupt row or shard: stop with a clear error, or leave it out (counted, logged, exported as
// facetex_loader_corrupt_rows_total / facetex_dataset_excluded_shards — never silent).
enum class OnCorrupt { kFail, kSkip };
OnCorrupt parse_on_corrupt(const std::string& text);  // "fail" | "skip"

class Dataset {
 public:
  // Reads DIR/dataset.json and opens every shard, checking each against its manifest entry (row count, file
  // size, content digest, resolution, storage). A disagreement is a DataError naming the shard — or, with
  // OnCorrupt::kSkip, that shard is left out and reported by excluded().
  static std::shared_ptr<const Dataset> open(const std::filesystem::path& dir, OnCorrupt on_corrupt = OnCorrupt::kFail);

  int64_t size() const { return size_; }
  int resolution() const { return static_cast<int>(manifest_.resolution); }
  Storage storage() const { return manifest_.storage; }
  const Manifest& manifest() const { return manifest_; }
  const std::filesystem::path& dir() const { return dir_; }
  const std::vector<std::unique_ptr<ShardReader>>& shards() const { return shards_; }
  // Shards left out under OnCorrupt::kSkip, with the reason.
  const std::vector<std::string>& excluded() const { return excluded_; }

  struct Location {
    const ShardReader* shard;
    int64_t row;
  };
  Location locate(int64_t index) const;

 private:
  std::filesystem::path dir_;
  Manifest manifest_;
  std::vector<std::unique_ptr<ShardReader>> shards_;
  std::vector<int64_t> starts_;  // first global row of each open shard
  std::vector<std::string> excluded_;
  int64_t size_ = 0;
};

// Checks one shard against its manifest entry; returns "" when they agree, else the disagreement.
std::string compare_with_manifest(const ShardReader& shard, const ShardEntry& entry, const Manifest& manifest);

}  // namespace facetex::data
