// Metrics: instruments, the Prometheus text format, and the HTTP responder
// (paths, methods, limits, slow clients, stop).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "daemon/app/metrics_server.h"

namespace shredd {
namespace {

TEST(MetricsTest, HistogramBucketsAreCumulative) {
  Histogram h({0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 3.0, 100.0}) h.Observe(v);
  auto s = h.Read();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{2, 3, 4, 5}));  // le=0.1 includes 0.1
  EXPECT_EQ(s.count, 5u);
  EXPECT_NEAR(s.sum, 103.65, 1e-6);
}

TEST(MetricsTest, CounterFamilyIsBounded) {
  CounterFamily f({"method", "code"}, 4);
  f.Add({"/a", "OK"});
  f.Add({"/a", "OK"}, 2);
  f.Add({"/b", "NOT_FOUND"});
  f.Add({"/c", "OK"});
  f.Add({"/d", "OK"});  // beyond the bound: folded
  f.Add({"/e", "OK"});
  auto series = f.Read();
  ASSERT_EQ(series.size(), 4u);
  std::map<std::vector<std::string>, uint64_t> m(series.begin(), series.end());
  EXPECT_EQ((m[{"/a", "OK"}]), 3u);
  EXPECT_EQ((m[{"other", "other"}]), 2u);
}

TEST(MetricsTest, TextExposition) {
  CounterFamily f({"method", "code"}, 10);
  f.Add({"/shredd.v1.Store/Put", "OK"}, 7);
  f.Add({"/x", "a\"b\\c\nd"});
  Histogram h({0.5});
  h.Observe(0.25);
  Exposition e;
  e.AddFamily("shredd_requests_total", "Calls.", f);
  e.AddCounter("shredd_bytes_sent_total", "Bytes.", 42);
  e.AddGauge("shredd_log_size", "Entries.", 3);
  e.AddLabeledGauge("shredd_orders", "Orders.", "state", {{"done", 2}, {"failed", 0}});
  e.AddHistogram("shredd_shred_epoch_seconds", "Epochs.", h);
  EXPECT_EQ(e.text(),
            "# HELP shredd_requests_total Calls.\n"
            "# TYPE shredd_requests_total counter\n"
            "shredd_requests_total{method=\"/shredd.v1.Store/Put\",code=\"OK\"} 7\n"
            "shredd_requests_total{method=\"/x\",code=\"a\\\"b\\\\c\\nd\"} 1\n"
            "# HELP shredd_bytes_sent_total Bytes.\n"
            "# TYPE shredd_bytes_sent_total counter\n"
            "shredd_bytes_sent_total 42\n"
            "# HELP shredd_log_size Entries.\n"
            "# TYPE shredd_log_size gauge\n"
            "shredd_log_size 3\n"
            "# HELP shredd_orders Orders.\n"
            "# TYPE shredd_orders gauge\n"
            "shredd_orders{state=\"done\"} 2\n"
            "shredd_orders{state=\"failed\"} 0\n"
            "# HELP shredd_shred_epoch_seconds Epochs.\n"
            "# TYPE shredd_shred_epoch_seconds histogram\n"
            "shredd_shred_epoch_seconds_bucket{le=\"0.5\"} 1\n"
            "shredd_shred_epoch_seconds_bucket{le=\"+Inf\"} 1\n"
            "shredd_shred_epoch_seconds_sum 0.25\n"
            "shredd_shred_epoch_seconds_count 1\n");
}

int Connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

// Sends `request` and reads until the server closes (or 10 s pass).
std::string Exchange(uint16_t port, const std::string& request) {
  int fd = Connect(port);
  if (!request.empty()) {
    EXPECT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
  }
  std::string out;
  char buf[4096];
  pollfd p{fd, POLLIN, 0};
  while (poll(&p, 1, 10000) > 0) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

TEST(MetricsServerTest, ServesMetricsOnlyAtMetrics) {
  int scrapes = 0;
  auto server = MetricsServer::Start("127.0.0.1:0", [&] {
    ++scrapes;
    return std::string("shredd_log_size 5\n");
  });
  ASSERT_TRUE(server.ok()) << server.status();
  uint16_t port = (*server)->port();
  ASSERT_NE(port, 0);
  std::string r = Exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
  EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << r;
  EXPECT_NE(r.find("Content-Length: 18\r\n"), std::string::npos) << r;
  EXPECT_TRUE(r.ends_with("\r\n\r\nshredd_log_size 5\n")) << r;
  r = Exchange(port, "GET /metrics?name[]=x HTTP/1.0\n\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
  r = Exchange(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
  EXPECT_TRUE(r.ends_with("\r\n\r\n")) << r;
  EXPECT_EQ(Exchange(port, "GET / HTTP/1.1\r\n\r\n").substr(0, 22), "HTTP/1.1 404 Not Found");
  EXPECT_EQ(Exchange(port, "GET /metricsx HTTP/1.1\r\n\r\n").substr(0, 22), "HTTP/1.1 404 Not Found");
  r = Exchange(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")) << r;
  EXPECT_NE(r.find("Allow: GET, HEAD\r\n"), std::string::npos);
  EXPECT_EQ(Exchange(port, "hello\r\n\r\n").substr(0, 24), "HTTP/1.1 400 Bad Request");
  r = Exchange(port, "GET /metrics HTTP/1.1\r\nX: " + std::string(10000, 'a'));
  EXPECT_TRUE(r.starts_with("HTTP/1.1 431 ")) << r.substr(0, 40);
  EXPECT_EQ(scrapes, 3);
}

TEST(MetricsServerTest, SlowClientsDoNotBlockScrapes) {
  auto server = MetricsServer::Start("127.0.0.1:0", [] { return std::string("x 1\n"); });
  ASSERT_TRUE(server.ok());
  uint16_t port = (*server)->port();
  // Idle connections (more than the 16 served at once) that never send.
  std::vector<int> idle;
  for (int i = 0; i < 20; ++i) idle.push_back(Connect(port));
  auto start = std::chrono::steady_clock::now();
  std::string r = Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n");
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK")) << r;
  // Served once the idle ones time out (5 s), not never.
  EXPECT_LT(took, std::chrono::seconds(12));
  // The idle connections were closed by the server.
  for (int fd : idle) {
    char c;
    pollfd p{fd, POLLIN, 0};
    EXPECT_EQ(poll(&p, 1, 8000), 1);
    EXPECT_EQ(recv(fd, &c, 1, 0), 0);
    close(fd);
  }
}

TEST(MetricsServerTest, RefusesAddressesItCannotBind) {
  auto a = MetricsServer::Start("127.0.0.1:0", [] { return std::string(); });
  ASSERT_TRUE(a.ok());
  auto b = MetricsServer::Start("127.0.0.1:" + std::to_string((*a)->port()), [] { return std::string(); });
  EXPECT_EQ(b.status().code(), absl::StatusCode::kUnavailable) << b.status();
  EXPECT_FALSE(MetricsServer::Start("127.0.0.1", [] { return std::string(); }).ok());
}

}  // namespace
}  // namespace shredd
