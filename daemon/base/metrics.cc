#include "daemon/base/metrics.h"

#include <algorithm>
#include <cmath>

namespace shredd {

// ---------------------------------------------------------------- instruments

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();  // first bound >= v
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(v > 0 ? static_cast<uint64_t>(std::llround(v * 1e9)) : 0, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.bounds = bounds_;
  uint64_t acc = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    acc += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(acc);
  }
  // count = the +Inf bucket, so the exposition is consistent even while
  // observations race with the read.
  s.count = acc;
  s.sum = static_cast<double>(sum_nanos_.load(std::memory_order_relaxed)) / 1e9;
  return s;
}

void CounterFamily::Add(const std::vector<std::string>& values, uint64_t n) {
  absl::MutexLock lock(&mu_);
  auto it = series_.find(values);
  if (it == series_.end()) {
    if (series_.size() + 1 >= max_series_) {
      std::vector<std::string> other(label_names_.size(), "other");
      it = series_.try_emplace(other, std::make_unique<Counter>()).first;
    } else {
      it = series_.emplace(values, std::make_unique<Counter>()).first;
    }
  }
  it->second->Add(n);
}

std::vector<std::pair<std::vector<std::string>, uint64_t>> CounterFamily::Read() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<std::vector<std::string>, uint64_t>> out;
  out.reserve(series_.size());
  for (const auto& [k, c] : series_) out.emplace_back(k, c->value());
  return out;
}

DaemonMetrics& Metrics() {
  static DaemonMetrics* m = new DaemonMetrics();  // never destroyed: threads may count until exit
  return *m;
}

}  // namespace shredd
