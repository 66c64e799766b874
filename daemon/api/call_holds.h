// Leases that a call keeps until gRPC has finished it.
//
// A unary handler returns its reply before gRPC serializes and sends it,
// and a client that reads slowly keeps that reply in gRPC's buffers for as
// long as it likes: 48 slow fetches of a 20,000-item certificate held
// ~130 MiB there after their handlers had returned their leases. A lease
// given to Keep() is released only when the call ends: its interceptor
// (one per call, destroyed with it, after the reply has gone out) releases
// it. So the transfer memory budget also covers replies on their way out.
#ifndef SHREDD_DAEMON_API_CALL_HOLDS_H_
#define SHREDD_DAEMON_API_CALL_HOLDS_H_

#include <mutex>
#include <unordered_map>
#include <vector>

#include <grpcpp/support/server_interceptor.h>

#include "daemon/base/memory_gate.h"

namespace shredd {

class CallHolds {
 public:
  // Keeps `lease` until the call of `ctx` ends (the server must run
  // Interceptors(), or it is kept until Release(ctx) or forever).
  void Keep(const grpc::ServerContextBase* ctx, MemoryGate::Lease lease);
  void Release(const grpc::ServerContextBase* ctx);
  size_t CallsHolding() const;

  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> Interceptors();

 private:
  mutable std::mutex mu_;
  std::unordered_map<const grpc::ServerContextBase*, std::vector<MemoryGate::Lease>> held_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_API_CALL_HOLDS_H_
