#include "monitoring/exporter.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <filesystem>
#include <limits>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "core/atomic_file.h"
#include "core/env_param.h"
#include "core/error.h"
#include "core/log.h"
#include "core/version.h"

#ifdef FACETEX_HAVE_PROMETHEUS
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/gateway.h>
#include <prometheus/metric_family.h>
#endif

namespace facetex::monitoring {
namespace {

spdlog::logger& logger() { return log::get("monitoring"); }

double unix_now() {
  using namespace std::chrono;
  return duration_cast<duration<double>>(system_clock::now().time_since_epoch()).count();
}

#ifdef FACETEX_HAVE_PROMETHEUS
// Pushgateway grouping values become URL path segments (prometheus-cpp does not escape them): keep them plain.
std::string path_safe(const std::string& v) {
  std::string out;
  for (char c : v) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.';
    out += ok ? c : '_';
  }
  return out.empty() ? "_" : out;
}

// Why a Collectable rather than serving render_text(): prometheus-cpp's Exposer and Gateway both take Collectables
// and nothing else (serving our own text would mean bypassing the Exposer and driving civetweb directly). Converting
// a snapshot of our registry to prometheus::MetricFamily is a few lines, lets one object feed both the HTTP endpoint
// and the push, and leaves serialisation, escaping and content negotiation to the library. metrics.h stays the only
// interface the rest of the code sees; render_text() remains for the metrics file and tests.
class RegistryCollectable : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    for (const auto& f : metrics::snapshot()) {
      prometheus::MetricFamily pf;
      pf.name = f.name;
      pf.help = f.help;
      pf.type = f.kind == metrics::Kind::kCounter ? prometheus::MetricType::Counter
                : f.kind == metrics::Kind::kGauge ? prometheus::MetricType::Gauge
                                                   : prometheus::MetricType::Histogram;
      for (const auto& s : f.series) {
        prometheus::ClientMetric m;
        for (const auto& [k, v] : s.labels) m.label.push_back({k, v});
        switch (f.kind) {
          case metrics::Kind::kCounter: m.counter.value = s.value; break;
          case metrics::Kind::kGauge: m.gauge.value = s.value; break;
          case metrics::Kind::kHistogram:
            m.histogram.sample_count = s.count;
            m.histogram.sample_sum = s.sum;
            for (size_t i = 0; i < s.cumulative.size(); ++i) {
              const double le =
                  i < s.upper_bounds.size() ? s.upper_bounds[i] : std::numeric_limits<double>::infinity();
              m.histogram.bucket.push_back({s.cumulative[i], le});
            }
            break;
        }
        pf.metric.push_back(std::move(m));
      }
      out.push_back(std::move(pf));
    }
    return out;
  }
};

// Push (HTTP PUT: replaces this group's metrics) on a helper thread and wait at most `timeout_s`: a black-holed
// Pushgateway must not keep a finished job alive (libcurl's default connect timeout is minutes).
int push_with_timeout(const ExporterOptions& o, const std::shared_ptr<RegistryCollectable>& collectable) {
  std::string address = o.pushgateway;
  if (address.rfind("http://", 0) != 0 && address.rfind("https://", 0) != 0) address = "http://" + address;
  const size_t colon = address.rfind(':');
  FACETEX_CHECK_USAGE(colon != std::string::npos && colon > address.find("//") + 1,
                      "FACETEX_PUSHGATEWAY='{}' is not host:port", o.pushgateway);
  const std::string host = address.substr(0, colon), port = address.substr(colon + 1);
  prometheus::Labels grouping;
  for (const auto& [k, v] : o.grouping) grouping[k] = path_safe(v);
  auto gateway = std::make_shared<prometheus::Gateway>(host, port, path_safe(o.push_job), grouping);
  gateway->RegisterCollectable(collectable);

  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    int code = 0;
  };
  auto state = std::make_shared<State>();
  std::thread([gateway, collectable, state] {
    int code = -1;
    try {
      code = gateway->Push();
    } catch (...) {
    }
    std::lock_guard<std::mutex> lock(state->mu);
    state->done = true;
    state->code = code;
    state->cv.notify_all();
  }).detach();
  std::unique_lock<std::mutex> lock(state->mu);
  if (!state->cv.wait_for(lock, std::chrono::duration<double>(o.push_timeout_s), [&] { return state->done; })) {
    return 0;  // still running: reported as a timeout
  }
  return state->code;
}
#endif

}  // namespace

metrics::Labels slurm_grouping_labels(int rank) {
  metrics::Labels labels;
  const std::string array_job = env_string("SLURM_ARRAY_JOB_ID", "");
  const std::string job = env_string("SLURM_JOB_ID", "");
  if (!array_job.empty()) {
    labels.emplace_back("slurm_job_id", array_job);
    labels.emplace_back("array_task_id", env_string("SLURM_ARRAY_TASK_ID", ""));
  } else if (!job.empty()) {
    labels.emplace_back("slurm_job_id", job);
  }
  labels.emplace_back("rank", std::to_string(rank));
  return labels;
}

ExporterOptions options_from_env(const ProcessInfo& p, int port_base) {
  ExporterOptions o;
  const int64_t base = port_base >= 0 ? port_base : env_int("FACETEX_METRICS_PORT", 0);
  FACETEX_CHECK_USAGE(base >= 0 && base + p.local_rank <= 65535, "metrics port {} + local rank {} is not a TCP port",
                      base, p.local_rank);
  o.serve = base > 0;
  o.port = o.serve ? static_cast<int>(base) + p.local_rank : 0;
  o.bind = env_string("FACETEX_METRICS_BIND", "127.0.0.1");
  o.pushgateway = env_string("FACETEX_PUSHGATEWAY", "");
  std::string command = p.command;
  for (char& c : command) {
    if (c == ' ') c = '-';
  }
  o.push_job = env_string("FACETEX_PUSH_JOB", env_string("SLURM_JOB_NAME", "facetex-" + command));
  o.grouping = slurm_grouping_labels(p.rank);
  if (!p.node.empty()) o.grouping.emplace_back("instance", p.node);
  o.push_timeout_s = env_double("FACETEX_PUSH_TIMEOUT", 10);
  FACETEX_CHECK_USAGE(o.push_timeout_s > 0, "FACETEX_PUSH_TIMEOUT must be positive");
  o.metrics_file = env_string("FACETEX_METRICS_FILE", "");
  if (!o.metrics_file.empty() && p.rank > 0) {
    // One file per rank: the ranks of a job share the environment, and each would replace the others' file.
    // metrics.prom -> metrics.rank2.prom (node_exporter's textfile collector reads *.prom).
    const std::filesystem::path f(o.metrics_file);
    o.metrics_file = (f.parent_path() / (f.stem().string() + ".rank" + std::to_string(p.rank) + f.extension().string()))
                         .string();
  }
  return o;
}

struct Exporter::Impl {
  ExporterOptions o;
  ProcessInfo p;
  std::atomic<bool> finished{false};
  metrics::Gauge* up = nullptr;
  metrics::Gauge* exit_code = nullptr;
  metrics::Gauge* end_time = nullptr;
  int port = 0;
#ifdef FACETEX_HAVE_PROMETHEUS
  std::shared_ptr<RegistryCollectable> collectable = std::make_shared<RegistryCollectable>();
  std::unique_ptr<prometheus::Exposer> exposer;
#endif
};

bool Exporter::available() {
#ifdef FACETEX_HAVE_PROMETHEUS
  return true;
#else
  return false;
#endif
}

Exporter::Exporter(const ExporterOptions& options, const ProcessInfo& process) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.o = options;
  m.p = process;
  metrics::set_constant_labels({{"rank", std::to_string(process.rank)}});

  // Process-level families (DESIGN.md §8): liveness, what is running, and how it ended.
  m.up = &metrics::gauge("facetex_up", "1 while the facetex process runs; 0 in the final push");
  m.up->set(1);
#ifdef FACETEX_HAVE_CUDA
  const char* cuda = "1";
#else
  const char* cuda = "0";
#endif
  metrics::gauge("facetex_build_info", "Constant 1, labelled with the build's version and options",
                 {{"version", FACETEX_VERSION}, {"cuda", cuda}, {"prometheus", available() ? "1" : "0"}})
      .set(1);
  metrics::gauge("facetex_job_info", "Constant 1, labelled with the subcommand this process runs",
                 {{"command", process.command}})
      .set(1);
  metrics::gauge("facetex_job_start_time_seconds", "Unix time the process started its command").set(unix_now());
  m.end_time = &metrics::gauge("facetex_job_end_time_seconds", "Unix time the command ended; 0 while it runs");
  m.exit_code = &metrics::gauge("facetex_job_exit_code",
                                "Exit code of the command (0 ok, 1 runtime, 2 usage, 3 data, 75 preempted); "
                                "-1 while it runs");
  m.exit_code->set(-1);

  if (!available()) {
    if (m.o.serve || !m.o.pushgateway.empty()) {
      logger().warn("metrics export is unavailable: this build has no prometheus-cpp (FACETEX_PROMETHEUS=OFF); "
                    "FACETEX_METRICS_PORT and FACETEX_PUSHGATEWAY are ignored (FACETEX_METRICS_FILE still works)");
    }
    return;
  }
#ifdef FACETEX_HAVE_PROMETHEUS
  if (m.o.serve) {
    const std::string host = m.o.bind.find(':') != std::string::npos ? "[" + m.o.bind + "]" : m.o.bind;
    const std::string address = host + ":" + std::to_string(m.o.port);
    try {
      m.exposer = std::make_unique<prometheus::Exposer>(address, 1);
      m.exposer->RegisterCollectable(m.collectable);
      const auto ports = m.exposer->GetListeningPorts();
      m.port = ports.empty() ? m.o.port : ports.front();
      logger().info("serving metrics on http://{}:{}/metrics", host, m.port);
    } catch (const std::exception& e) {
      // A taken port must not stop a training job: it runs unobserved, and says so.
      logger().warn("cannot serve metrics on {} ({}); continuing without the HTTP exporter", address, e.what());
      m.exposer.reset();
    }
  }
#endif
}

Exporter::~Exporter() {
  if (!impl_->finished.load()) finish(static_cast<int>(ExitCode::kRuntime));
}

int Exporter::port() const { return impl_->port; }

void Exporter::finish(int exit_code) {
  Impl& m = *impl_;
  if (m.finished.exchange(true)) return;
  try {
    m.exit_code->set(exit_code);
    m.end_time->set(unix_now());
    m.up->set(0);
    if (!m.o.metrics_file.empty()) {
      try {
        write_file_atomic(m.o.metrics_file, metrics::render_text());
      } catch (const std::exception& e) {
        logger().warn("cannot write the metrics file {}: {}", m.o.metrics_file, e.what());
      }
    }
#ifdef FACETEX_HAVE_PROMETHEUS
    if (!m.o.pushgateway.empty()) {
      const int code = push_with_timeout(m.o, m.collectable);
      if (code >= 200 && code < 300) {
        logger().info("pushed metrics to {} (job {}, exit code {})", m.o.pushgateway, m.o.push_job, exit_code);
      } else if (code == 0) {
        logger().warn("push to the Pushgateway {} did not finish within {} s; giving up", m.o.pushgateway,
                      m.o.push_timeout_s);
      } else {
        logger().warn("push to the Pushgateway {} failed (HTTP status / curl result {})", m.o.pushgateway, code);
      }
    }
    m.exposer.reset();  // stop serving before the process tears down
#endif
  } catch (const std::exception& e) {
    logger().warn("metrics: {}", e.what());
  }
}

}  // namespace facetex::monitoring
