// gRPC front of the OrderBook (orders, holds, suppression): translation and
// status mapping only.
#ifndef SHREDD_DAEMON_API_ORDER_SERVICE_H_
#define SHREDD_DAEMON_API_ORDER_SERVICE_H_

#include "shredd/v1/orders.grpc.pb.h"

#include "daemon/api/stall_watch.h"
#include "daemon/lineage/catalog.h"
#include "daemon/orders/orders.h"

namespace shredd {

class OrdersService final : public v1::Orders::Service {
 public:
  // `stalls` (may be null) cancels subject-map streams nobody reads.
  OrdersService(OrderBook* book, Catalog* catalog, StallWatch* stalls = nullptr)
      : book_(book), catalog_(catalog), stalls_(stalls) {}
  grpc::Status PlanOrder(grpc::ServerContext*, const v1::OrderSpec*, v1::Plan*) override;
  grpc::Status SubmitOrder(grpc::ServerContext*, const v1::OrderSpec*, v1::OrderStatus*) override;
  grpc::Status GetOrder(grpc::ServerContext*, const v1::GetOrderRequest*, v1::OrderStatus*) override;
  grpc::Status GetSubjectMap(grpc::ServerContext*, const v1::SubjectMapRequest*,
                             grpc::ServerWriter<v1::SubjectMapChunk>*) override;
  grpc::Status ReleaseSubjectMap(grpc::ServerContext*, const v1::SubjectMapRequest*,
                                 v1::ReleaseSubjectMapResponse*) override;
  grpc::Status ListOrders(grpc::ServerContext*, const v1::ListOrdersRequest*, v1::ListOrdersResponse*) override;
  grpc::Status AddHold(grpc::ServerContext*, const v1::AddHoldRequest*, v1::Hold*) override;
  grpc::Status RemoveHold(grpc::ServerContext*, const v1::RemoveHoldRequest*, v1::RemoveHoldResponse*) override;
  grpc::Status ListHolds(grpc::ServerContext*, const v1::ListHoldsRequest*, v1::ListHoldsResponse*) override;
  grpc::Status LiftSuppression(grpc::ServerContext*, const v1::LiftSuppressionRequest*,
                               v1::LiftSuppressionResponse*) override;

 private:
  OrderBook* const book_;
  Catalog* const catalog_;
  StallWatch* const stalls_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_API_ORDER_SERVICE_H_
