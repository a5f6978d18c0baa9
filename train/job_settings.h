// The settings a batch job's outputs depend on, as a JSON object, and what the job does with them on a re-run: a
// job that finds outputs made with other settings must not take them as its own (it would skip them as finished).
// `reconstruct` records a digest per item (result.json, manifest.jsonl); `generate` records the settings once per
// output folder (generate.json), claimed before anything is written. Files enter as core/digest.h's file_stamp.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <filesystem>
#include <string>

namespace facetex::train {

// FNV-1a of the object's canonical text (keys sorted).
std::string job_settings_digest(const nlohmann::json& settings);

// "steps: 1000 then, 200 now; checkpoint: "a.h5 …" then, "b.h5 …" now" for each key of `now` whose value differs
// from `then`'s (absent there: "(not recorded)"). Empty when they agree.
std::string job_settings_difference(const nlohmann::json& then, const nlohmann::json& now);

// Claims `record` (a JSON file {"format": format, "settings": {...}}) for a job with `settings`: written atomically
// when absent; when present, its settings must equal these, else UsageError "<record>: the outputs in <folder> were
// made with other settings — <difference>; <remedy>". A record that is not such JSON is a DataError naming it.
// Parts of one job (Slurm array tasks) claim the same record with the same settings; the atomic write makes their
// race harmless.
void claim_output_settings(const std::filesystem::path& record, const std::string& format,
                           const nlohmann::json& settings, const std::string& remedy);

}  // namespace facetex::train
