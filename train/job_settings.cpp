#include "train/job_settings.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "core/atomic_file.h"
#include "core/digest.h"
#include "core/error.h"

namespace facetex::train {

using json = nlohmann::json;
namespace fs = std::filesystem;

std::string job_settings_digest(const json& settings) {
  Fnv64 f;
  f.add(settings.dump());
  return f.hex();
}

std::string job_settings_difference(const json& then, const json& now) {
  std::string text;
  for (const auto& [key, value] : now.items()) {
    const json old = then.is_object() && then.contains(key) ? then.at(key) : json("(not recorded)");
    if (old == value) continue;
    text += fmt::format("{}{}: {} then, {} now", text.empty() ? "" : "; ", key, old.dump(), value.dump());
  }
  return text;
}

namespace {

// Refuses `record` unless it holds `settings` (its own format).
void check_recorded_settings(const fs::path& record, const std::string& format, const json& settings,
                             const std::string& remedy) {
  json recorded;
  try {
    recorded = json::parse(read_file(record));
  } catch (const std::exception& e) {
    throw DataError(fmt::format("{}: not a settings record ({}); remove it if the outputs beside it are yours",
                                record.string(), e.what()));
  }
  FACETEX_CHECK_DATA(recorded.is_object() && recorded.value("format", "") == format && recorded.contains("settings"),
                     "{}: not a {} settings record", record.string(), format);
  const std::string difference = job_settings_difference(recorded.at("settings"), settings);
  FACETEX_CHECK_USAGE(difference.empty(), "{}: the outputs in {} were made with other settings — {}; {}",
                      record.string(), record.parent_path().string(), difference, remedy);
}

}  // namespace

void claim_output_settings(const fs::path& record, const std::string& format, const json& settings,
                           const std::string& remedy) {
  if (fs::exists(record)) return check_recorded_settings(record, format, settings, remedy);
  // Claimed exclusively: a hard link of a complete file fails when the record exists (a rename would replace it),
  // so of two jobs started together with other settings one is refused instead of both passing the check.
  static std::atomic<uint64_t> claims{0};
  const fs::path staged = record.string() + fmt::format("{}claim-{}-{}", kPartialMarker, ::getpid(), claims++);
  write_file_atomic(staged, json{{"format", format}, {"settings", settings}}.dump(2) + "\n");
  const int linked = ::link(staged.c_str(), record.c_str());
  const int err = errno;
  std::error_code ec;
  fs::remove(staged, ec);
  if (linked == 0) return;
  FACETEX_CHECK_RUNTIME(err == EEXIST, "{}: cannot record the job's settings: {}", record.string(), std::strerror(err));
  check_recorded_settings(record, format, settings, remedy);  // another job claimed it first
}

}  // namespace facetex::train
