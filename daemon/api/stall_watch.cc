#include "daemon/api/stall_watch.h"

#include "daemon/base/logging.h"
#include "daemon/base/metrics.h"

namespace shredd {

int64_t StallWatch::NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

StallWatch::StallWatch(std::chrono::milliseconds limit) : limit_(limit) {
  if (limit_.count() > 0) thread_ = std::thread([this] { Run(); });
}

StallWatch::~StallWatch() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

StallWatch::Watched StallWatch::Watch(StallWatch* watch, grpc::ServerContextBase* ctx, std::string what) {
  if (watch == nullptr) return Watched(nullptr, {});
  std::lock_guard lock(watch->mu_);
  auto it = watch->entries_.emplace(watch->entries_.end());
  it->ctx = ctx;
  it->what = std::move(what);
  it->last_ns = NowNs();
  return Watched(watch, it);
}

StallWatch::Watched::~Watched() {
  if (watch_ == nullptr) return;
  std::lock_guard lock(watch_->mu_);  // the scan never touches a ctx after this
  watch_->entries_.erase(it_);
}

void StallWatch::Watched::Moved() {
  if (watch_ != nullptr) it_->last_ns.store(NowNs(), std::memory_order_relaxed);
}

bool StallWatch::Watched::stalled() const { return watch_ != nullptr && it_->stalled.load(); }

void StallWatch::Run() {
  const auto tick =
      std::min<std::chrono::milliseconds>(std::chrono::seconds(1), limit_ / 4 + std::chrono::milliseconds(1));
  const int64_t limit_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(limit_).count();
  std::unique_lock lock(mu_);
  while (!stop_cv_.wait_for(lock, tick, [this] { return stop_; })) {
    const int64_t now = NowNs();
    for (Entry& e : entries_) {
      if (e.stalled || now - e.last_ns.load(std::memory_order_relaxed) < limit_ns) continue;
      e.stalled = true;
      e.ctx->TryCancel();  // thread-safe; the entry (and its call) lives while we hold mu_
      Metrics().transfers_stalled.Add(1);
      LogWarning("transfer made no progress: cancelled ([storage] transfer_idle_s)",
                 {{"what", e.what}, {"idle_ms", static_cast<int64_t>(limit_.count())}});
    }
  }
}

}  // namespace shredd
