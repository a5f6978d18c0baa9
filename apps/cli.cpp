#include "apps/cli.h"

#include <ATen/Context.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>
#include <string>

#include "cluster/mpi_communicator.h"
#include "cluster/world.h"
#include "core/env_param.h"
#include "core/error.h"
#include "core/log.h"
#include "core/version.h"

namespace facetex::app {

Cli::Cli() : app_("facetex " FACETEX_VERSION " — unsupervised facial UV-texture GAN training and batch jobs") {
  app_.footer(
      "Settings: every option maps to a config key; precedence is defaults < --config FILE < --set key=value < flags.\n"
      "Exit codes: 0 ok, 1 runtime error, 2 usage/config error, 3 data error (bad input file/row), 75 preempted "
      "(requeue and resume).\n"
      "Environment: FACETEX_LOG_LEVEL, FACETEX_PROGRESS_INTERVAL (seconds between progress lines when not on a "
      "terminal), FACETEX_PROGRESS=log; metrics: FACETEX_METRICS_PORT (base port + local rank, 0 = off), "
      "FACETEX_METRICS_BIND, FACETEX_PUSHGATEWAY (host:port, pushed at exit), FACETEX_METRICS_FILE. See "
      "docs/operations.md.");
  app_.require_subcommand(1);
  app_.fallthrough();
  app_.add_option("--config", config_file_, "TOML config file")->check(CLI::ExistingFile);
  app_.add_option("--set", sets_, "Override a config key: --set data.batch=64 (repeatable)");
  app_.add_option("--log-level", log_level_,
                  "trace|debug|info|warn|error|critical|off, optionally per subsystem: info,data=debug")
      ->capture_default_str();
  app_.add_flag("--log-all-ranks", log_all_ranks_, "Log info lines from every rank, not only rank 0");
  app_.add_option("--metrics-port", metrics_port_,
                  "Serve Prometheus metrics on this port + local rank; 0 = off (default: FACETEX_METRICS_PORT)")
      ->check(CLI::Validator(
          [](std::string& text) {  // "abc" is named as not a number (CLI::Range alone says "not in range")
            const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
            return digits ? std::string() : "'" + text + "' is not a port number";
          },
          "PORT"))
      ->check(CLI::Range(0, 65535));
}

CLI::Option* Cli::option(CLI::App* cmd, const std::string& flags, const std::string& key, const std::string& help,
                         const std::string& fallback) {
  std::string text = help + " [" + key + "]";
  if (!fallback.empty()) text += " (default: " + fallback + ")";
  CLI::Option* opt = cmd->add_option(flags, values_[key], text);
  bound_.push_back({cmd, opt, key});
  return opt;
}

CLI::Option* Cli::required(CLI::App* cmd, const std::string& flags, const std::string& key, const std::string& help) {
  CLI::Option* opt = option(cmd, flags, key, help + " (required)");
  required_.emplace_back(cmd, opt);
  return opt;
}

CLI::Option* Cli::flag(CLI::App* cmd, const std::string& flags, const std::string& key, const std::string& help) {
  CLI::Option* opt = cmd->add_flag(flags)->description(help + " [" + key + "]");
  bound_.push_back({cmd, opt, key});
  values_[key] = "true";
  return opt;
}

void Cli::on_run(CLI::App* cmd, std::function<int(const Config&)> job) {
  cmd->callback([this, job] { job_ = job; });
}

Config Cli::resolve() const {
  Config c;
  if (!config_file_.empty()) c = Config::load(config_file_);
  check_config_keys(c.keys());
  for (const auto& s : sets_) c.set(s);
  for (const auto& b : bound_) {
    if (b.opt->count() > 0) c.set_value(b.key, values_.at(b.key));
  }
  for (const auto& [cmd, opt] : required_) {
    if (!cmd->parsed()) continue;
    for (const auto& b : bound_) {
      if (b.opt == opt) {
        FACETEX_CHECK_USAGE(c.has(b.key), "{} is required (or set {} in the config)", opt->get_name(), b.key);
      }
    }
  }
  return c;
}

// A key in a section this command reads ([pack] for data pack) that none of its options binds is a typo
// (--set pack.shardsize=5 packed everything into one shard). --set keys are always checked; a config file's only in
// sections no other command reads, since one file may serve several commands. `facetex train` checks every key
// itself (it has settings without flags).
void Cli::check_config_keys(const std::vector<std::string>& file_keys) const {
  std::vector<const CLI::App*> chain;
  std::string command;
  for (const CLI::App* cmd = &app_; !cmd->get_subcommands().empty();) {
    cmd = cmd->get_subcommands().front();
    chain.push_back(cmd);
    command += (command.empty() ? "" : " ") + cmd->get_name();
  }
  if (chain.empty() || command == "train") return;
  const auto section = [](const std::string& key) { return key.substr(0, key.find('.')); };
  const auto mine = [&](const CLI::App* cmd) { return std::find(chain.begin(), chain.end(), cmd) != chain.end(); };
  std::vector<std::string> known;
  std::set<std::string> my_sections, shared_sections;
  for (const auto& b : bound_) {
    if (mine(b.cmd)) {
      known.push_back(b.key);
      my_sections.insert(section(b.key));
    }
  }
  for (const auto& b : bound_) {
    if (!mine(b.cmd) && my_sections.count(section(b.key))) shared_sections.insert(section(b.key));
  }
  std::vector<std::string> unknown;
  const auto check = [&](const std::string& key, bool from_set) {
    const std::string s = section(key);
    const bool known_key = std::find(known.begin(), known.end(), key) != known.end();
    if (!known_key && my_sections.count(s) && (from_set || !shared_sections.count(s))) unknown.push_back(key);
  };
  for (const std::string& k : file_keys) check(k, false);
  for (const std::string& s : sets_) {
    std::string key = s.substr(0, s.find('='));
    key.erase(key.find_last_not_of(" \t") + 1);
    key.erase(0, key.find_first_not_of(" \t"));
    check(key, true);
  }
  FACETEX_CHECK_USAGE(unknown.empty(), "{} (--help lists each option's config key)",
                      unknown_keys_message(unknown, known, "facetex " + command));
}

namespace {
// "facetex", or "facetex[rank r/W]" in a multi-rank job, so an error line names the rank that failed.
std::string who() {
  try {
    const cluster::World w = cluster::discover_world();
    if (w.size > 1) return fmt::format("facetex[rank {}/{}]", w.rank, w.size);
  } catch (const std::exception&) {
  }
  return "facetex";
}

// `text` with its lines trimmed and joined by single spaces.
std::string one_line(const std::string& text) {
  std::string out, line;
  std::istringstream in(text);
  while (std::getline(in, line)) {
    const size_t begin = line.find_first_not_of(" \t\r"), end = line.find_last_not_of(" \t\r");
    if (begin == std::string::npos) continue;
    out += (out.empty() ? "" : " ") + line.substr(begin, end - begin + 1);
  }
  return out;
}

// The job's last line: on stderr, and at the end of the job's own log files (a run's log.txt), so that a run folder
// says how its job ended.
int report_failure(ExitCode code, std::string message) {
  // One line, whatever a library put in its message (dlib's serialisation errors span several).
  message = one_line(message);
  const std::string line = fmt::format("{}: {}: {}", who(), exit_code_name(code), message);
  std::fprintf(stderr, "%s\n", line.c_str());
  log::record_in_files("cli", spdlog::level::err, line);
  return static_cast<int>(code);
}
}  // namespace

std::string assets_root(const Config& c, const std::string& key) {
  const std::string given = c.get_string(key, "");
  if (!given.empty()) return given;
  return env_string("FACETEX_ASSETS", std::string(FACETEX_SOURCE_DIR) + "/assets");
}

std::string device_choice(const Config& c, const std::string& key, bool indexed) {
  const std::string device = c.get_string(key, "cpu");
  const std::string choices = indexed ? "cpu, cuda or cuda:i" : "cpu or cuda";
  const bool is_indexed = device.rfind("cuda:", 0) == 0 && device.size() > 5 &&
                          device.find_first_not_of("0123456789", 5) == std::string::npos;
  FACETEX_CHECK_USAGE(device == "cpu" || device == "cuda" || (indexed && is_indexed), "--device must be {}, got '{}'",
                      choices, device);
  if (device == "cpu") return device;
  FACETEX_CHECK_USAGE(at::hasCUDA(), "--device {}: this build or machine has no CUDA", device);
  if (is_indexed) {
    const long index = std::stol(device.substr(5));
    const auto count = static_cast<long>(at::getNumGPUs());
    FACETEX_CHECK_USAGE(index < count, "--device {}: this machine has {} CUDA device(s)", device, count);
  }
  return device;
}

int Cli::main(int argc, char** argv) {
  try {
    app_.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app_.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app_.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "facetex: usage error: %s (see --help)\n", e.what());
    return static_cast<int>(ExitCode::kUsage);
  }
  // Every command exports metrics (DESIGN.md §8): the exporter serves while the job runs and records, pushes and
  // writes how it ended — success, error or preemption alike.
  std::unique_ptr<monitoring::Exporter> exporter;
  const int code = run_job(exporter);
  if (exporter) exporter->finish(code);
  // A multi-rank job: finalise MPI when all ranks leave together, abort the job when this rank fails alone.
  std::fflush(nullptr);
  cluster::finish_mpi(code);
  return code;
}

int Cli::run_job(std::unique_ptr<monitoring::Exporter>& exporter) {
  try {
    const cluster::World world = cluster::discover_world();
    log::init(log::Options{world.rank, log_all_ranks_, log_level_});
    if (!job_) return static_cast<int>(ExitCode::kOk);
    monitoring::ProcessInfo process{world.rank, world.local_rank, world.node, ""};
    for (const CLI::App* cmd = &app_; !cmd->get_subcommands().empty();) {
      cmd = cmd->get_subcommands().front();
      process.command += (process.command.empty() ? "" : " ") + cmd->get_name();
    }
    exporter = std::make_unique<monitoring::Exporter>(monitoring::options_from_env(process, metrics_port_), process);
    return job_(resolve());
  } catch (const Error& e) {
    return report_failure(e.code(), e.what());
  } catch (const c10::Error& e) {
    // LibTorch's message without its C++ stack trace: one line, as every other error.
    std::string message = e.what_without_backtrace();
    if (const auto nl = message.find('\n'); nl != std::string::npos) message.resize(nl);
    return report_failure(ExitCode::kRuntime, message);
  } catch (const std::exception& e) {
    return report_failure(ExitCode::kRuntime, e.what());
  }
}

}  // namespace facetex::app
