// One env-param mechanism (NCCL's NCCL_PARAM idea): every tunable that is not a config key is an environment
// variable read once, cached, and listed in docs/operations.md.
//
//   FACETEX_PARAM_INT(ProgressInterval, "FACETEX_PROGRESS_INTERVAL", 30);   // defines param_ProgressInterval()
#pragma once

#include <cstdint>
#include <string>

namespace facetex {

// Reads `name` from the environment; `fallback` when unset or empty. A set but malformed value is a usage error.
int64_t env_int(const char* name, int64_t fallback);
double env_double(const char* name, double fallback);
std::string env_string(const char* name, const std::string& fallback);

}  // namespace facetex

#define FACETEX_PARAM_INT(Name, env, fallback)                        \
  inline int64_t param_##Name() {                                     \
    static const int64_t value = ::facetex::env_int(env, fallback);   \
    return value;                                                     \
  }
#define FACETEX_PARAM_DOUBLE(Name, env, fallback)                        \
  inline double param_##Name() {                                         \
    static const double value = ::facetex::env_double(env, fallback);    \
    return value;                                                        \
  }
