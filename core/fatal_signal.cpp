#include "core/fatal_signal.h"

#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <initializer_list>

namespace facetex {
namespace {

const char* g_program = "facetex";
std::atomic<int> g_rank{0};
char g_host[64] = "?";

// write(2) of a NUL-terminated string; the report must not allocate (the heap may be what broke).
void put(const char* s) {
  ssize_t left = static_cast<ssize_t>(std::strlen(s));
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, s, static_cast<size_t>(left));
    if (n <= 0) return;
    s += n;
    left -= n;
  }
}

void put_int(long v) {
  char buf[24];
  char* p = buf + sizeof buf;
  *--p = '\0';
  const bool negative = v < 0;
  unsigned long u = negative ? 0UL - static_cast<unsigned long>(v) : static_cast<unsigned long>(v);
  do {
    *--p = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (negative) *--p = '-';
  put(p);
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    default: return "signal";
  }
}

extern "C" void on_fatal_signal(int sig) {
  put("\n");
  put(g_program);
  put(": fatal ");
  put(signal_name(sig));
  put(" (");
  put_int(sig);
  put(") on host ");
  put(g_host);
  put(", pid ");
  put_int(static_cast<long>(::getpid()));
  put(", rank ");
  put_int(g_rank.load());
  put("; backtrace (addr2line -f -C -e BINARY OFFSET names the functions):\n");
  void* frames[64];
  const int n = ::backtrace(frames, 64);
  ::backtrace_symbols_fd(frames, n, STDERR_FILENO);
  // SA_RESETHAND restored the default action: re-raise so the process dies of the same signal.
  ::raise(sig);
}

}  // namespace

void install_fatal_signal_report(const char* program) {
  static std::atomic<bool> installed{false};
  if (installed.exchange(true)) return;
  if (program != nullptr) g_program = program;
  ::gethostname(g_host, sizeof g_host - 1);
  // backtrace() loads libgcc on first use, which is not safe inside a handler: do it now.
  void* warm[1];
  ::backtrace(warm, 1);
  struct sigaction sa {};
  sa.sa_handler = on_fatal_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = static_cast<int>(SA_RESETHAND | SA_NODEFER);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::sigaction(sig, &sa, nullptr);
}

void set_fatal_signal_rank(int rank) { g_rank.store(rank); }

}  // namespace facetex
