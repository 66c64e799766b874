#include "daemon/api/call_holds.h"

namespace shredd {
namespace {

// Destroyed with its call (ServerRpcInfo owns it), once the call's last
// operation, the reply and status, has completed.
class ReleaseAtEnd final : public grpc::experimental::Interceptor {
 public:
  ReleaseAtEnd(CallHolds* holds, const grpc::ServerContextBase* ctx) : holds_(holds), ctx_(ctx) {}
  ~ReleaseAtEnd() override { holds_->Release(ctx_); }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override { methods->Proceed(); }

 private:
  CallHolds* const holds_;
  const grpc::ServerContextBase* const ctx_;
};

class ReleaseAtEndFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ReleaseAtEndFactory(CallHolds* holds) : holds_(holds) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    return new ReleaseAtEnd(holds_, info->server_context());
  }

 private:
  CallHolds* const holds_;
};

}  // namespace

void CallHolds::Keep(const grpc::ServerContextBase* ctx, MemoryGate::Lease lease) {
  std::lock_guard lock(mu_);
  held_[ctx].push_back(std::move(lease));
}

void CallHolds::Release(const grpc::ServerContextBase* ctx) {
  std::vector<MemoryGate::Lease> leases;  // released outside the lock
  std::lock_guard lock(mu_);
  auto it = held_.find(ctx);
  if (it == held_.end()) return;
  leases = std::move(it->second);
  held_.erase(it);
}

size_t CallHolds::CallsHolding() const {
  std::lock_guard lock(mu_);
  return held_.size();
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> CallHolds::Interceptors() {
  return std::make_unique<ReleaseAtEndFactory>(this);
}

}  // namespace shredd
