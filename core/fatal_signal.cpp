#include "core/fatal_signal.h"

#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
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

void put_hex(uintptr_t v) {
  char buf[2 + 16 + 1];
  char* p = buf + sizeof buf;
  *--p = '\0';
  do {
    *--p = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v != 0);
  *--p = 'x';
  *--p = '0';
  put(p);
}

uintptr_t parse_hex(const char*& q, char stop) {
  uintptr_t v = 0;
  for (; *q != stop && *q != '\0'; ++q) v = v * 16 + static_cast<uintptr_t>(*q <= '9' ? *q - '0' : *q - 'a' + 10);
  return v;
}

// The /proc/self/maps line whose range holds `pc` ("none" when it lies in no mapping: a jump through a dangling
// pointer, or into a library already unloaded at exit — the case where the backtrace cannot go past the signal).
// Lines are "lo-hi perms offset dev inode path"; read in blocks into a fixed buffer (no allocation).
void put_mapping_of(uintptr_t pc) {
  const int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char block[4096], line[512];
  size_t len = 0;
  bool found = false;
  ssize_t n;
  while (!found && (n = ::read(fd, block, sizeof block)) > 0) {
    for (ssize_t i = 0; i < n && !found; ++i) {
      if (block[i] != '\n') {
        if (len + 1 < sizeof line) line[len++] = block[i];
        continue;
      }
      line[len] = '\0';
      len = 0;
      const char* q = line;
      const uintptr_t lo = parse_hex(q, '-');
      if (*q == '-') ++q;
      const uintptr_t hi = parse_hex(q, ' ');
      if (pc >= lo && pc < hi) {
        put(line);
        found = true;
      }
    }
  }
  ::close(fd);
  if (!found) put("none");
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

extern "C" void on_fatal_signal(int sig, siginfo_t* info, void* context) {
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
  const long tid = ::syscall(SYS_gettid);
  put(", thread ");
  put_int(tid);
  put(tid == static_cast<long>(::getpid()) ? " (main)" : " (not main)");
  uintptr_t pc = 0;
#if defined(__x86_64__)
  pc = static_cast<uintptr_t>(static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  pc = static_cast<uintptr_t>(static_cast<ucontext_t*>(context)->uc_mcontext.pc);
#endif
  put("\n  fault address ");
  put_hex(reinterpret_cast<uintptr_t>(info != nullptr ? info->si_addr : nullptr));
  put(", pc ");
  put_hex(pc);
  put(" in mapping: ");
  put_mapping_of(pc);
  put("\n  backtrace (addr2line -f -C -e BINARY OFFSET names the functions):\n");
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
  sa.sa_sigaction = on_fatal_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = static_cast<int>(SA_SIGINFO | SA_RESETHAND | SA_NODEFER);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::sigaction(sig, &sa, nullptr);
}

void set_fatal_signal_rank(int rank) { g_rank.store(rank); }

}  // namespace facetex
