// dataset.json: the manifest of a packed dataset (docs/formats.md). It lists every shard with its row count, file
// size and a content digest, so `data verify` and the loader notice a manifest that disagrees with its shards.
// `data pack --part i/N` writes dataset.part-<i>-of-<N>.json; `data merge-manifest` joins the parts.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/partition.h"
#include "data/shard_format.h"

namespace facetex::data {

inline constexpr char kManifestFormat[] = "facetex-dataset";
inline constexpr int64_t kManifestVersion = 1;
inline constexpr char kManifestName[] = "dataset.json";

struct ShardEntry {
  std::string file;
  int64_t count = 0;
  int64_t bytes = 0;
  uint32_t rows_crc32 = 0;
  int64_t input_begin = 0;  // the shard covers inputs [input_begin, input_end) of the sorted input list
  int64_t input_end = 0;
};

struct SkippedInput {
  int64_t input = 0;
  std::string key;
  std::string reason;
};

struct Manifest {
  int64_t resolution = 0;
  int64_t channels = kChannels;
  Storage storage = Storage::kRaw;
  int64_t count = 0;         // rows over all shards listed here
  int64_t shard_size = 0;    // inputs per shard slot
  int64_t total_inputs = 0;  // size of the whole sorted input list (all parts)
  std::string source;
  std::string created_by;
  std::optional<Part> part;  // set in a part manifest
  std::vector<ShardEntry> shards;
  std::vector<SkippedInput> skipped;
};

std::string part_manifest_name(const Part& part);  // "dataset.part-00003-of-00016.json"

// DataError naming the file and the offending field.
Manifest read_manifest(const std::filesystem::path& file);
// The finished dataset in `dir`: DataError for a missing folder, a missing dataset.json (naming merge-manifest, the
// usual cause) and a part manifest.
Manifest read_dataset_manifest(const std::filesystem::path& dir);
// DataError when a finished dataset would hold no image although it had inputs (every one skipped under
// --on-corrupt=skip): an empty dataset.json would only fail later, in training, far from the cause.
void require_some_rows(const Manifest& m, const std::filesystem::path& where);
void write_manifest(const std::filesystem::path& file, const Manifest& manifest);  // atomic

// Before a job rewrites shards of `dir` (`rewrites`: some shard there differs from what it will write): a finished
// manifest there (dataset.json, or the job's own part manifest `own`) is refused — UsageError "<manifest> already
// describes a finished <what>; pass --overwrite ..." — unless `overwrite`, which removes it first, so that a
// half-rewritten folder never reads as a dataset.
void unlist_before_rewrite(const std::filesystem::path& dir, const std::filesystem::path& own, bool rewrites,
                           bool overwrite, const std::string& what);

// Joins dataset.part-*-of-N.json in `dir` into dir/dataset.json. DataError when a part is missing, duplicated,
// inconsistent (resolution, storage, shard size, input count) or when shards overlap.
Manifest merge_part_manifests(const std::filesystem::path& dir);
// After a whole (not --part) run wrote dir/dataset.json: part manifests of an earlier split describe shards that may
// no longer exist as they were; removed, so that no later merge-manifest can put them back.
void remove_part_manifests(const std::filesystem::path& dir);

}  // namespace facetex::data
