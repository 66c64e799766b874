// Prometheus metrics: a few lock-free instruments, the daemon's set of them,
// the text exposition format (version 0.0.4), and a small HTTP/1.1 responder
// for GET /metrics on a loopback port.
//
// Labels carry gRPC method names, status codes and order states only: never
// digests, subject ids, labels, names or anything secret.
#ifndef SHREDD_DAEMON_METRICS_H_
#define SHREDD_DAEMON_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace shredd {

class Counter {
 public:
  void Add(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { v_.store(v, std::memory_order_relaxed); }
  int64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

// Fixed upper bounds (seconds, ascending); counts are cumulative on output.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Read() const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_nanos_{0};  // sum in 1e-9 units: atomics without a CAS loop on double
};

// Counters keyed by a fixed list of label values, e.g. {method, code}. At
// most `max_series` distinct keys; further keys are folded into one series
// whose values are all "other", so a caller cannot grow memory without bound.
class CounterFamily {
 public:
  CounterFamily(std::vector<std::string> label_names, size_t max_series)
      : label_names_(std::move(label_names)), max_series_(max_series) {}
  void Add(const std::vector<std::string>& label_values, uint64_t n = 1);
  std::vector<std::pair<std::vector<std::string>, uint64_t>> Read() const;
  const std::vector<std::string>& label_names() const { return label_names_; }

 private:
  const std::vector<std::string> label_names_;
  const size_t max_series_;
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Counter>> series_ ABSL_GUARDED_BY(mu_);
};

// The instruments the domain code and the services update. Gauges whose
// value lives elsewhere (items stored, orders by state, log size) are read at
// scrape time by the server (see server.cc), not kept here.
struct DaemonMetrics {
  CounterFamily requests{{"method", "code"}, 256};  // shredd_requests_total
  Counter bytes_received;                           // shredd_bytes_received_total
  Counter bytes_sent;                               // shredd_bytes_sent_total
  Histogram shred_epoch_seconds{{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};
  Gauge pending_certifications;            // shredd_pending_certifications
  Counter pending_certification_failures;  // shredd_pending_certification_failures_total
};
// Process-wide: metrics describe the process, like Prometheus' default registry.
DaemonMetrics& Metrics();

// Text exposition (https://prometheus.io/docs/instrumenting/exposition_formats/).
class Exposition {
 public:
  void AddCounter(std::string_view name, std::string_view help, uint64_t value);
  void AddGauge(std::string_view name, std::string_view help, double value);
  // One family with one label; `series` = (label value, value).
  void AddLabeledGauge(std::string_view name, std::string_view help, std::string_view label,
                    const std::vector<std::pair<std::string, double>>& series);
  void AddFamily(std::string_view name, std::string_view help, const CounterFamily& family);
  void AddHistogram(std::string_view name, std::string_view help, const Histogram& h);
  const std::string& text() const { return out_; }

 private:
  void Header(std::string_view name, std::string_view help, std::string_view type);
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

#endif  // SHREDD_DAEMON_METRICS_H_
