#include "train/op_census.h"

#include <ATen/core/ivalue.h>
#include <ATen/record_function.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

namespace facetex::train {
namespace {

std::atomic<int64_t> g_ops{0}, g_backward{0}, g_scalar{0}, g_d2h{0}, g_h2d{0};
std::mutex g_mutex;
int g_open = 0;
at::CallbackHandle g_handle = 0;
// Per-operator counts when asked for (a map under a lock: diagnosis only).
std::atomic<bool> g_by_name{false};
std::mutex g_names_mutex;
std::map<std::string, int64_t> g_names;

bool on_device(const c10::IValue& v) { return v.isTensor() && v.toTensor().defined() && !v.toTensor().is_cpu(); }
bool on_host(const c10::IValue& v) { return v.isTensor() && v.toTensor().defined() && v.toTensor().is_cpu(); }

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  if (fn.scope() == at::RecordScope::BACKWARD_FUNCTION) {
    g_backward.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  g_ops.fetch_add(1, std::memory_order_relaxed);
  const char* name = fn.name();
  if (g_by_name.load(std::memory_order_relaxed)) {
    std::lock_guard<std::mutex> lock(g_names_mutex);
    ++g_names[name];
  }
  if (std::strcmp(name, "aten::_local_scalar_dense") == 0) {
    g_scalar.fetch_add(1, std::memory_order_relaxed);
    const auto in = fn.inputs();
    if (!in.empty() && on_device(in[0])) g_d2h.fetch_add(1, std::memory_order_relaxed);
  } else if (std::strcmp(name, "aten::copy_") == 0) {
    const auto in = fn.inputs();  // (self, src, non_blocking)
    if (in.size() >= 2 && on_host(in[0]) && on_device(in[1])) g_d2h.fetch_add(1, std::memory_order_relaxed);
    const bool non_blocking = in.size() >= 3 && in[2].isBool() && in[2].toBool();
    if (in.size() >= 2 && on_device(in[0]) && on_host(in[1]) && !non_blocking) {
      g_h2d.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return nullptr;
}

}  // namespace

std::string OpCounts::str(double per) const {
  return fmt::format("ops {:.0f}, backward nodes {:.0f}, item() {:.1f}, device->host {:.1f}, blocking host->device "
                     "{:.1f}",
                     ops / per, backward_nodes / per, scalar_reads / per, device_to_host / per,
                     blocking_host_to_device / per);
}

OpCensus::OpCensus(bool by_name) {
  if (by_name) g_by_name.store(true);
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_open++ == 0) {
    g_handle = at::addGlobalCallback(
        at::RecordFunctionCallback(on_start)
            .needsInputs(true)
            .scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION}));
  }
}

OpCensus::~OpCensus() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (--g_open == 0) {
    at::removeCallback(g_handle);
    g_by_name.store(false);  // the slow per-name table only while a census that asked for it may be open
  }
}

OpCounts OpCensus::now() const {
  return {g_ops.load(), g_backward.load(), g_scalar.load(), g_d2h.load(), g_h2d.load()};
}

std::vector<std::pair<std::string, int64_t>> OpCensus::top_operators(size_t n) {
  std::vector<std::pair<std::string, int64_t>> all;
  {
    std::lock_guard<std::mutex> lock(g_names_mutex);
    all.assign(g_names.begin(), g_names.end());
    g_names.clear();
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (all.size() > n) all.resize(n);
  return all;
}

}  // namespace facetex::train
