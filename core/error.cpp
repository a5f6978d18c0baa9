#include "core/error.h"

namespace facetex {

const char* exit_code_name(ExitCode code) {
  switch (code) {
    case ExitCode::kOk: return "ok";
    case ExitCode::kRuntime: return "runtime error";
    case ExitCode::kUsage: return "usage error";
    case ExitCode::kData: return "data error";
    case ExitCode::kPreempted: return "preempted";
  }
  return "unknown";
}

}  // namespace facetex
