// The narrow metrics interface that data/, cluster/ and train/ use (DESIGN.md §8). Families are registered once
// and never removed, so the returned references stay valid for the whole process; updates are lock-free atomics.
//
//   static auto& images = metrics::counter("facetex_loader_images_total", "Images delivered by the loader");
//   images.inc(batch.size);
//
// Names follow Prometheus conventions (snake_case, base units, `_total` counters, `_seconds`, `_bytes`) and are
// checked at registration. Labels must be bounded (rank, node, job, phase, status — never a file name).
// Exposition: render_text() (Prometheus text format 0.0.4); monitoring/exporter.h serves it over HTTP and pushes
// it to a Pushgateway when prometheus-cpp is available.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace facetex::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

// A double updated atomically (C++17 has no atomic<double>::fetch_add).
class AtomicDouble {
 public:
  void add(double v);
  void set(double v) { bits_.store(to_bits(v), std::memory_order_relaxed); }
  double get() const { return from_bits(bits_.load(std::memory_order_relaxed)); }

 private:
  static uint64_t to_bits(double v);
  static double from_bits(uint64_t b);
  std::atomic<uint64_t> bits_{0};
};

class Counter {
 public:
  void inc(double v = 1.0) { value_.add(v); }  // v >= 0
  double value() const { return value_.get(); }

 private:
  AtomicDouble value_;
};

class Gauge {
 public:
  void set(double v) { value_.set(v); }
  void inc(double v = 1.0) { value_.add(v); }
  void dec(double v = 1.0) { value_.add(-v); }
  double value() const { return value_.get(); }

 private:
  AtomicDouble value_;
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
  const std::vector<double>& upper_bounds() const { return bounds_; }
  // Cumulative counts per bucket (the last is +Inf), sum and count.
  std::vector<uint64_t> cumulative_counts() const;
  double sum() const { return sum_.get(); }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::vector<std::atomic<uint64_t>> buckets_;  // non-cumulative, last = +Inf
  AtomicDouble sum_;
  std::atomic<uint64_t> count_{0};
};

// Get-or-create. Registering one name with another type or help text is a programming error (std::logic_error).
Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {});
Histogram& histogram(const std::string& name, const std::string& help, const std::vector<double>& upper_bounds,
                     const Labels& labels = {});

// Default buckets for durations in seconds (1 ms .. 10 min).
const std::vector<double>& seconds_buckets();

// Labels added to every series at exposition (rank, node, job), set once at start-up.
void set_constant_labels(const Labels& labels);

// Everything registered, in the Prometheus text exposition format, families sorted by name.
std::string render_text();
// The names of all registered families (for tests that check dashboards against the exporter).
std::vector<std::string> family_names();

// A consistent copy of everything registered, for exporters that serialise it themselves (monitoring/exporter.cpp
// converts it to prometheus-cpp's MetricFamily). Families are sorted by name; each series' labels are the constant
// labels followed by its own.
enum class Kind { kCounter, kGauge, kHistogram };
struct SeriesSnapshot {
  Labels labels;
  double value = 0;                 // counter or gauge
  std::vector<double> upper_bounds;  // histogram: finite bucket bounds ...
  std::vector<uint64_t> cumulative;  // ... and cumulative counts, one more than the bounds (the last is +Inf)
  double sum = 0;
  uint64_t count = 0;
};
struct FamilySnapshot {
  std::string name, help;
  Kind kind = Kind::kGauge;
  std::vector<SeriesSnapshot> series;
};
std::vector<FamilySnapshot> snapshot();

}  // namespace facetex::metrics
