// `facetex data pack`: an image folder or zip -> HDF5 shards + manifest.
//
// Inputs are sorted by relative path and cut into shard slots of --shard-size inputs; shard k holds inputs
// [k*S, (k+1)*S) minus any skipped ones. --part i/N takes a contiguous run of shard slots, so Slurm array tasks
// write disjoint shards with globally unique names and need no coordination; `data merge-manifest` joins their
// part manifests. Each shard is written atomically and records a digest of what it holds (input keys, sizes and
// modification times, and the settings), so a re-run (after a crash or preemption) skips finished shards and
// redoes only the rest. A finished dataset (its manifest exists) is never modified unless --overwrite is given:
// then its manifest is removed first, so the folder never claims to be complete while it is rewritten.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "core/partition.h"
#include "data/dataset.h"
#include "data/image_codec.h"
#include "data/manifest.h"

namespace facetex::data {

struct PackOptions {
  std::string images;              // folder or .zip
  std::filesystem::path out;       // shard folder (created)
  int resolution = 0;              // 0: the first image's size; then every image must have that size
  int64_t shard_size = 1000;
  Storage storage = Storage::kPng;
  int deflate = 0;                 // raw storage: deflate level 0..9
  int jpeg_quality = 95;
  int png_level = 3;               // PNG compression level used when re-encoding
  SquarePolicy square = SquarePolicy::kNone;
  bool allow_upscale = false;
  Part part;
  int threads = 0;                 // 0: all hardware threads
  OnCorrupt on_corrupt = OnCorrupt::kFail;  // fail: stop at the first bad image; skip: list it in the manifest
  bool overwrite = false;          // allow replacing shards of a finished dataset whose inputs or settings changed
};

struct PackResult {
  Manifest manifest;               // what was written (dataset.json, or the part manifest)
  std::filesystem::path manifest_path;
  int64_t shards_written = 0;
  int64_t shards_reused = 0;       // already complete from an earlier run
  int64_t rows_written = 0;
  double seconds = 0;
};

PackResult pack_images(const PackOptions& options);

}  // namespace facetex::data
