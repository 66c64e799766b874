// gRPC front of the Catalog (datasets, item tags, lineage): translation and
// status mapping only.
#ifndef SHREDD_DAEMON_API_CATALOG_SERVICE_H_
#define SHREDD_DAEMON_API_CATALOG_SERVICE_H_

#include "shredd/v1/orders.grpc.pb.h"

#include "daemon/api/call_holds.h"
#include "daemon/api/stall_watch.h"
#include "daemon/base/memory_gate.h"
#include "daemon/items/item_store.h"
#include "daemon/lineage/catalog.h"

namespace shredd {

class CatalogService final : public v1::Catalog::Service {
 public:
  // `transfers` and `holds` (may be null): the memory of a dataset manifest
  // served in one reply is leased until the reply has gone out; `stalls`
  // (may be null) cancels manifest streams nobody reads.
  CatalogService(ItemStore* store, Catalog* catalog, MemoryGate* transfers = nullptr, CallHolds* holds = nullptr,
                 StallWatch* stalls = nullptr)
      : store_(store), catalog_(catalog), transfers_(transfers), holds_(holds), stalls_(stalls) {}
  grpc::Status RegisterDataset(grpc::ServerContext*, const v1::RegisterDatasetRequest*, v1::Dataset*) override;
  grpc::Status ListDatasets(grpc::ServerContext*, const v1::ListDatasetsRequest*, v1::ListDatasetsResponse*) override;
  grpc::Status GetDatasetManifest(grpc::ServerContext*, const v1::DatasetManifestRequest*,
                                  v1::DatasetManifestResponse*) override;
  grpc::Status StreamDatasetManifest(grpc::ServerContext*, const v1::DatasetManifestRequest*,
                                     grpc::ServerWriter<v1::ManifestChunk>*) override;
  grpc::Status UpdateItem(grpc::ServerContext*, const v1::UpdateItemRequest*, v1::ItemInfo*) override;
  grpc::Status AddLineage(grpc::ServerContext*, const v1::AddLineageRequest*, v1::AddLineageResponse*) override;
  grpc::Status GetLineage(grpc::ServerContext*, const v1::LineageRequest*, v1::LineageResponse*) override;

 private:
  ItemStore* const store_;
  Catalog* const catalog_;
  MemoryGate* const transfers_;
  CallHolds* const holds_;
  StallWatch* const stalls_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_API_CATALOG_SERVICE_H_
