#include "daemon/items/destruction_gate.h"

#include <utility>

namespace shredd {

DestructionGate::Commit& DestructionGate::Commit::operator=(Commit&& o) noexcept {
  if (this != &o) {
    Commit gone(std::move(*this));
    gate_ = std::exchange(o.gate_, nullptr);
  }
  return *this;
}

DestructionGate::Commit::~Commit() {
  if (gate_ == nullptr) return;
  absl::MutexLock l(&gate_->mu_);
  --gate_->commits_;
}

DestructionGate::Commit DestructionGate::EnterCommit(absl::Duration wait) {
  absl::MutexLock l(&mu_);
  if (!mu_.AwaitWithTimeout(absl::Condition(this, &DestructionGate::Open), wait)) return Commit();
  ++commits_;
  return Commit(this);
}

void DestructionGate::SetPending(std::string certificate_id) {
  absl::MutexLock l(&mu_);
  pending_ = std::move(certificate_id);
}

std::string DestructionGate::PendingCertificate() {
  absl::MutexLock l(&mu_);
  return pending_;
}

DestructionGate::Destruction::Destruction(DestructionGate* gate) : gate_(gate) {
  absl::MutexLock l(&gate_->mu_);
  ++gate_->destructions_waiting_;
  gate_->mu_.Await(absl::Condition(gate_, &DestructionGate::Drained));
  --gate_->destructions_waiting_;
  gate_->destroying_ = true;
}

DestructionGate::Destruction::~Destruction() {
  absl::MutexLock l(&gate_->mu_);
  gate_->destroying_ = false;
}

}  // namespace shredd
