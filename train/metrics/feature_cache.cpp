#include "train/metrics/feature_cache.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cstdlib>

#include "cluster/communicator.h"
#include "core/atomic_file.h"
#include "core/digest.h"
#include "core/error.h"
#include "core/h5.h"
#include "core/log.h"

namespace fs = std::filesystem;

namespace facetex::train::metrics {
namespace {

constexpr char kFormat[] = "facetex-features";

// The cached rows when `file` holds exactly what `key` names, else an undefined tensor (absent, unreadable, another
// key under the same name, wrong shape): the caller extracts instead.
at::Tensor read_cache(const fs::path& file, const std::string& key, int64_t n, int64_t dim) {
  if (!fs::is_regular_file(file)) return {};
  try {
    const h5::Id f = h5::open_file(file.string());
    if (!h5::has_attr(f, "format") || h5::read_attr_string(f, "format") != kFormat ||
        h5::read_attr_string(f, "key") != key) {
      return {};
    }
    std::vector<hsize_t> dims;
    std::vector<double> rows = h5::read_dataset<double>(f, "features", &dims);
    if (dims.size() != 2 || static_cast<int64_t>(dims[0]) != n || static_cast<int64_t>(dims[1]) != dim) return {};
    return at::from_blob(rows.data(), {n, dim}, at::kDouble).clone();
  } catch (const std::exception& e) {
    log::get("metrics").warn("{}: unreadable feature cache ({}); extracting again", file.string(), e.what());
    return {};
  }
}

void write_cache(const fs::path& file, const std::string& key, const std::string& what, const at::Tensor& rows) {
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  AtomicFile out(file);
  {
    const h5::Id f = h5::create_file(out.temp_path().string());
    h5::write_attr(f, "format", kFormat);
    h5::write_attr(f, "key", key);
    h5::write_attr(f, "describes", what);
    const at::Tensor c = rows.to(at::kDouble).contiguous();
    h5::write_dataset<double>(f, "features", c.data_ptr<double>(),
                              {static_cast<hsize_t>(c.size(0)), static_cast<hsize_t>(c.size(1))});
  }
  out.commit();
}

}  // namespace

fs::path default_feature_cache_dir() {
  for (const char* name : {"FACETEX_CACHE_DIR", "XDG_CACHE_HOME", "HOME"}) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') continue;
    const fs::path base(v);
    if (std::string(name) == "FACETEX_CACHE_DIR") return base;
    return std::string(name) == "HOME" ? base / ".cache" / "facetex" : base / "facetex";
  }
  return {};
}

CachedFeatures gather_features_cached(const ImageSource& source, FeatureExtractor& extractor,
                                      cluster::Communicator* comm, int64_t max_items, int batch,
                                      const fs::path& cache_dir) {
  CachedFeatures r;
  if (cache_dir.empty()) {
    r.features = gather_features(source, extractor, comm, max_items, batch);
    return r;
  }
  auto& log = log::get("metrics");
  const int64_t n = max_items > 0 ? std::min(max_items, source.size()) : source.size();
  // The key is the full description; the file name carries its digest (the file also records the key, so a digest
  // collision is a miss, not a wrong answer).
  const std::string key = fmt::format("{} | {} | items {}", source.identity(n), extractor.identity(), n);
  Fnv64 digest;
  digest.add(key);
  r.file = cache_dir / fmt::format("features-{}-{}.h5", extractor.name(), digest.hex());
  at::Tensor cached = read_cache(r.file, key, n, extractor.dim());
  // Every rank uses the file or none does: the extraction below is collective.
  at::Tensor usable = at::full({1}, cached.defined() ? 1.0 : 0.0, at::kDouble);
  if (comm != nullptr && comm->size() > 1) comm->allreduce(usable, cluster::ReduceOp::kMin);
  if (usable.item<double>() > 0) {
    r.features = cached;
    r.hit = true;
    log.info("{} features of {} items read from the cache {}", extractor.name(), n, r.file.string());
    return r;
  }
  r.features = gather_features(source, extractor, comm, max_items, batch);
  if (comm == nullptr || comm->rank() == 0) {
    try {
      write_cache(r.file, key,
                  fmt::format("{} features of {} items of {}", extractor.name(), n, n > 0 ? source.describe(0) : "-"),
                  r.features);
      log.info("{} features of {} items cached in {}", extractor.name(), n, r.file.string());
    } catch (const std::exception& e) {
      log.warn("{}: cannot write the feature cache ({}); the metric is unaffected", r.file.string(), e.what());
    }
  }
  return r;
}

}  // namespace facetex::train::metrics
