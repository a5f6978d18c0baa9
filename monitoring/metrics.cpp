#include "monitoring/metrics.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <stdexcept>

namespace facetex::metrics {

uint64_t AtomicDouble::to_bits(double v) {
  uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}
double AtomicDouble::from_bits(uint64_t b) {
  double v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}
void AtomicDouble::add(double v) {
  uint64_t old = bits_.load(std::memory_order_relaxed);
  while (!bits_.compare_exchange_weak(old, to_bits(from_bits(old) + v), std::memory_order_relaxed)) {
  }
}

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)), buckets_(bounds_.size() + 1) {
  for (size_t i = 1; i < bounds_.size(); ++i) {
    if (!(bounds_[i] > bounds_[i - 1])) throw std::logic_error("histogram bucket bounds must increase");
  }
}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.add(v);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::cumulative_counts() const {
  std::vector<uint64_t> out(buckets_.size());
  uint64_t acc = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) out[i] = acc += buckets_[i].load(std::memory_order_relaxed);
  return out;
}

namespace {

enum class Type { kCounter, kGauge, kHistogram };
const char* type_name(Type t) { return t == Type::kCounter ? "counter" : t == Type::kGauge ? "gauge" : "histogram"; }

struct Family {
  Type type;
  std::string help;
  std::vector<double> bounds;
  // std::deque keeps element addresses stable as series are added.
  std::deque<std::pair<Labels, Counter>> counters;
  std::deque<std::pair<Labels, Gauge>> gauges;
  std::deque<std::pair<Labels, std::unique_ptr<Histogram>>> histograms;
};

struct Registry {
  std::mutex mu;
  std::map<std::string, Family> families;
  Labels constant_labels;
};

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: metrics may be touched during static destruction
  return *r;
}

void check_name(const std::string& name, Type type) {
  static const std::regex valid("[a-zA-Z_:][a-zA-Z0-9_:]*");
  if (!std::regex_match(name, valid)) throw std::logic_error("invalid metric name: " + name);
  const bool total = name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0;
  if ((type == Type::kCounter) != total) {
    throw std::logic_error("metric " + name + ": counters (and only counters) end in _total");
  }
}

Family& family(Registry& r, const std::string& name, const std::string& help, Type type,
               const std::vector<double>& bounds = {}) {
  auto it = r.families.find(name);
  if (it == r.families.end()) {
    check_name(name, type);
    it = r.families.emplace(name, Family{type, help, bounds, {}, {}, {}}).first;
  }
  if (it->second.type != type) throw std::logic_error("metric " + name + " registered with two types");
  return it->second;
}

template <typename Series>
auto* find_series(Series& series, const Labels& labels) {
  for (auto& s : series) {
    if (s.first == labels) return &s.second;
  }
  return static_cast<decltype(&series.front().second)>(nullptr);
}

std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string format_labels(const Labels& constant, const Labels& labels, const std::string& extra_name = "",
                          const std::string& extra_value = "") {
  std::string s;
  auto add = [&](const std::string& k, const std::string& v) {
    s += s.empty() ? "{" : ",";
    s += k + "=\"" + escape_label(v) + "\"";
  };
  for (const auto& [k, v] : constant) add(k, v);
  for (const auto& [k, v] : labels) add(k, v);
  if (!extra_name.empty()) add(extra_name, extra_value);
  return s.empty() ? s : s + "}";
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

}  // namespace

Counter& counter(const std::string& name, const std::string& help, const Labels& labels) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  Family& f = family(r, name, help, Type::kCounter);
  if (auto* c = find_series(f.counters, labels)) return *c;
  f.counters.emplace_back(std::piecewise_construct, std::forward_as_tuple(labels), std::forward_as_tuple());
  return f.counters.back().second;
}

Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  Family& f = family(r, name, help, Type::kGauge);
  if (auto* g = find_series(f.gauges, labels)) return *g;
  f.gauges.emplace_back(std::piecewise_construct, std::forward_as_tuple(labels), std::forward_as_tuple());
  return f.gauges.back().second;
}

Histogram& histogram(const std::string& name, const std::string& help, const std::vector<double>& upper_bounds,
                     const Labels& labels) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  Family& f = family(r, name, help, Type::kHistogram, upper_bounds);
  if (f.bounds != upper_bounds) throw std::logic_error("histogram " + name + " registered with two bucket sets");
  if (auto* h = find_series(f.histograms, labels)) return **h;
  f.histograms.emplace_back(labels, std::make_unique<Histogram>(upper_bounds));
  return *f.histograms.back().second;
}

const std::vector<double>& seconds_buckets() {
  static const std::vector<double> b = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                        1,     2.5,    5,     10,   30,    60,   120, 300, 600};
  return b;
}

void set_constant_labels(const Labels& labels) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.constant_labels = labels;
}

std::string render_text() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::string out;
  for (const auto& [name, f] : r.families) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, f.help, name, type_name(f.type));
    for (const auto& [labels, c] : f.counters) {
      out += name + format_labels(r.constant_labels, labels) + " " + format_value(c.value()) + "\n";
    }
    for (const auto& [labels, g] : f.gauges) {
      out += name + format_labels(r.constant_labels, labels) + " " + format_value(g.value()) + "\n";
    }
    for (const auto& [labels, h] : f.histograms) {
      auto counts = h->cumulative_counts();
      for (size_t i = 0; i < counts.size(); ++i) {
        std::string le = i < h->upper_bounds().size() ? format_value(h->upper_bounds()[i]) : "+Inf";
        out += name + "_bucket" + format_labels(r.constant_labels, labels, "le", le) + " " +
               std::to_string(counts[i]) + "\n";
      }
      out += name + "_sum" + format_labels(r.constant_labels, labels) + " " + format_value(h->sum()) + "\n";
      out += name + "_count" + format_labels(r.constant_labels, labels) + " " + std::to_string(h->count()) + "\n";
    }
  }
  return out;
}

std::vector<FamilySnapshot> snapshot() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<FamilySnapshot> out;
  out.reserve(r.families.size());
  auto with_constant = [&](const Labels& own) {
    Labels all = r.constant_labels;
    all.insert(all.end(), own.begin(), own.end());
    return all;
  };
  for (const auto& [name, f] : r.families) {
    FamilySnapshot fs;
    fs.name = name;
    fs.help = f.help;
    fs.kind = f.type == Type::kCounter ? Kind::kCounter : f.type == Type::kGauge ? Kind::kGauge : Kind::kHistogram;
    for (const auto& [labels, c] : f.counters) {
      SeriesSnapshot s;
      s.labels = with_constant(labels);
      s.value = c.value();
      fs.series.push_back(std::move(s));
    }
    for (const auto& [labels, g] : f.gauges) {
      SeriesSnapshot s;
      s.labels = with_constant(labels);
      s.value = g.value();
      fs.series.push_back(std::move(s));
    }
    for (const auto& [labels, h] : f.histograms) {
      SeriesSnapshot s;
      s.labels = with_constant(labels);
      s.upper_bounds = h->upper_bounds();
      s.cumulative = h->cumulative_counts();
      s.sum = h->sum();
      s.count = h->count();
      fs.series.push_back(std::move(s));
    }
    out.push_back(std::move(fs));
  }
  return out;
}

std::vector<std::string> family_names() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> names;
  for (const auto& [name, f] : r.families) names.push_back(name);
  return names;
}

}  // namespace facetex::metrics
