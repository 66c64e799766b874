// Prometheus metrics: a few lock-free instruments and the daemon's set of
// them. Domain layers (shred) and the API count into them; the text
// exposition and the HTTP responder that serves them live in
// daemon/app/metrics_server.h. They sit in base because they are a
// cross-cutting facility like logging: no I/O, no locks on the hot path, and
// no layer above needs to be known to count.
//
// Labels carry gRPC method names, status codes and order states only: never
// digests, subject ids, labels, names or anything secret.
#ifndef SHREDD_DAEMON_BASE_METRICS_H_
#define SHREDD_DAEMON_BASE_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
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
  Counter transfers_stalled;                        // shredd_transfers_stalled_total
  Histogram shred_epoch_seconds{{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};
  Gauge pending_certifications;            // shredd_pending_certifications
  Counter pending_certification_failures;  // shredd_pending_certification_failures_total
};
// Process-wide: metrics describe the process, like Prometheus' default registry.
DaemonMetrics& Metrics();

}  // namespace shredd

#endif  // SHREDD_DAEMON_BASE_METRICS_H_
