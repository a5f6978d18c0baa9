// The metrics registry: types, naming rules, thread-safe updates, Prometheus text exposition.
#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>
#include <vector>

#include "monitoring/metrics.h"

using namespace facetex;

TEST(Metrics, CountersGaugesAndHistogramsRenderInPrometheusTextFormat) {
  auto& c = metrics::counter("facetex_test_events_total", "Test events", {{"phase", "Gmain"}});
  auto& g = metrics::gauge("facetex_test_queue_depth", "Test queue");
  auto& h = metrics::histogram("facetex_test_step_seconds", "Test steps", {0.1, 1.0});
  EXPECT_EQ(&c, &metrics::counter("facetex_test_events_total", "Test events", {{"phase", "Gmain"}}));
  c.inc(2);
  g.set(5);
  g.dec();
  h.observe(0.05);
  h.observe(0.5);
  h.observe(7);
  metrics::set_constant_labels({{"rank", "0"}});
  const std::string text = metrics::render_text();
  EXPECT_NE(text.find("# TYPE facetex_test_events_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("facetex_test_events_total{rank=\"0\",phase=\"Gmain\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("facetex_test_queue_depth{rank=\"0\"} 4\n"), std::string::npos) << text;
  EXPECT_NE(text.find("facetex_test_step_seconds_bucket{rank=\"0\",le=\"0.1\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("facetex_test_step_seconds_bucket{rank=\"0\",le=\"1\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("facetex_test_step_seconds_bucket{rank=\"0\",le=\"+Inf\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("facetex_test_step_seconds_count{rank=\"0\"} 3\n"), std::string::npos) << text;
  metrics::set_constant_labels({});
}

TEST(Metrics, NamingRulesAreEnforced) {
  EXPECT_THROW(metrics::counter("facetex_bad_counter", "no _total suffix"), std::logic_error);
  EXPECT_THROW(metrics::gauge("facetex_bad_total", "gauge with _total"), std::logic_error);
  EXPECT_THROW(metrics::gauge("facetex-bad", "dash"), std::logic_error);
  metrics::gauge("facetex_test_typed", "x");
  EXPECT_THROW(metrics::histogram("facetex_test_typed", "x", {1.0}), std::logic_error);
}

TEST(Metrics, ConcurrentUpdatesAreNotLost) {
  auto& c = metrics::counter("facetex_test_concurrent_total", "Concurrent increments");
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) ts.emplace_back([&] { for (int i = 0; i < 10000; ++i) c.inc(0.5); });
  for (auto& t : ts) t.join();
  EXPECT_DOUBLE_EQ(c.value(), 20000.0);
}
