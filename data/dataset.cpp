#include "data/dataset.h"

#include <algorithm>

#include "core/crc32.h"
#include "core/error.h"
#include "core/log.h"
#include "monitoring/metrics.h"

namespace fs = std::filesystem;

namespace facetex::data {

OnCorrupt parse_on_corrupt(const std::string& text) {
  if (text == "fail") return OnCorrupt::kFail;
  if (text == "skip") return OnCorrupt::kSkip;
  throw UsageError(fmt::format("--on-corrupt must be fail or skip, got '{}'", text));
}

std::string compare_with_manifest(const ShardReader& shard, const ShardEntry& entry, const Manifest& manifest) {
  const auto& h = shard.header();
  if (h.count != entry.count) return fmt::format("manifest says {} rows, shard has {}", entry.count, h.count);
  if (h.resolution != manifest.resolution) {
    return fmt::format("manifest says resolution {}, shard has {}", manifest.resolution, h.resolution);
  }
  if (h.storage != manifest.storage) {
    return fmt::format("manifest says storage {}, shard has {}", storage_name(manifest.storage), storage_name(h.storage));
  }
  std::error_code ec;
  auto bytes = static_cast<int64_t>(fs::file_size(shard.path(), ec));
  if (bytes != entry.bytes) return fmt::format("manifest says {} bytes, file has {}", entry.bytes, bytes);
  const auto& crcs = shard.stored_crcs();
  uint32_t digest = crc32(crcs.data(), crcs.size() * sizeof(uint32_t));
  if (digest != entry.rows_crc32) {
    return fmt::format("content digest {:#010x} differs from the manifest's {:#010x}", digest, entry.rows_crc32);
  }
  return "";
}

std::shared_ptr<const Dataset> Dataset::open(const fs::path& dir, OnCorrupt on_corrupt) {
  auto ds = std::make_shared<Dataset>();
  ds->dir_ = dir;
  ds->manifest_ = read_dataset_manifest(dir);
  auto& log = log::get("data");
  for (const auto& entry : ds->manifest_.shards) {
    const fs::path path = dir / entry.file;
    std::string problem;
    std::unique_ptr<ShardReader> shard;
    try {
      shard = std::make_unique<ShardReader>(path);
      problem = compare_with_manifest(*shard, entry, ds->manifest_);
      if (!problem.empty()) problem = fmt::format("{}: disagrees with {}: {}", path.string(), kManifestName, problem);
    } catch (const DataError& e) {
      problem = e.what();
    }
    if (!problem.empty()) {
      if (on_corrupt == OnCorrupt::kFail) throw DataError(problem);
      log.warn("leaving out shard: {}", problem);
      ds->excluded_.push_back(problem);
      metrics::counter("facetex_dataset_excluded_shards_total",
                       "Shards left out because they are corrupt (--on-corrupt=skip)")
          .inc();
      continue;
    }
    ds->starts_.push_back(ds->size_);
    ds->size_ += shard->count();
    ds->shards_.push_back(std::move(shard));
  }
  FACETEX_CHECK_DATA(ds->size_ > 0, "{}: the dataset has no readable rows", dir.string());
  return ds;
}

Dataset::Location Dataset::locate(int64_t index) const {
  FACETEX_CHECK_RUNTIME(index >= 0 && index < size_, "row {} out of range [0, {})", index, size_);
  auto it = std::upper_bound(starts_.begin(), starts_.end(), index);
  size_t s = static_cast<size_t>(it - starts_.begin()) - 1;
  return {shards_[s].get(), index - starts_[s]};
}

}  // namespace facetex::data
