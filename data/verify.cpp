#include "data/verify.h"

#include <algorithm>
#include <optional>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/work_pool.h"
#include "data/dataset.h"
#include "data/image_codec.h"
#include "data/manifest.h"
#include "data/shard_reader.h"

namespace fs = std::filesystem;

namespace facetex::data {
namespace {

std::string annotation_mismatch(const ShardReader& shard, const std::string& name,
                                const ShardReader::AnnotationChecksum& sum) {
  return fmt::format("{}: /{}: the stored values do not match the CRC-32 written with them ({:08x} written, {:08x} "
                     "read); write this shard again (data annotate / data synth)",
                     shard.path(), name, sum.recorded, sum.stored);
}

}  // namespace

VerifyReport verify_dataset(const VerifyOptions& o) {
  VerifyReport report;
  const Manifest m = read_dataset_manifest(o.dir);  // an unreadable manifest is itself the error

  std::vector<std::unique_ptr<ShardReader>> shards;
  std::set<std::string> listed;
  int64_t total_rows = 0;
  for (const auto& entry : m.shards) {
    listed.insert(entry.file);
    ++report.shards;
    const fs::path path = o.dir / entry.file;
    try {
      auto shard = std::make_unique<ShardReader>(path);
      std::string problem = compare_with_manifest(*shard, entry, m);
      if (!problem.empty()) {
        report.problems.push_back(fmt::format("{}: disagrees with {}: {}", path.string(), kManifestName, problem));
      }
      total_rows += shard->count();
      shards.push_back(std::move(shard));
    } catch (const DataError& e) {
      report.problems.push_back(e.what());
    }
  }
  // Annotations (geometry, ground-truth textures) against the checksum written with them; those written before
  // annotations had one are counted in a single note (a legacy dataset would otherwise get a note per dataset).
  int64_t without_checksum = 0;
  std::string first_without;
  for (const auto& shard : shards) {
    try {
      shard->check_keys();  // the row keys (file names) against their CRC-32
    } catch (const DataError& e) {
      report.problems.push_back(e.what());
    }
    std::vector<std::string> names;
    try {
      names = shard->annotation_names();
    } catch (const DataError& e) {
      report.problems.push_back(e.what());
    }
    for (const std::string& name : names) {
      try {
        const std::optional<ShardReader::AnnotationChecksum> sum = shard->annotation_checksum(name);
        if (!sum) {
          if (without_checksum++ == 0) first_without = fmt::format("{} /{}", shard->path(), name);
          continue;
        }
        ++report.annotations_checked;
        if (sum->recorded != sum->stored) report.problems.push_back(annotation_mismatch(*shard, name, *sum));
      } catch (const DataError& e) {
        report.problems.push_back(e.what());
      }
    }
  }
  if (without_checksum > 0) {
    report.notes.push_back(fmt::format("{} annotation datasets have no checksum (written by an older facetex; the "
                                       "first: {}); not checked",
                                       without_checksum, first_without));
  }
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(o.dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.find(kPartialMarker) != std::string::npos) {
      report.notes.push_back(fmt::format("{}: leftover temporary file of an interrupted write (safe to delete)", name));
    } else if (name.rfind("shard-", 0) == 0 && name.size() > 3 && name.compare(name.size() - 3, 3, ".h5") == 0 &&
               listed.count(name) == 0) {
      report.notes.push_back(fmt::format("{}: shard file not listed in {}", name, kManifestName));
    }
  }

  // Every row of every readable shard, in parallel; problems are collected in row order per shard.
  struct Job {
    const ShardReader* shard;
    int64_t row;
  };
  std::vector<Job> jobs;
  jobs.reserve(static_cast<size_t>(total_rows));
  for (const auto& s : shards) {
    for (int64_t r = 0; r < s->count(); ++r) jobs.push_back({s.get(), r});
  }
  std::vector<std::string> row_problems(jobs.size());
  Progress progress("verify", static_cast<int64_t>(jobs.size()), "rows", "data");
  const int threads = o.threads > 0 ? o.threads : hardware_workers();
  std::vector<std::string> buffers(static_cast<size_t>(threads));
  for_each_index(static_cast<int64_t>(jobs.size()), threads, [&](int64_t i, int t) {
    const Job& j = jobs[static_cast<size_t>(i)];
    std::string& bytes = buffers[static_cast<size_t>(t)];
    try {
      j.shard->read_row(j.row, bytes);
      if (o.decode && j.shard->header().storage != Storage::kRaw) {
        const int r = static_cast<int>(j.shard->header().resolution);
        Image img = decode_image(bytes, j.shard->describe_row(j.row));
        FACETEX_CHECK_DATA(img.height == r && img.width == r, "{}: decodes to {}x{}, expected {}x{}",
                           j.shard->describe_row(j.row), img.width, img.height, r, r);
      }
    } catch (const DataError& e) {
      row_problems[static_cast<size_t>(i)] = e.what();
    }
    progress.advance();
  });
  progress.finish();
  report.rows_checked = static_cast<int64_t>(jobs.size());
  for (auto& p : row_problems) {
    if (p.empty()) continue;
    ++report.bad_rows;
    report.problems.push_back(std::move(p));
  }
  return report;
}

void require_intact_annotations(const Dataset& dataset, const std::vector<std::string>& names) {
  for (const auto& shard : dataset.shards()) {
    for (const std::string& name : names) {
      if (!shard->has_annotation(name)) continue;
      const std::optional<ShardReader::AnnotationChecksum> sum = shard->annotation_checksum(name);
      if (sum && sum->recorded != sum->stored) throw DataError(annotation_mismatch(*shard, name, *sum));
    }
  }
}

}  // namespace facetex::data
