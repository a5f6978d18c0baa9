#include "data/pack.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <regex>
#include <thread>

#include "core/atomic_file.h"
#include "core/crc32.h"
#include "core/digest.h"
#include "core/error.h"
#include "core/folder_lock.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/version.h"
#include "core/work_pool.h"
#include "data/image_source.h"
#include "data/shard_reader.h"
#include "data/shard_writer.h"
#include "monitoring/metrics.h"

namespace fs = std::filesystem;

namespace facetex::data {
namespace {

// One prepared row, or the reason its input was rejected.
struct Prepared {
  std::string payload, zlib_chunk;
  uint32_t crc = 0;
  std::string error;         // bad input (DataError): fail or skip per --on-corrupt
  std::exception_ptr fatal;  // anything else (out of memory, encoder failure): always stops the run
};

bool is_png_bytes(const std::string& b) { return b.size() >= 8 && b.compare(0, 8, "\x89PNG\r\n\x1a\n", 8) == 0; }
bool is_jpeg_bytes(const std::string& b) {
  return b.size() >= 3 && uint8_t(b[0]) == 0xFF && uint8_t(b[1]) == 0xD8 && uint8_t(b[2]) == 0xFF;
}

class Packer {
 public:
  Packer(const PackOptions& o, const ImageSource& src, int resolution)
      : o_(o), src_(src), resolution_(resolution), threads_(o.threads > 0 ? o.threads : hardware_workers()) {}

  Prepared prepare(int64_t input) const {
    Prepared p;
    const std::string where = src_.describe(input);
    try {
      std::string bytes = src_.read(input);
      Image img = decode_image(bytes, where);
      const bool exact = img.height == resolution_ && img.width == resolution_;
      const bool squarable = img.height == img.width || o_.square == SquarePolicy::kCenterCrop;
      FACETEX_CHECK_DATA(!auto_resolution_ || !squarable || std::min(img.height, img.width) == resolution_,
                         "{}: image is {}x{} but the collection's first image gave {}x{} (mixed sizes: pass "
                         "--resolution to resize every image to one size)",
                         where, img.width, img.height, resolution_, resolution_);
      // Same decoder, same pixels: a PNG/JPEG input that already has the target size is stored as-is, which
      // avoids re-encoding time and, for JPEG, a second generation of compression loss.
      if (exact && ((o_.storage == Storage::kPng && is_png_bytes(bytes)) ||
                    (o_.storage == Storage::kJpeg && is_jpeg_bytes(bytes)))) {
        p.payload = std::move(bytes);
      } else {
        Image fitted = fit_square(img, FitOptions{resolution_, o_.square, o_.allow_upscale}, where);
        switch (o_.storage) {
          case Storage::kRaw: p.payload.assign(fitted.rgb.begin(), fitted.rgb.end()); break;
          case Storage::kPng: p.payload = encode_png(fitted, o_.png_level); break;
          case Storage::kJpeg: p.payload = encode_jpeg(fitted, o_.jpeg_quality); break;
        }
      }
      p.crc = crc32(p.payload.data(), p.payload.size());
      if (o_.storage == Storage::kRaw && o_.deflate > 0) p.zlib_chunk = zlib_compress(p.payload, o_.deflate);
    } catch (const DataError& e) {
      p.error = e.what();
    } catch (...) {
      p.fatal = std::current_exception();
    }
    return p;
  }

  std::string digest(int64_t begin, int64_t end) const {
    Fnv64 f;
    f.add(fmt::format("v1 res={} storage={} deflate={} q={} png={} square={} up={} auto={} corrupt={}", resolution_,
                      storage_name(o_.storage), o_.deflate, o_.jpeg_quality, o_.png_level, int(o_.square),
                      o_.allow_upscale, auto_resolution_, int(o_.on_corrupt)));
    for (int64_t i = begin; i < end; ++i) {
      f.add(src_.key(i));
      f.add(src_.stamp(i));
    }
    return f.hex();
  }

  // Writes shard `index` covering inputs [begin, end). Returns its summary; rejected inputs go to `skipped`.
  ShardSummary write_shard(int64_t index, int64_t begin, int64_t end, const std::string& digest,
                           std::vector<SkippedInput>& skipped, Progress& progress) {
    ShardHeader header;
    header.storage = o_.storage;
    header.resolution = resolution_;
    header.count = 0;
    header.input_begin = begin;
    header.source_digest = digest;
    header.created_by = fmt::format("facetex {} data pack", FACETEX_VERSION);
    ShardWriter writer(o_.out / shard_file_name(index), header, o_.deflate);

    // Workers prepare inputs in parallel; this thread appends them in input order. The window bounds memory.
    const int64_t n = end - begin, window = 4 * int64_t(threads_);
    std::vector<std::optional<Prepared>> slots(static_cast<size_t>(n));
    std::mutex mu;
    std::condition_variable cv;
    int64_t next = 0, written = 0;
    bool abort = false;
    auto worker = [&] {
      for (;;) {
        int64_t i;
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return abort || next >= n || next < written + window; });
          if (abort || next >= n) return;
          i = next++;
        }
        Prepared p = prepare(begin + i);
        std::lock_guard<std::mutex> lock(mu);
        slots[static_cast<size_t>(i)] = std::move(p);
        cv.notify_all();
      }
    };
    std::vector<std::thread> pool;
    for (int t = 0; t < threads_; ++t) pool.emplace_back(worker);
    auto stop_pool = [&] {
      {
        std::lock_guard<std::mutex> lock(mu);
        abort = true;
      }
      cv.notify_all();
      for (auto& t : pool) t.join();
      pool.clear();
    };
    try {
      for (int64_t i = 0; i < n; ++i) {
        Prepared p;
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return slots[static_cast<size_t>(i)].has_value(); });
          p = std::move(*slots[static_cast<size_t>(i)]);
          slots[static_cast<size_t>(i)].reset();
          written = i + 1;
        }
        cv.notify_all();
        if (p.fatal) std::rethrow_exception(p.fatal);
        if (!p.error.empty()) {
          if (o_.on_corrupt == OnCorrupt::kFail) throw DataError(p.error);
          log::get("data").warn("skipping input (--on-corrupt=skip): {}", p.error);
          skipped.push_back({begin + i, src_.key(begin + i), p.error});
          metrics::counter("facetex_pack_skipped_inputs_total", "Inputs left out of the shards (--on-corrupt=skip)")
              .inc();
        } else {
          writer.append(src_.key(begin + i), p.payload, p.crc, p.zlib_chunk);
        }
        progress.advance();
      }
    } catch (...) {
      stop_pool();
      throw;  // the writer's temporary file is removed; shards written before stay complete
    }
    stop_pool();
    return writer.commit();
  }

  void set_auto_resolution(bool v) { auto_resolution_ = v; }

 private:
  const PackOptions& o_;
  const ImageSource& src_;
  int resolution_;
  int threads_;
  bool auto_resolution_ = false;
};

// Shard files of an earlier run past this input list's last slot (the input list shrank). No manifest written from
// now on describes them, so they go once the new manifest is written: left in place, a reader that globs shard-*.h5
// or a later merge of an older split would take them for part of this dataset.
std::vector<fs::path> shards_past(const fs::path& dir, int64_t num_slots) {
  static const std::regex pattern(R"(shard-(\d+)\.h5)");
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::smatch match;
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, match, pattern) && std::stoll(match[1]) >= num_slots) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Whether a manifest in `dir` (dataset.json or a part manifest) lists one of `files`: removing it then changes a
// finished dataset. An unreadable manifest counts as listing them (it cannot say it does not).
bool listed_in_a_manifest(const fs::path& dir, const std::vector<fs::path>& files) {
  if (files.empty()) return false;
  static const std::regex manifest_name(R"(dataset(\.part-\d+-of-\d+)?\.json)");
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!std::regex_match(e.path().filename().string(), manifest_name)) continue;
    try {
      for (const ShardEntry& entry : read_manifest(e.path()).shards) {
        for (const fs::path& f : files) {
          if (entry.file == f.filename().string()) return true;
        }
      }
    } catch (const DataError&) {
      return true;
    }
  }
  return false;
}

// An existing shard is reused when it opens cleanly and records the same digest and input range.
std::optional<ShardSummary> reusable(const fs::path& path, const std::string& digest, int64_t begin) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  try {
    ShardReader reader(path);
    if (reader.header().source_digest != digest || reader.header().input_begin != begin) return std::nullopt;
    return summarize_shard(path);
  } catch (const Error&) {
    return std::nullopt;
  }
}

}  // namespace

PackResult pack_images(const PackOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  auto& log = log::get("data");
  FACETEX_CHECK_USAGE(o.shard_size >= 1, "--shard-size must be >= 1, got {}", o.shard_size);
  FACETEX_CHECK_USAGE(o.resolution >= 0 && o.resolution <= 16384,
                      "--resolution must be in 0..16384 (0: the first image's size), got {}", o.resolution);
  FACETEX_CHECK_USAGE(o.deflate >= 0 && o.deflate <= 9, "--deflate must be 0..9, got {}", o.deflate);
  FACETEX_CHECK_USAGE(o.jpeg_quality >= 1 && o.jpeg_quality <= 100, "--jpeg-quality must be 1..100");
  FACETEX_CHECK_USAGE(o.deflate == 0 || o.storage == Storage::kRaw, "--deflate applies to raw storage only");
  auto src = open_image_source(o.images);
  if (src->ignored_files() > 0) log.info("{}: ignoring {} files that are not .png/.jpg/.jpeg", o.images, src->ignored_files());

  int resolution = o.resolution;
  const bool auto_resolution = resolution == 0;
  if (auto_resolution) {
    // The first input that decodes; with --on-corrupt skip, unreadable ones before it are skipped (and listed in the
    // manifest by their shard) rather than ending the job.
    std::optional<Image> first;
    int64_t at = 0;
    for (; at < src->size() && !first; ++at) {
      try {
        first = decode_image(src->read(at), src->describe(at));
      } catch (const DataError&) {
        if (o.on_corrupt != OnCorrupt::kSkip) throw;
      }
    }
    FACETEX_CHECK_DATA(first.has_value(), "{}: no input decodes, so none gives the resolution (--resolution sets it)",
                       o.images);
    const std::string from = src->describe(at - 1);
    FACETEX_CHECK_DATA(first->height == first->width || o.square == SquarePolicy::kCenterCrop,
                       "{}: image is {}x{}, not square (pass --square center-crop)", from, first->width, first->height);
    resolution = std::min(first->height, first->width);
    log.info("resolution {} (from {})", resolution, from);
  }

  std::error_code ec;
  FACETEX_CHECK_USAGE(!fs::exists(o.out, ec) || fs::is_directory(o.out, ec), "--out {}: not a folder", o.out.string());
  fs::create_directories(o.out, ec);
  FACETEX_CHECK_RUNTIME(!ec, "{}: cannot create output folder: {}", o.out.string(), ec.message());
  // Held to the end: a second pack of the same part into this folder would replace this one's shards.
  const std::string manifest_name = o.part.whole() ? std::string(kManifestName) : part_manifest_name(o.part);
  const FolderLock lock(o.out, manifest_name, fmt::format("facetex data pack ({})", manifest_name));

  const int64_t total = src->size();
  const int64_t num_slots = (total + o.shard_size - 1) / o.shard_size;
  const Range mine = part_range(num_slots, o.part);
  const int64_t my_inputs = std::min(total, mine.end * o.shard_size) - std::min(total, mine.begin * o.shard_size);
  log.info("packing {} of {} inputs from {} into shards {}..{} of {} ({} storage, {}x{}){}", my_inputs, total,
           o.images, mine.begin, mine.end - 1, num_slots, storage_name(o.storage), resolution, resolution,
           o.part.whole() ? "" : fmt::format(", part {}", o.part.str()));

  Packer packer(o, *src, resolution);
  packer.set_auto_resolution(auto_resolution);
  PackResult result;
  Manifest& m = result.manifest;
  m.resolution = resolution;
  m.storage = o.storage;
  m.shard_size = o.shard_size;
  m.total_inputs = total;
  m.source = o.images;
  m.created_by = fmt::format("facetex {} data pack", FACETEX_VERSION);
  if (!o.part.whole()) m.part = o.part;

  // Which shards are complete from an earlier run? A finished manifest must not end up describing other shards.
  struct Slot {
    int64_t index, begin, end;
    std::string digest;
    std::optional<ShardSummary> existing;
  };
  std::vector<Slot> slots;
  bool rewrites = false;
  for (int64_t k = mine.begin; k < mine.end; ++k) {
    Slot s{k, k * o.shard_size, std::min(total, (k + 1) * o.shard_size), "", std::nullopt};
    s.digest = packer.digest(s.begin, s.end);
    s.existing = reusable(o.out / shard_file_name(k), s.digest, s.begin);
    // Writing a missing shard restores what a manifest describes; replacing a different one changes it.
    rewrites |= !s.existing.has_value() && fs::exists(o.out / shard_file_name(k), ec);
    slots.push_back(std::move(s));
  }
  // The part that owns the last slot (or a whole run) answers for shards past it. Removing one that a manifest lists
  // changes a finished dataset; an unlisted one (left by a run stopped before it removed them) just goes.
  const std::vector<fs::path> stale = mine.end == num_slots ? shards_past(o.out, num_slots) : std::vector<fs::path>{};
  rewrites |= listed_in_a_manifest(o.out, stale);
  const fs::path manifest_path = o.out / manifest_name;
  unlist_before_rewrite(o.out, manifest_path, rewrites, o.overwrite, "dataset made from other inputs or settings");

  Progress progress("pack", my_inputs, "images", "data");
  for (const Slot& slot : slots) {
    const std::string name = shard_file_name(slot.index);
    std::vector<SkippedInput> skipped;
    ShardSummary summary;
    if (slot.existing) {
      log.info("{}: complete from an earlier run, keeping it", name);
      summary = *slot.existing;
      ++result.shards_reused;
      progress.advance(slot.end - slot.begin);
    } else {
      remove_partial_files(o.out, name);
      summary = packer.write_shard(slot.index, slot.begin, slot.end, slot.digest, skipped, progress);
      ++result.shards_written;
      result.rows_written += summary.count;
      metrics::counter("facetex_pack_shards_total", "Shards written by data pack").inc();
    }
    m.shards.push_back({summary.file, summary.count, summary.bytes, summary.rows_crc32, slot.begin, slot.end});
    m.count += summary.count;
    m.skipped.insert(m.skipped.end(), skipped.begin(), skipped.end());
  }
  progress.finish();
  // Inputs skipped in a reused shard are those of its range that are not in it.
  for (const auto& s : m.shards) {
    if (s.count == s.input_end - s.input_begin) continue;
    bool listed = std::any_of(m.skipped.begin(), m.skipped.end(),
                              [&](const SkippedInput& x) { return x.input >= s.input_begin && x.input < s.input_end; });
    if (!listed) {
      ShardReader reader(o.out / s.file);
      std::vector<std::string> keys;
      for (int64_t r = 0; r < reader.count(); ++r) keys.push_back(reader.key(r));
      for (int64_t i = s.input_begin; i < s.input_end; ++i) {
        if (std::find(keys.begin(), keys.end(), src->key(i)) == keys.end()) {
          m.skipped.push_back({i, src->key(i), "skipped in an earlier run"});
        }
      }
    }
  }
  result.manifest_path = manifest_path;
  if (o.part.whole()) require_some_rows(m, o.out);  // a part may be empty; its merge is checked
  write_manifest(result.manifest_path, m);
  if (o.part.whole()) remove_part_manifests(o.out);
  for (const fs::path& file : stale) {
    log.info("{}: past the last of {} shards (an earlier run had more inputs), removing it", file.filename().string(),
             num_slots);
    if (!fs::remove(file, ec) && ec) log.warn("{}: cannot remove it: {}", file.string(), ec.message());
    remove_partial_files(o.out, file.filename().string());
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace facetex::data
