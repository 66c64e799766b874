// A call's lease on the daemon's transfer memory budget (MemoryGate): it
// stops waiting when the client goes away, and kGiveUpEarly before the
// call's deadline, so that the client gets the RESOURCE_EXHAUSTED that says
// why rather than its own DEADLINE_EXCEEDED. A call whose role a reload
// withdrew while it waited gets PERMISSION_DENIED (auth::Reauthorized).
#ifndef SHREDD_DAEMON_API_MEMORY_LEASE_H_
#define SHREDD_DAEMON_API_MEMORY_LEASE_H_

#include <chrono>
#include <string_view>

#include <grpcpp/server_context.h>

#include "daemon/api/auth.h"
#include "daemon/base/memory_gate.h"

namespace shredd {

inline constexpr auto kGiveUpEarly = std::chrono::milliseconds(250);

inline absl::StatusOr<MemoryGate::Lease> LeaseMemory(MemoryGate* gate, grpc::ServerContext* ctx, uint64_t bytes,
                                                     std::string_view what) {
  if (gate == nullptr) return MemoryGate::Lease();
  auto deadline = ctx->deadline();
  if (deadline != MemoryGate::Clock::time_point::max()) deadline -= kGiveUpEarly;
  auto lease = gate->Acquire(
      bytes, deadline, [ctx] { return ctx->IsCancelled(); }, what);
  if (!lease.ok()) return lease;
  // The wait may have outlasted the caller's role (a reload withdrew it).
  if (grpc::Status still = auth::Reauthorized(ctx); !still.ok()) {
    return absl::PermissionDeniedError(still.error_message());
  }
  return lease;
}

}  // namespace shredd

#endif  // SHREDD_DAEMON_API_MEMORY_LEASE_H_
