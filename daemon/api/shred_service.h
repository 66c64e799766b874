// gRPC front of the Shredder.
#ifndef SHREDD_DAEMON_API_SHRED_SERVICE_H_
#define SHREDD_DAEMON_API_SHRED_SERVICE_H_

#include "shredd/v1/shredd.grpc.pb.h"

#include "daemon/api/call_holds.h"
#include "daemon/api/stall_watch.h"
#include "daemon/base/memory_gate.h"
#include "daemon/shred/shredder.h"

namespace shredd {

class ShredService final : public v1::Shredder::Service {
 public:
  // `transfers` (may be null: no limit) bounds the memory of concurrent
  // certificate fetches with their manifests inline; their leases stay in
  // `holds` until their replies have gone out.
  // `stalls` (may be null) cancels manifest streams nobody reads.
  ShredService(Shredder* shredder, MemoryGate* transfers, CallHolds* holds, StallWatch* stalls = nullptr)
      : shredder_(shredder), transfers_(transfers), holds_(holds), stalls_(stalls) {}
  grpc::Status Shred(grpc::ServerContext* ctx, const v1::ShredRequest* request, v1::ShredResponse* response) override;
  grpc::Status GetCertificate(grpc::ServerContext* ctx, const v1::GetCertificateRequest* request,
                              v1::ShredResponse* response) override;
  grpc::Status GetManifest(grpc::ServerContext* ctx, const v1::GetCertificateRequest* request,
                           grpc::ServerWriter<v1::ManifestChunk>* writer) override;
  grpc::Status GetPublicKey(grpc::ServerContext* ctx, const v1::GetPublicKeyRequest* request,
                            v1::GetPublicKeyResponse* response) override;

 private:
  Shredder* const shredder_;
  MemoryGate* const transfers_;
  CallHolds* const holds_;
  StallWatch* const stalls_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_API_SHRED_SERVICE_H_
