#include "data/manifest.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <regex>
#include <set>
#include <type_traits>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "data/dataset.h"
#include "data/shard_reader.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace facetex::data {
namespace {

std::string hex32(uint32_t v) { return fmt::format("{:#010x}", v); }

template <typename T>
T field(const json& j, const char* name, const std::string& where) {
  FACETEX_CHECK_DATA(j.contains(name), "{}: missing field '{}'", where, name);
  if constexpr (std::is_integral_v<T>) {  // 10.5 or "10" is not a count (get<> would truncate or refuse later)
    FACETEX_CHECK_DATA(j.at(name).is_number_integer(), "{}: field '{}' must be an integer, got {}", where, name,
                       j.at(name).dump());
  }
  try {
    return j.at(name).get<T>();
  } catch (const json::exception&) {
    throw DataError(fmt::format("{}: field '{}' has the wrong type", where, name));
  }
}

json to_json(const Manifest& m) {
  json shards = json::array();
  for (const auto& s : m.shards) {
    shards.push_back({{"file", s.file},
                      {"count", s.count},
                      {"bytes", s.bytes},
                      {"rows_crc32", hex32(s.rows_crc32)},
                      {"input_begin", s.input_begin},
                      {"input_end", s.input_end}});
  }
  json skipped = json::array();
  for (const auto& s : m.skipped) skipped.push_back({{"input", s.input}, {"key", s.key}, {"reason", s.reason}});
  json j = {{"format", kManifestFormat},
            {"version", kManifestVersion},
            {"resolution", m.resolution},
            {"channels", m.channels},
            {"storage", storage_name(m.storage)},
            {"count", m.count},
            {"shard_size", m.shard_size},
            {"total_inputs", m.total_inputs},
            {"source", m.source},
            {"created_by", m.created_by},
            {"shards", shards},
            {"skipped", skipped}};
  if (m.part) j["part"] = m.part->str();
  return j;
}

bool is_part_manifest_name(const std::string& file_name) {
  static const std::regex pattern(R"(dataset\.part-\d+-of-\d+\.json)");
  return std::regex_match(file_name, pattern);
}

}  // namespace

std::string part_manifest_name(const Part& part) {
  return fmt::format("dataset.part-{:05d}-of-{:05d}.json", part.index, part.count);
}

Manifest parse_manifest(const fs::path& file);

Manifest read_manifest(const fs::path& file) {
  try {
    return parse_manifest(file);
  } catch (const nlohmann::json::exception& e) {
    throw DataError(fmt::format("{}: malformed manifest: {}", file.string(), e.what()));
  }
}

Manifest parse_manifest(const fs::path& file) {
  const std::string where = file.string();
  json j;
  try {
    j = json::parse(read_file(file));
  } catch (const json::parse_error& e) {
    throw DataError(fmt::format("{}: not valid JSON: {}", where, e.what()));
  }
  FACETEX_CHECK_DATA(j.is_object() && j.value("format", "") == kManifestFormat,
                     "{}: not a facetex dataset manifest (format != '{}')", where, kManifestFormat);
  const auto version = field<int64_t>(j, "version", where);
  FACETEX_CHECK_DATA(version >= 1 && version <= kManifestVersion, "{}: manifest version {} is not supported", where,
                     version);
  Manifest m;
  m.resolution = field<int64_t>(j, "resolution", where);
  m.channels = field<int64_t>(j, "channels", where);
  try {
    m.storage = parse_storage(field<std::string>(j, "storage", where));
  } catch (const UsageError& e) {
    throw DataError(fmt::format("{}: {}", where, e.what()));
  }
  m.count = field<int64_t>(j, "count", where);
  m.shard_size = field<int64_t>(j, "shard_size", where);
  m.total_inputs = field<int64_t>(j, "total_inputs", where);
  m.source = j.value("source", "");
  m.created_by = j.value("created_by", "");
  if (j.contains("part")) {
    try {
      m.part = parse_part(field<std::string>(j, "part", where));
    } catch (const UsageError& e) {
      throw DataError(fmt::format("{}: field 'part': {}", where, e.what()));
    }
  }
  // A file named as a part manifest is checked as one: without this its first shard "starts at the wrong input".
  FACETEX_CHECK_DATA(m.part.has_value() || !is_part_manifest_name(file.filename().string()),
                     "{}: part manifest without a 'part' field", where);
  int64_t sum = 0;
  for (const auto& s : field<json>(j, "shards", where)) {
    const std::string w = fmt::format("{} (shards[{}])", where, m.shards.size());
    ShardEntry e;
    e.file = field<std::string>(s, "file", w);
    e.count = field<int64_t>(s, "count", w);
    e.bytes = field<int64_t>(s, "bytes", w);
    const std::string digest = field<std::string>(s, "rows_crc32", w);
    char* end = nullptr;
    const unsigned long parsed = std::strtoul(digest.c_str(), &end, 16);
    FACETEX_CHECK_DATA(!digest.empty() && *end == '\0' && parsed <= 0xFFFFFFFFul, "{}: rows_crc32 '{}' is not a hex number",
                       w, digest);
    e.rows_crc32 = static_cast<uint32_t>(parsed);
    e.input_begin = field<int64_t>(s, "input_begin", w);
    e.input_end = field<int64_t>(s, "input_end", w);
    FACETEX_CHECK_DATA(e.file.find('/') == std::string::npos && !e.file.empty(), "{}: invalid shard file name '{}'", w,
                       e.file);
    FACETEX_CHECK_DATA(e.count >= 0 && e.count <= e.input_end - e.input_begin, "{}: count {} does not fit inputs [{}, {})",
                       w, e.count, e.input_begin, e.input_end);
    sum += e.count;
    m.shards.push_back(e);
  }
  FACETEX_CHECK_DATA(sum == m.count, "{}: shards hold {} rows but count is {}", where, sum, m.count);
  FACETEX_CHECK_DATA(m.channels == kChannels, "{}: channels {} (facetex shards hold RGB: {})", where, m.channels,
                     kChannels);
  if (j.contains("skipped")) {
    FACETEX_CHECK_DATA(j.at("skipped").is_array(), "{}: field 'skipped' must be a list", where);
    for (const auto& s : j.at("skipped")) {
      const std::string w = fmt::format("{} (skipped[{}])", where, m.skipped.size());
      FACETEX_CHECK_DATA(s.is_object(), "{}: not an object", w);
      m.skipped.push_back({s.contains("input") ? field<int64_t>(s, "input", w) : -1, s.value("key", ""),
                           s.value("reason", "")});
    }
  }
  // The shards list each input range once, in order, inside [0, total_inputs): a repeated or reordered entry would
  // be read twice, and a range missing from the list (no skipped input in it) would lose its images unnoticed.
  std::set<std::string> files;
  int64_t covered = m.part ? -1 : 0;  // a part manifest starts at its own first range
  for (const ShardEntry& e : m.shards) {
    FACETEX_CHECK_DATA(files.insert(e.file).second, "{}: shard {} is listed twice", where, e.file);
    FACETEX_CHECK_DATA(e.input_begin >= 0 && e.input_end <= m.total_inputs,
                       "{}: {} covers inputs [{}, {}) outside [0, total_inputs {})", where, e.file, e.input_begin,
                       e.input_end, m.total_inputs);
    if (covered >= 0 && e.input_begin != covered) {
      const bool explained = std::any_of(m.skipped.begin(), m.skipped.end(), [&](const SkippedInput& x) {
        return x.input >= covered && x.input < e.input_begin;
      });
      FACETEX_CHECK_DATA(e.input_begin > covered && explained,
                         "{}: {} starts at input {}, expected {} (shards out of order, overlapping, or a range missing "
                         "with no skipped input listed in it)",
                         where, e.file, e.input_begin, covered);
    }
    covered = e.input_end;
  }
  if (!m.part && covered != m.total_inputs) {
    const int64_t end = covered;
    const bool explained = std::any_of(m.skipped.begin(), m.skipped.end(),
                                       [&](const SkippedInput& x) { return x.input >= end && x.input < m.total_inputs; });
    FACETEX_CHECK_DATA(end < m.total_inputs && explained,
                       "{}: the shards cover inputs [0, {}) but total_inputs is {} (no skipped input listed after {})",
                       where, end, m.total_inputs, end);
  }
  return m;
}

Manifest read_dataset_manifest(const fs::path& dir) {
  std::error_code ec;
  FACETEX_CHECK_DATA(fs::is_directory(dir, ec), "{}: no such dataset folder", dir.string());
  const fs::path manifest_path = dir / kManifestName;
  FACETEX_CHECK_DATA(fs::exists(manifest_path, ec),
                     "{}: no {} (after `data pack --part`, run `facetex data merge-manifest {}`)", dir.string(),
                     kManifestName, dir.string());
  Manifest m = read_manifest(manifest_path);
  FACETEX_CHECK_DATA(!m.part.has_value(), "{}: is a part manifest; merge the parts first", manifest_path.string());
  return m;
}

void require_some_rows(const Manifest& m, const fs::path& where) {
  if (m.count > 0 || m.total_inputs == 0) return;
  const std::string first =
      m.skipped.empty() ? std::string() : fmt::format("; the first, {}: {}", m.skipped[0].key, m.skipped[0].reason);
  throw DataError(fmt::format("{}: no rows: none of the {} inputs made it into the dataset ({} skipped{}); no {} written",
                              where.string(), m.total_inputs, m.skipped.size(), first, kManifestName));
}

void write_manifest(const fs::path& file, const Manifest& manifest) {
  write_file_atomic(file, to_json(manifest).dump(2) + "\n");
}

void unlist_before_rewrite(const fs::path& dir, const fs::path& own, bool rewrites, bool overwrite,
                           const std::string& what) {
  std::error_code ec;
  for (const fs::path& finished : {dir / kManifestName, own}) {
    if (!rewrites || !fs::exists(finished, ec)) continue;
    FACETEX_CHECK_USAGE(overwrite,
                        "{} already describes a finished {}; pass --overwrite to replace it, or choose another --out",
                        finished.string(), what);
    log::get("data").warn("--overwrite: removing {} before rewriting shards", finished.string());
    fs::remove(finished, ec);
  }
}

void remove_part_manifests(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!is_part_manifest_name(e.path().filename().string())) continue;
    log::get("data").info("{}: a part manifest of an earlier split, replaced by {}; removing it",
                          e.path().filename().string(), kManifestName);
    fs::remove(e.path(), ec);
  }
}

Manifest merge_part_manifests(const fs::path& dir) {
  std::error_code ec;
  FACETEX_CHECK_DATA(fs::is_directory(dir, ec), "{}: {}", dir.string(),
                     fs::exists(dir, ec) ? "not a folder" : "no such folder");
  const std::regex pattern(R"(dataset\.part-(\d+)-of-(\d+)\.json)");
  std::map<int64_t, std::pair<fs::path, Manifest>> parts;
  int64_t total_parts = -1;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::smatch match;
    const std::string name = entry.path().filename().string();
    if (!std::regex_match(name, match, pattern)) continue;
    Manifest m = read_manifest(entry.path());  // names a missing 'part' field (the file name says it is a part)
    FACETEX_CHECK_DATA(m.part->index == std::stoll(match[1]) && m.part->count == std::stoll(match[2]),
                       "{}: file name says part {}/{} but the manifest says {}", entry.path().string(), match[1].str(),
                       match[2].str(), m.part->str());
    FACETEX_CHECK_DATA(total_parts < 0 || total_parts == m.part->count,
                       "{}: part manifests of different splits (of {} and of {}) in one folder", dir.string(),
                       total_parts, m.part->count);
    total_parts = m.part->count;
    // One file per part, under the name the part's task writes: a copy under another spelling
    // (dataset.part-1-of-3.json) would otherwise be merged in place of the real one, depending on directory order.
    const std::string canonical = part_manifest_name(*m.part);
    FACETEX_CHECK_DATA(name == canonical, "{}: a manifest of part {} that its task did not write (it writes {}); remove "
                       "the stray file", entry.path().string(), m.part->str(), canonical);
    parts.emplace(m.part->index, std::make_pair(entry.path(), std::move(m)));
  }
  FACETEX_CHECK_DATA(!parts.empty(), "{}: no dataset.part-*-of-*.json manifests to merge", dir.string());
  for (int64_t i = 0; i < total_parts; ++i) {
    FACETEX_CHECK_DATA(parts.count(i) == 1, "{}: part {}/{} is missing ({} not found); run that array task again",
                       dir.string(), i, total_parts, part_manifest_name(Part{i, total_parts}));
  }
  Manifest out;
  const Manifest& first = parts.begin()->second.second;
  out.resolution = first.resolution;
  out.channels = first.channels;
  out.storage = first.storage;
  out.shard_size = first.shard_size;
  out.total_inputs = first.total_inputs;
  out.source = first.source;
  out.created_by = first.created_by;
  for (auto& [index, pm] : parts) {
    const auto& [path, m] = pm;
    // Parts of one job agree on everything but their shards; parts of two jobs in one folder do not.
    const auto same = [&](const char* field, const auto& mine, const auto& part0) {
      FACETEX_CHECK_DATA(mine == part0, "{}: {} {} differs from part 0's {} (parts of different jobs in one folder?)",
                         path.string(), field, mine, part0);
    };
    same("resolution", m.resolution, out.resolution);
    same("storage", storage_name(m.storage), storage_name(out.storage));
    same("shard_size", m.shard_size, out.shard_size);
    same("total_inputs", m.total_inputs, out.total_inputs);
    same("source", m.source, out.source);
    out.shards.insert(out.shards.end(), m.shards.begin(), m.shards.end());
    out.skipped.insert(out.skipped.end(), m.skipped.begin(), m.skipped.end());
    out.count += m.count;
  }
  std::sort(out.shards.begin(), out.shards.end(),
            [](const ShardEntry& a, const ShardEntry& b) { return a.input_begin < b.input_begin; });
  int64_t expect = 0;
  for (const auto& s : out.shards) {
    FACETEX_CHECK_DATA(s.input_begin == expect, "{}: shards do not tile the inputs: {} starts at input {}, expected {}",
                       dir.string(), s.file, s.input_begin, expect);
    expect = s.input_end;
  }
  FACETEX_CHECK_DATA(expect == out.total_inputs, "{}: shards cover inputs [0, {}) but there are {} inputs",
                     dir.string(), expect, out.total_inputs);
  require_some_rows(out, dir);
  // The shards themselves: each listed one is there and is the one its part wrote (a part manifest left from an
  // earlier split, or a shard removed since, is named here rather than by the first reader of dataset.json).
  for (const ShardEntry& s : out.shards) {
    const fs::path file = dir / s.file;
    FACETEX_CHECK_DATA(fs::is_regular_file(file), "{}: listed by a part manifest but missing; run that part again",
                       file.string());
    const std::string problem = compare_with_manifest(ShardReader(file), s, out);
    FACETEX_CHECK_DATA(problem.empty(), "{}: disagrees with its part manifest: {} (a manifest of an earlier job?)",
                       file.string(), problem);
  }
  write_manifest(dir / kManifestName, out);
  return out;
}

}  // namespace facetex::data
