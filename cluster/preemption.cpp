#include "cluster/preemption.h"

#include <csignal>

#include <atomic>
#include <mutex>

namespace facetex::cluster {
namespace {

std::atomic<int> g_signal{0};

extern "C" void on_preemption_signal(int signal_number) { g_signal.store(signal_number); }

}  // namespace

void install_preemption_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = on_preemption_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
  });
}

bool preemption_requested() { return g_signal.load() != 0; }
int preemption_signal() { return g_signal.load(); }
void request_preemption(int signal_number) { g_signal.store(signal_number); }
void clear_preemption() { g_signal.store(0); }

}  // namespace facetex::cluster
