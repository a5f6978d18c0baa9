// The exporter: HTTP /metrics (prometheus-cpp Exposer), the Pushgateway push at finish (against a one-shot HTTP
// server in the test), the metrics file, the process-level families and the environment it reads.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "core/error.h"
#include "monitoring/exporter.h"
#include "monitoring/metrics.h"

using namespace facetex;
namespace fs = std::filesystem;

namespace {

// A TCP listener on 127.0.0.1 with a free port.
int listen_socket(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4) != 0) return -1;
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

std::string read_all(int fd, const std::chrono::seconds limit = std::chrono::seconds(10)) {
  timeval tv{static_cast<time_t>(limit.count()), 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    // A request is complete once the body announced by Content-Length has arrived.
    const size_t head = out.find("\r\n\r\n");
    if (head != std::string::npos) {
      const size_t cl = out.find("Content-Length: ");
      if (cl != std::string::npos && cl < head) {
        const size_t want = std::stoul(out.substr(cl + 16)) + head + 4;
        if (out.size() >= want) break;
      }
    }
  }
  return out;
}

std::string http_get(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return "";
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  ::send(fd, req.data(), req.size(), 0);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

monitoring::ProcessInfo process() {
  monitoring::ProcessInfo p;
  p.rank = 0;
  p.node = "testnode";
  p.command = "data pack";
  return p;
}

}  // namespace

TEST(Exporter, ServesTheRegistryOverHttp) {
  if (!monitoring::Exporter::available()) GTEST_SKIP() << "built without prometheus-cpp";
  auto& c = metrics::counter("facetex_test_served_total", "Test", {{"phase", "Gmain"}});
  c.inc(3);
  metrics::histogram("facetex_test_served_seconds", "Test", {0.5, 2}).observe(1);
  monitoring::ExporterOptions o;
  o.serve = true;
  o.port = 0;  // any free port
  monitoring::Exporter exporter(o, process());
  ASSERT_GT(exporter.port(), 0);
  const std::string body = http_get(exporter.port(), "/metrics");
  EXPECT_NE(body.find("200 OK"), std::string::npos) << body;
  EXPECT_NE(body.find("facetex_test_served_total{rank=\"0\",phase=\"Gmain\"} 3"), std::string::npos) << body;
  EXPECT_NE(body.find("facetex_test_served_seconds_bucket{rank=\"0\",le=\"2\"} 1"), std::string::npos) << body;
  EXPECT_NE(body.find("facetex_test_served_seconds_bucket{rank=\"0\",le=\"+Inf\"} 1"), std::string::npos) << body;
  EXPECT_NE(body.find("facetex_up{rank=\"0\"} 1"), std::string::npos) << body;
  EXPECT_NE(body.find("facetex_job_exit_code{rank=\"0\"} -1"), std::string::npos) << body;
  EXPECT_NE(body.find("facetex_job_info{rank=\"0\",command=\"data pack\"} 1"), std::string::npos) << body;
  EXPECT_NE(body.find("# TYPE facetex_build_info gauge"), std::string::npos) << body;
  exporter.finish(0);
  EXPECT_EQ(http_get(exporter.port(), "/metrics"), "") << "the endpoint closes at finish";
}

TEST(Exporter, TakenPortIsAWarningNotAFailure) {
  if (!monitoring::Exporter::available()) GTEST_SKIP() << "built without prometheus-cpp";
  int port = 0;
  const int fd = listen_socket(&port);
  ASSERT_GE(fd, 0);
  monitoring::ExporterOptions o;
  o.serve = true;
  o.port = port;
  monitoring::Exporter exporter(o, process());
  EXPECT_EQ(exporter.port(), 0);
  ::close(fd);
}

TEST(Exporter, FinishPushesToThePushgatewayWithGroupingLabelsAndWritesTheFile) {
  if (!monitoring::Exporter::available()) GTEST_SKIP() << "built without prometheus-cpp";
  int port = 0;
  const int lfd = listen_socket(&port);
  ASSERT_GE(lfd, 0);
  std::string request;
  std::thread server([&] {
    const int c = ::accept(lfd, nullptr, nullptr);
    request = read_all(c);
    const std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    ::send(c, reply.data(), reply.size(), 0);
    ::close(c);
  });
  const fs::path file = fs::temp_directory_path() / ("facetex-test-metrics-" + std::to_string(::getpid()) + ".prom");
  metrics::counter("facetex_test_pushed_total", "Test").inc(7);
  monitoring::ExporterOptions o;
  o.pushgateway = "127.0.0.1:" + std::to_string(port);
  o.push_job = "facetex-pack";
  o.grouping = {{"slurm_job_id", "42"}, {"array_task_id", "3"}, {"rank", "0"}, {"instance", "node/1"}};
  o.metrics_file = file.string();
  {
    monitoring::Exporter exporter(o, process());
    exporter.finish(3);
    exporter.finish(0);  // only the first call counts
  }
  server.join();
  ::close(lfd);
  // prometheus-cpp 1.0's Push() sends POST (replace the pushed families of the group); either method is fine, as
  // the final push carries every family.
  const std::string first_line = request.substr(0, request.find('\r'));
  EXPECT_NE(first_line.find(" /metrics/job/facetex-pack/"), std::string::npos) << request;
  EXPECT_NE(first_line.find("/slurm_job_id/42"), std::string::npos) << first_line;
  EXPECT_NE(first_line.find("/array_task_id/3"), std::string::npos) << first_line;
  EXPECT_NE(first_line.find("/rank/0"), std::string::npos) << first_line;
  EXPECT_NE(first_line.find("/instance/node_1"), std::string::npos) << "path segments are sanitised: " << first_line;
  EXPECT_NE(request.find("facetex_test_pushed_total{rank=\"0\"} 7"), std::string::npos) << request;
  EXPECT_NE(request.find("facetex_job_exit_code{rank=\"0\"} 3"), std::string::npos) << request;
  EXPECT_NE(request.find("facetex_up{rank=\"0\"} 0"), std::string::npos) << request;
  const std::string text = slurp(file);
  EXPECT_NE(text.find("facetex_job_exit_code{rank=\"0\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("facetex_job_end_time_seconds{rank=\"0\"} "), std::string::npos) << text;
  fs::remove(file);
}

TEST(Exporter, AnUnresponsivePushgatewayDoesNotHoldTheJob) {
  if (!monitoring::Exporter::available()) GTEST_SKIP() << "built without prometheus-cpp";
  int port = 0;
  const int lfd = listen_socket(&port);  // accepts connections (backlog) but never answers
  ASSERT_GE(lfd, 0);
  monitoring::ExporterOptions o;
  o.pushgateway = "127.0.0.1:" + std::to_string(port);
  o.push_job = "facetex-test";
  o.push_timeout_s = 0.5;
  monitoring::Exporter exporter(o, process());
  const auto t0 = std::chrono::steady_clock::now();
  exporter.finish(0);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 3.0);
  ::close(lfd);
}

TEST(Exporter, OptionsComeFromTheEnvironment) {
  ::setenv("FACETEX_METRICS_PORT", "9500", 1);
  ::setenv("FACETEX_METRICS_BIND", "0.0.0.0", 1);
  ::setenv("FACETEX_PUSHGATEWAY", "pgw:9091", 1);
  ::setenv("SLURM_JOB_ID", "107", 1);
  ::setenv("SLURM_ARRAY_JOB_ID", "100", 1);
  ::setenv("SLURM_ARRAY_TASK_ID", "7", 1);
  ::setenv("SLURM_JOB_NAME", "facetex-pack", 1);
  monitoring::ProcessInfo p = process();
  p.rank = 5;
  p.local_rank = 1;
  auto o = monitoring::options_from_env(p);
  EXPECT_TRUE(o.serve);
  EXPECT_EQ(o.port, 9501);
  EXPECT_EQ(o.bind, "0.0.0.0");
  EXPECT_EQ(o.pushgateway, "pgw:9091");
  EXPECT_EQ(o.push_job, "facetex-pack");
  const metrics::Labels want = {
      {"slurm_job_id", "100"}, {"array_task_id", "7"}, {"rank", "5"}, {"instance", "testnode"}};
  EXPECT_EQ(o.grouping, want);
  EXPECT_EQ(monitoring::options_from_env(p, 0).serve, false) << "--metrics-port 0 turns the exporter off";
  ::unsetenv("SLURM_JOB_NAME");
  EXPECT_EQ(monitoring::options_from_env(p).push_job, "facetex-data-pack");
  ::setenv("FACETEX_METRICS_PORT", "0", 1);
  EXPECT_FALSE(monitoring::options_from_env(p).serve);
  // Ranks share the environment: rank 0 writes the file, rank R > 0 its own beside it.
  ::setenv("FACETEX_METRICS_FILE", "/tmp/m/job.prom", 1);
  EXPECT_EQ(monitoring::options_from_env(p).metrics_file, "/tmp/m/job.rank5.prom");
  p.rank = 0;
  EXPECT_EQ(monitoring::options_from_env(p).metrics_file, "/tmp/m/job.prom");
  ::unsetenv("FACETEX_METRICS_FILE");
  ::setenv("FACETEX_METRICS_PORT", "ninety", 1);
  EXPECT_THROW(monitoring::options_from_env(p), UsageError);
  for (const char* v : {"FACETEX_METRICS_PORT", "FACETEX_METRICS_BIND", "FACETEX_PUSHGATEWAY", "SLURM_JOB_ID",
                        "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"}) {
    ::unsetenv(v);
  }
}
