// Errors carry an exit code and context; the CLI turns any of them into one clear line and that code.
//
// Exit codes (documented in docs/operations.md and `facetex --help`):
//   0 ok · 1 runtime error · 2 usage/config error · 3 data error (bad input file/row) · 75 preempted (requeue)
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>  // shapes (std::vector) in messages

#include <stdexcept>
#include <string>

namespace facetex {

enum class ExitCode : int {
  kOk = 0,
  kRuntime = 1,
  kUsage = 2,
  kData = 3,
  kPreempted = 75,  // EX_TEMPFAIL: Slurm requeues, the next launch resumes from the last checkpoint
};

const char* exit_code_name(ExitCode code);

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, std::string message) : std::runtime_error(std::move(message)), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

// Bad command line or config value: exit code 2.
struct UsageError : Error {
  explicit UsageError(std::string message) : Error(ExitCode::kUsage, std::move(message)) {}
};

// Bad input data (names the file, and the row where there is one): exit code 3.
struct DataError : Error {
  explicit DataError(std::string message) : Error(ExitCode::kData, std::move(message)) {}
};

// Anything else that stops a job: exit code 1.
struct RuntimeError : Error {
  explicit RuntimeError(std::string message) : Error(ExitCode::kRuntime, std::move(message)) {}
};

// The job was asked to stop (SIGUSR1/SIGTERM) and saved its state: exit code 75.
struct PreemptedError : Error {
  explicit PreemptedError(std::string message) : Error(ExitCode::kPreempted, std::move(message)) {}
};

// Runs `f`; what it refuses as a usage error (or std::invalid_argument) becomes a DataError naming `source`. The same
// checks guard typed settings (exit 2) and values read from a file — a weight file's init_kwargs (exit 3).
template <typename F>
auto as_data_errors(const std::string& source, F&& f) -> decltype(f()) {
  const auto named = [&source](const std::string& m) { return m.rfind(source, 0) == 0 ? m : source + ": " + m; };
  try {
    return f();
  } catch (const UsageError& e) {
    throw DataError(named(e.what()));
  } catch (const std::invalid_argument& e) {
    throw DataError(named(e.what()));
  }
}

}  // namespace facetex

// The one checking macro family (NCCL style): FACETEX_CHECK(cond, ErrorType, "fmt {}", args...).
#define FACETEX_CHECK(cond, ErrorType, ...)                      \
  do {                                                           \
    if (!(cond)) throw ::facetex::ErrorType(fmt::format(__VA_ARGS__)); \
  } while (0)
#define FACETEX_CHECK_USAGE(cond, ...) FACETEX_CHECK(cond, UsageError, __VA_ARGS__)
#define FACETEX_CHECK_DATA(cond, ...) FACETEX_CHECK(cond, DataError, __VA_ARGS__)
#define FACETEX_CHECK_RUNTIME(cond, ...) FACETEX_CHECK(cond, RuntimeError, __VA_ARGS__)
