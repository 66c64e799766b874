// gRPC front of the TransparencyLog: translates requests and maps
// absl::Status to grpc::Status (status_map.h). No log logic lives here.
#ifndef SHREDD_DAEMON_API_LOG_SERVICE_H_
#define SHREDD_DAEMON_API_LOG_SERVICE_H_

#include "shredd/v1/log.grpc.pb.h"

#include "daemon/log/transparency_log.h"

namespace shredd {

class LogService final : public v1::Log::Service {
 public:
  // Per GetEntries call: at most this many entries and about this many bytes
  // (the daemon's messages are limited to 8 MiB).
  static constexpr uint64_t kMaxEntriesPerCall = 1000;
  static constexpr size_t kMaxEntriesBytesPerCall = 4 << 20;

  explicit LogService(TransparencyLog* log) : log_(log) {}

  grpc::Status GetCheckpoint(grpc::ServerContext* ctx, const v1::GetCheckpointRequest* request,
                             v1::GetCheckpointResponse* response) override;
  grpc::Status GetEntries(grpc::ServerContext* ctx, const v1::GetEntriesRequest* request,
                          v1::GetEntriesResponse* response) override;
  grpc::Status GetInclusionProof(grpc::ServerContext* ctx, const v1::GetInclusionProofRequest* request,
                                 v1::GetInclusionProofResponse* response) override;
  grpc::Status GetConsistencyProof(grpc::ServerContext* ctx, const v1::GetConsistencyProofRequest* request,
                                   v1::GetConsistencyProofResponse* response) override;
  grpc::Status GetTlogProof(grpc::ServerContext* ctx, const v1::GetTlogProofRequest* request,
                            v1::GetTlogProofResponse* response) override;

 private:
  TransparencyLog* const log_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_API_LOG_SERVICE_H_
