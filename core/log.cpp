#include "core/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <vector>

#include "core/env_param.h"
#include "core/error.h"
#include "core/fatal_signal.h"

namespace facetex::log {
namespace {

struct State {
  std::mutex mu;
  Options options;
  bool initialised = false;
  std::vector<spdlog::sink_ptr> sinks;
  std::set<std::string> file_paths;
  std::vector<spdlog::sink_ptr> file_sinks;
  std::map<std::string, std::shared_ptr<spdlog::logger>> loggers;
  spdlog::level::level_enum default_level = spdlog::level::info;
  std::map<std::string, spdlog::level::level_enum> subsystem_levels;
};

State& state() {
  static State s;
  return s;
}

// Every subsystem that logs, as NCCL's fixed list of debug subsystems: `--log-level info,nosuch=debug` is refused
// instead of silently setting nothing, and a logger asked for under a name not listed here is a programming error.
const std::vector<std::string>& subsystems() {
  static const std::vector<std::string> names = {"cli",     "cluster",    "core",        "data", "metrics",
                                                 "models",  "monitoring", "reconstruct", "train"};
  return names;
}

bool is_subsystem(const std::string& name) {
  const auto& names = subsystems();
  return std::find(names.begin(), names.end(), name) != names.end();
}

spdlog::level::level_enum parse_level(const std::string& text) {
  auto level = spdlog::level::from_str(text);
  // spdlog maps unknown names to "off"; only accept "off" when it was asked for.
  FACETEX_CHECK_USAGE(level != spdlog::level::off || text == "off",
                      "unknown log level '{}' (trace, debug, info, warn, error, critical, off)", text);
  return level;
}

std::string pattern(int rank) { return fmt::format("%Y-%m-%d %H:%M:%S.%e r{} %n %^%l%$: %v", rank); }

spdlog::level::level_enum level_for(const State& s, const std::string& name) {
  auto level = s.default_level;
  auto it = s.subsystem_levels.find(name);
  if (it != s.subsystem_levels.end()) level = it->second;
  if (s.options.rank != 0 && !s.options.all_ranks && level < spdlog::level::warn) level = spdlog::level::warn;
  return level;
}

void apply(State& s, spdlog::logger& logger) {
  logger.set_level(level_for(s, logger.name()));
  // Every line reaches the files at once: a `tail -f log.txt` sees a running job, and a SIGKILL (preemption past
  // the grace period, the OOM killer) or a crash loses nothing already logged. Lines are few (per tick, per
  // progress interval), so the cost is nil.
  logger.flush_on(spdlog::level::trace);
}

void ensure_sinks(State& s) {
  if (!s.sinks.empty()) return;
  s.sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  s.sinks.back()->set_pattern(pattern(s.options.rank));
}

}  // namespace

void init(const Options& options) {
  set_fatal_signal_rank(options.rank);  // the crash report names the rank the log lines name
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.options = options;
  std::string spec = options.levels;
  std::string env = env_string("FACETEX_LOG_LEVEL", "");
  if (!env.empty()) spec = env;
  s.subsystem_levels.clear();
  s.default_level = spdlog::level::info;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos) {
      s.default_level = parse_level(item);
    } else {
      const std::string name = item.substr(0, eq);
      FACETEX_CHECK_USAGE(is_subsystem(name), "unknown log subsystem '{}' in '{}' (subsystems: {})", name, spec,
                          fmt::join(subsystems(), ", "));
      s.subsystem_levels[name] = parse_level(item.substr(eq + 1));
    }
  }
  ensure_sinks(s);
  for (auto& sink : s.sinks) sink->set_pattern(pattern(options.rank));
  for (auto& [name, logger] : s.loggers) apply(s, *logger);
  s.initialised = true;
}

void add_file_sink(const std::string& path) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.file_paths.insert(path).second) return;
  ensure_sinks(s);
  auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
  sink->set_pattern(pattern(s.options.rank));
  s.sinks.push_back(sink);
  s.file_sinks.push_back(sink);
  for (auto& [name, logger] : s.loggers) logger->sinks().push_back(sink);
}

void record_in_files(const std::string& subsystem, spdlog::level::level_enum level, const std::string& text) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.file_sinks.empty()) return;
  spdlog::logger files_only(subsystem, s.file_sinks.begin(), s.file_sinks.end());
  files_only.log(level, text);
  files_only.flush();
}

spdlog::logger& get(const std::string& subsystem) {
  FACETEX_CHECK_RUNTIME(is_subsystem(subsystem), "log subsystem '{}' is not in core/log.cpp's list", subsystem);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.loggers.find(subsystem);
  if (it != s.loggers.end()) return *it->second;
  ensure_sinks(s);
  auto logger = std::make_shared<spdlog::logger>(subsystem, s.sinks.begin(), s.sinks.end());
  apply(s, *logger);
  s.loggers.emplace(subsystem, logger);
  return *logger;
}

}  // namespace facetex::log
