// gRPC fronts of the Catalog (datasets, lineage) and the OrderBook (orders,
// holds, suppression): translation and status mapping only.
#ifndef SHREDD_DAEMON_ORDER_SERVICE_H_
#define SHREDD_DAEMON_ORDER_SERVICE_H_

#include "shredd/v1/orders.grpc.pb.h"

#include "daemon/lineage/catalog.h"
#include "daemon/orders/orders.h"

namespace shredd {

class CatalogService final : public v1::Catalog::Service {
 public:
  CatalogService(ItemStore* store, Catalog* catalog) : store_(store), catalog_(catalog) {}
  grpc::Status RegisterDataset(grpc::ServerContext*, const v1::RegisterDatasetRequest*, v1::Dataset*) override;
  grpc::Status ListDatasets(grpc::ServerContext*, const v1::ListDatasetsRequest*, v1::ListDatasetsResponse*) override;
  grpc::Status GetDatasetManifest(grpc::ServerContext*, const v1::DatasetManifestRequest*,
                                  v1::DatasetManifestResponse*) override;
  grpc::Status UpdateItem(grpc::ServerContext*, const v1::UpdateItemRequest*, v1::ItemInfo*) override;
  grpc::Status AddLineage(grpc::ServerContext*, const v1::AddLineageRequest*, v1::AddLineageResponse*) override;
  grpc::Status GetLineage(grpc::ServerContext*, const v1::LineageRequest*, v1::LineageResponse*) override;

 private:
  ItemStore* const store_;
  Catalog* const catalog_;
};

class OrdersService final : public v1::Orders::Service {
 public:
  OrdersService(OrderBook* book, Catalog* catalog) : book_(book), catalog_(catalog) {}
  grpc::Status PlanOrder(grpc::ServerContext*, const v1::OrderSpec*, v1::Plan*) override;
  grpc::Status SubmitOrder(grpc::ServerContext*, const v1::OrderSpec*, v1::OrderStatus*) override;
  grpc::Status GetOrder(grpc::ServerContext*, const v1::GetOrderRequest*, v1::OrderStatus*) override;
  grpc::Status AddHold(grpc::ServerContext*, const v1::AddHoldRequest*, v1::Hold*) override;
  grpc::Status RemoveHold(grpc::ServerContext*, const v1::RemoveHoldRequest*, v1::RemoveHoldResponse*) override;
  grpc::Status ListHolds(grpc::ServerContext*, const v1::ListHoldsRequest*, v1::ListHoldsResponse*) override;
  grpc::Status LiftSuppression(grpc::ServerContext*, const v1::LiftSuppressionRequest*,
                               v1::LiftSuppressionResponse*) override;

 private:
  OrderBook* const book_;
  Catalog* const catalog_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_ORDER_SERVICE_H_
