// Features of a set of images kept between metric runs, as the reference's metric_utils caches dataset statistics:
// FID/KID of many checkpoints against one real set (FFHQ: 70,000 Inception passes) extract the real features once.
// A cache file is keyed by what the features depend on — the images (a packed dataset's manifest bytes, or each
// file's relative path, size and modification time), the extractor and its weight file (file_stamp), and the item
// count — and holds the gathered [n, dim] float64 rows in item order (HDF5, written atomically by rank 0).
// Not in the key: the batch, the rank count and the device (features differ by float rounding only).
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>

#include "train/metrics/features.h"

namespace facetex::train::metrics {

// $FACETEX_CACHE_DIR, else $XDG_CACHE_HOME/facetex, else $HOME/.cache/facetex; empty when none is set.
std::filesystem::path default_feature_cache_dir();

struct CachedFeatures {
  at::Tensor features;            // [n, dim] float64, the same on every rank
  std::filesystem::path file;     // the cache file read or written (empty: no cache)
  bool hit = false;               // read from it (no image was decoded)
};

// gather_features, through `cache_dir` (empty: no cache). Every rank must be able to read a file for it to be used
// (the ranks agree on it through `comm` before any collective), else the features are extracted and rank 0
// (re)writes the file; a cache folder that cannot be written costs a warning, not the metric.
CachedFeatures gather_features_cached(const ImageSource& source, FeatureExtractor& extractor,
                                      cluster::Communicator* comm, int64_t max_items, int batch,
                                      const std::filesystem::path& cache_dir);

}  // namespace facetex::train::metrics
