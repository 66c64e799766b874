#include "daemon/base/backoff_retry.h"

#include <algorithm>

namespace shredd {

BackoffRetrier::BackoffRetrier(std::function<absl::Status()> attempt, Options options)
    : attempt_(std::move(attempt)), options_(options) {
  thread_ = std::thread([this] { Loop(); });
}

BackoffRetrier::~BackoffRetrier() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void BackoffRetrier::Kick() {
  {
    std::lock_guard lock(mu_);
    kicked_ = true;
  }
  cv_.notify_all();
}

uint64_t BackoffRetrier::attempts() const {
  std::lock_guard lock(mu_);
  return attempts_;
}

void BackoffRetrier::Loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || kicked_; });
    if (stop_) return;
    auto wait = options_.initial;
    for (;;) {
      kicked_ = false;
      ++attempts_;
      lock.unlock();
      const bool done = attempt_().ok();
      lock.lock();
      if (stop_) return;
      if (done) break;
      // Failed: try again after `wait`, or at once when kicked.
      if (cv_.wait_for(lock, wait, [&] { return stop_ || kicked_; })) {
        if (stop_) return;
        wait = options_.initial;
      } else {
        wait = std::min(wait * 2, options_.max);
      }
    }
  }
}

}  // namespace shredd
