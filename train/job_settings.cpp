#include "train/job_settings.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

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

void claim_output_settings(const fs::path& record, const std::string& format, const json& settings,
                           const std::string& remedy) {
  if (fs::exists(record)) {
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
    return;
  }
  write_file_atomic(record, json{{"format", format}, {"settings", settings}}.dump(2) + "\n");
}

}  // namespace facetex::train
