#include "core/env_param.h"

#include <cerrno>
#include <cstdlib>

#include "core/error.h"

namespace facetex {

int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  errno = 0;
  long long parsed = std::strtoll(v, &end, 10);
  FACETEX_CHECK_USAGE(errno == 0 && end != v && *end == '\0', "environment variable {}='{}' is not an integer", name, v);
  return parsed;
}

double env_double(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  errno = 0;
  double parsed = std::strtod(v, &end);
  FACETEX_CHECK_USAGE(errno == 0 && end != v && *end == '\0', "environment variable {}='{}' is not a number", name, v);
  return parsed;
}

std::string env_string(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return (v == nullptr || *v == '\0') ? fallback : std::string(v);
}

}  // namespace facetex
