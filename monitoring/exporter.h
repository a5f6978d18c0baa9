// Serving and pushing the metrics registry (DESIGN.md §8). One Exporter per process, owned by the CLI:
//   - pull: an HTTP /metrics endpoint on FACETEX_METRICS_PORT + local rank (prometheus-cpp's Exposer);
//   - push: at the end of the command (success, failure or preemption) the registry is pushed to the Pushgateway
//     named by FACETEX_PUSHGATEWAY, grouped by job name, Slurm job id, array task id and rank;
//   - file: FACETEX_METRICS_FILE gets the final exposition text at exit (node_exporter textfile-collector style,
//     and what tests read when no Prometheus is around).
// It also registers the process-level families: facetex_up, facetex_build_info, facetex_job_info,
// facetex_job_start_time_seconds, facetex_job_end_time_seconds and facetex_job_exit_code.
//
// Without prometheus-cpp (FACETEX_HAVE_PROMETHEUS unset) the registry still counts and the metrics file still works;
// asking for HTTP or push logs once that metrics export is unavailable in this build.
#pragma once

#include <memory>
#include <string>

#include "monitoring/metrics.h"

namespace facetex::monitoring {

// Who this process is: the CLI fills it from cluster::discover_world() (monitoring does not depend on cluster/).
struct ProcessInfo {
  int rank = 0;
  int local_rank = 0;
  std::string node;     // host name
  std::string command;  // the subcommand path, e.g. "train" or "data pack"
};

struct ExporterOptions {
  bool serve = false;              // HTTP /metrics endpoint
  int port = 0;                    // with serve: the port (0 = any free port, for tests)
  std::string bind = "127.0.0.1";  // listen address (0.0.0.0 for a cluster-wide Prometheus)
  std::string pushgateway;         // "host:port" (or "http://host:port"); empty = no push
  std::string push_job;            // Pushgateway job name (grouping key `job`)
  metrics::Labels grouping;        // further grouping labels, e.g. slurm_job_id, array_task_id, rank
  double push_timeout_s = 10;      // give up waiting for a push after this long (the job still exits)
  std::string metrics_file;        // write the final exposition here at exit; empty = none
};

// Reads the environment (listed in docs/operations.md):
//   FACETEX_METRICS_PORT   base port; the process listens on base + local rank; unset or 0 = no HTTP exporter
//                          (`port_base` >= 0, from --metrics-port, overrides it)
//   FACETEX_METRICS_BIND   listen address (default 127.0.0.1)
//   FACETEX_PUSHGATEWAY    host:port of a Pushgateway; unset = no push
//   FACETEX_PUSH_JOB       Pushgateway job name (default: $SLURM_JOB_NAME, else "facetex-<command>")
//   FACETEX_PUSH_TIMEOUT   seconds to wait for the push at exit (default 10)
//   FACETEX_METRICS_FILE   path for the final exposition text
// and SLURM_ARRAY_JOB_ID / SLURM_JOB_ID / SLURM_ARRAY_TASK_ID for the grouping labels.
ExporterOptions options_from_env(const ProcessInfo& process, int port_base = -1);

class Exporter {
 public:
  Exporter(const ExporterOptions& options, const ProcessInfo& process);
  ~Exporter();  // finish(1) when finish() was never called (an exception escaped the caller)
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  // The HTTP port actually bound; 0 when not serving (off, unavailable, or the port was taken).
  int port() const;
  // Records the exit code and end time, sets facetex_up to 0, pushes to the Pushgateway and writes the metrics
  // file. The first call does this; later calls do nothing. Never throws.
  void finish(int exit_code);

  // Whether this build has prometheus-cpp (HTTP and push).
  static bool available();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The Pushgateway grouping labels of a Slurm job step (for tests and the sbatch docs): slurm_job_id (the array's
// job id for array tasks), array_task_id (array tasks only) and rank.
metrics::Labels slurm_grouping_labels(int rank);

}  // namespace facetex::monitoring
