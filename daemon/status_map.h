// The one place where absl::Status becomes grpc::Status.
#ifndef SHREDD_DAEMON_STATUS_MAP_H_
#define SHREDD_DAEMON_STATUS_MAP_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace shredd {

inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace shredd

#endif  // SHREDD_DAEMON_STATUS_MAP_H_
