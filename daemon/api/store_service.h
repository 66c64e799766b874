// gRPC front of the ItemStore: translates messages and statuses, nothing else.
#ifndef SHREDD_DAEMON_API_STORE_SERVICE_H_
#define SHREDD_DAEMON_API_STORE_SERVICE_H_

#include <functional>
#include <memory>

#include "shredd/v1/shredd.grpc.pb.h"

#include "daemon/api/stall_watch.h"
#include "daemon/base/memory_gate.h"
#include "daemon/items/item_store.h"
#include "daemon/lineage/catalog.h"

namespace shredd {

// Put and Get carry their content as raw gRPC bytes (raw_messages.h): their
// handlers replace the generated ones, with the same messages on the wire.
class StoreService final : public v1::Store::Service {
 public:
  // `transfers` (may be null: no limit) bounds the buffers of concurrent
  // downloads and uploads.
  // `stalls` (may be null) cancels transfers that stop moving.
  StoreService(ItemStore* store, Catalog* catalog, MemoryGate* transfers, StallWatch* stalls = nullptr);

  grpc::Status Put(grpc::ServerContext* ctx, grpc::ServerReader<grpc::ByteBuffer>* reader, v1::PutResponse* response);
  grpc::Status BatchPut(grpc::ServerContext* ctx, const v1::BatchPutRequest* request,
                        v1::BatchPutResponse* response) override;
  grpc::Status Get(grpc::ServerContext* ctx, grpc::ServerReaderWriter<grpc::ByteBuffer, v1::GetRequest>* stream);
  grpc::Status Stat(grpc::ServerContext* ctx, const v1::StatRequest* request, v1::ItemInfo* response) override;
  grpc::Status FindMissing(grpc::ServerContext* ctx, const v1::FindMissingRequest* request,
                           v1::FindMissingResponse* response) override;
  grpc::Status List(grpc::ServerContext* ctx, const v1::ListRequest* request, v1::ListResponse* response) override;

 private:
  // Streams [offset, offset + limit) of the item `reader` reads.
  grpc::Status SendContent(grpc::ServerContext* ctx, grpc::ServerReaderWriter<grpc::ByteBuffer, v1::GetRequest>* stream,
                           ItemReader& reader, int64_t offset, int64_t limit);
  // Reads an upload's data (and trailer) into `upload` and commits it with
  // its lineage (Catalog::CommitUpload: validated again as it commits).
  grpc::Status ReceiveUpload(grpc::ServerContext* ctx, grpc::ServerReader<grpc::ByteBuffer>* reader,
                             std::unique_ptr<Upload> upload, ItemKind kind, const std::vector<LineageSpec>& lineage,
                             bool daemon_digest, v1::PutResponse* response);

  ItemStore* const store_;
  Catalog* const catalog_;
  MemoryGate* const transfers_;
  StallWatch* const stalls_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_API_STORE_SERVICE_H_
