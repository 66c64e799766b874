#include "daemon/base/memory_gate.h"

#include <algorithm>

#include "daemon/base/strings.h"

namespace shredd {

MemoryGate::Lease& MemoryGate::Lease::operator=(Lease&& o) noexcept {
  if (this != &o) {
    Release();
    gate_ = o.gate_;
    bytes_ = o.bytes_;
    o.gate_ = nullptr;
  }
  return *this;
}

void MemoryGate::Lease::Release() {
  if (gate_ != nullptr) gate_->Return(bytes_);
  gate_ = nullptr;
}

absl::StatusOr<MemoryGate::Lease> MemoryGate::Acquire(uint64_t bytes, Clock::time_point deadline,
                                                      const std::function<bool()>& cancelled, std::string_view what) {
  if (budget_ == 0 || bytes == 0) return Lease(nullptr, 0);
  bytes = std::min(bytes, budget_);
  std::unique_lock lock(mu_);
  if (queue_.empty() && in_use_ + bytes <= budget_) {
    in_use_ += bytes;
    return Lease(this, bytes);
  }
  ++waits_;
  const auto me = queue_.insert(queue_.end(), next_ticket_++);
  auto leave = [&](absl::Status s) {
    queue_.erase(me);
    freed_.notify_all();  // the next in line may fit now
    return s;
  };
  while (queue_.begin() != me || in_use_ + bytes > budget_) {
    if (cancelled && cancelled()) return leave(absl::CancelledError(StrCat(what, ": cancelled while waiting")));
    const auto now = Clock::now();
    if (now >= deadline) {
      return leave(absl::ResourceExhaustedError(StrCat(
          what, ": the daemon's transfer memory budget (", budget_ >> 20, " MiB, [storage] transfer_memory_mib) ",
          "was taken by other transfers until the call's deadline; retry later or with a longer deadline")));
    }
    freed_.wait_until(lock, std::min(deadline, now + std::chrono::milliseconds(100)));
  }
  queue_.erase(me);
  in_use_ += bytes;
  freed_.notify_all();
  return Lease(this, bytes);
}

MemoryGate::Lease MemoryGate::Charge(uint64_t bytes) {
  if (budget_ == 0 || bytes == 0) return Lease(nullptr, 0);
  bytes = std::min(bytes, budget_);
  std::lock_guard lock(mu_);
  in_use_ += bytes;
  return Lease(this, bytes);
}

void MemoryGate::Return(uint64_t bytes) {
  std::lock_guard lock(mu_);
  in_use_ -= bytes;
  freed_.notify_all();
}

uint64_t MemoryGate::in_use() const {
  std::lock_guard lock(mu_);
  return in_use_;
}

uint64_t MemoryGate::waits() const {
  std::lock_guard lock(mu_);
  return waits_;
}

}  // namespace shredd
