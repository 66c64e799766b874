// Serving the metrics of daemon/base/metrics.h: the Prometheus text
// exposition format (version 0.0.4) and a small HTTP/1.1 responder for
// GET /metrics on a loopback port.
//
// Labels carry gRPC method names, status codes and order states only: never
// digests, subject ids, labels, names or anything secret.
#ifndef SHREDD_DAEMON_APP_METRICS_SERVER_H_
#define SHREDD_DAEMON_APP_METRICS_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

#include "daemon/base/metrics.h"

namespace shredd {

// Text exposition (https://prometheus.io/docs/instrumenting/exposition_formats/).
class Exposition {
 public:
  void AddCounter(std::string_view name, std::string_view help, uint64_t value);
  void AddGauge(std::string_view name, std::string_view help, double value);
  // One family with one label; `series` = (label value, value).
  void AddLabeledGauge(std::string_view name, std::string_view help, std::string_view label,
                       const std::vector<std::pair<std::string, double>>& series);
  void AddLabeledCounter(std::string_view name, std::string_view help, std::string_view label,
                         const std::vector<std::pair<std::string, double>>& series);
  void AddFamily(std::string_view name, std::string_view help, const CounterFamily& family);
  void AddHistogram(std::string_view name, std::string_view help, const Histogram& h);
  const std::string& text() const { return out_; }

 private:
  void Header(std::string_view name, std::string_view help, std::string_view type);
  void AddLabeled(std::string_view name, std::string_view help, std::string_view type, std::string_view label,
                  const std::vector<std::pair<std::string, double>>& series);
  std::string out_;
};
std::string EscapeLabelValue(std::string_view v);
// Adds the DaemonMetrics instruments to `e`.
void ExposeDaemonMetrics(const DaemonMetrics& m, Exposition* e);

// GET /metrics over HTTP/1.1 on one loopback address, from one thread.
// Other paths get 404, other methods 405; requests are limited to 8 KiB of
// headers and 5 s; every response closes the connection; at most 16
// connections at once (more wait in the listen backlog).
class MetricsServer {
 public:
  // Binds HOST:PORT (port 0: any free port, see port()). `render` is called
  // on the server thread for every scrape.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(std::string_view hostport,
                                                              std::function<std::string()> render);
  ~MetricsServer();  // stops the thread; no render call runs after it returns
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  uint16_t port() const { return port_; }

 private:
  MetricsServer() = default;
  void Loop();

  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: tells the loop to stop
  uint16_t port_ = 0;
  std::function<std::string()> render_;
  std::thread thread_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_APP_METRICS_SERVER_H_
