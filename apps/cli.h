// The `facetex` command line: CLI11 subcommands whose options are bound to config keys, so every setting can come
// from a TOML file (--config), a --set key=value override, or a flag — in that order of precedence.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "monitoring/exporter.h"

namespace facetex::app {

class Cli {
 public:
  Cli();
  CLI::App& app() { return app_; }

  // An option whose value is stored under config `key` when given. `fallback` is only shown in --help.
  // A required option may also come from the config file or --set: it is checked after they are merged.
  CLI::Option* option(CLI::App* cmd, const std::string& flags, const std::string& key, const std::string& help,
                      const std::string& fallback = "");
  CLI::Option* required(CLI::App* cmd, const std::string& flags, const std::string& key, const std::string& help);
  // A boolean flag stored as `key = true` when given.
  CLI::Option* flag(CLI::App* cmd, const std::string& flags, const std::string& key, const std::string& help);
  // The job a subcommand runs once parsing (and config resolution) succeeded; returns the exit code.
  void on_run(CLI::App* cmd, std::function<int(const Config&)> job);

  // Parses argv and runs the selected job, turning every error into one line and a documented exit code.
  int main(int argc, char** argv);

 private:
  Config resolve() const;
  int run_job(std::unique_ptr<monitoring::Exporter>& exporter);

  CLI::App app_;
  std::string config_file_, log_level_ = "info";
  std::vector<std::string> sets_;
  bool log_all_ranks_ = false;
  int metrics_port_ = -1;  // --metrics-port; -1 = FACETEX_METRICS_PORT
  std::map<std::string, std::string> values_;                 // key -> raw text from the flag
  struct Bound {
    CLI::App* cmd;
    CLI::Option* opt;
    std::string key;
  };
  std::vector<Bound> bound_;  // flag -> key, per (sub)command
  void check_config_keys(const std::vector<std::string>& file_keys) const;
  std::vector<std::pair<CLI::App*, CLI::Option*>> required_;
  std::function<int(const Config&)> job_;
};

// The folder scripts/fetch_assets.sh fills (dlib's predictor, face-api, the canonical mesh): config `key` (an
// --assets flag) when set, else $FACETEX_ASSETS, else <source>/assets — the same for every command.
std::string assets_root(const Config& c, const std::string& key);
// A --device value: "cpu", "cuda" or "cuda:i" (when `indexed`); a CUDA choice needs CUDA and device i to exist.
// Usage errors name the flag; the text is returned as given.
std::string device_choice(const Config& c, const std::string& key, bool indexed);
// dlib's 68-point predictor inside that folder.
inline constexpr const char* kShapePredictorInAssets = "dlib/shape_predictor_68_face_landmarks.dat";

// Subcommand groups (one file each).
void add_data_commands(Cli& cli);
void add_convert_commands(Cli& cli);
void add_face_commands(Cli& cli);
void add_train_commands(Cli& cli);
void add_metrics_commands(Cli& cli);
void add_generate_commands(Cli& cli);
void add_reconstruct_command(Cli& cli);
void add_version_command(Cli& cli);

}  // namespace facetex::app
