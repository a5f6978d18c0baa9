// Per-subsystem logging on spdlog (NCCL's INFO(NCCL_INIT, ...) idea): one named logger per subsystem
// ("cli", "data", "cluster", "train", "monitoring", ...), all sharing one sink set and a rank-prefixed pattern.
//
// Levels come from --log-level or FACETEX_LOG_LEVEL, e.g. "info" or "info,data=debug,cluster=trace".
// Ranks other than 0 log warnings and errors only, unless --log-all-ranks.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace facetex::log {

struct Options {
  int rank = 0;
  bool all_ranks = false;
  std::string levels = "info";  // "LEVEL[,SUBSYS=LEVEL...]"
};

// Configures every logger (existing and future). Safe to call again (e.g. once the rank is known).
void init(const Options& options);

// Adds a file sink (e.g. RUN_DIR/log.txt) that receives the same lines as stderr. Idempotent per path.
// Call it at start-up, before other threads log (spdlog's sink lists are not guarded against concurrent change).
void add_file_sink(const std::string& path);

// Writes one line to the file sinks only (the job's final error line, already printed on stderr in its own form).
void record_in_files(const std::string& subsystem, spdlog::level::level_enum level, const std::string& text);

// The logger of one subsystem; created on first use, cheap to call afterwards (cache it in a static).
spdlog::logger& get(const std::string& subsystem);

}  // namespace facetex::log
