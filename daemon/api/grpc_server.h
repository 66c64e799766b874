// Server assembly: the gRPC server with every service, the auth interceptor
// and request metrics, listening on unix: sockets (accepted by shredd
// itself, SO_PEERCRED: unix_listener.h) and tcp: ports (gRPC's, plaintext on
// loopback only or mutual TLS).
#ifndef SHREDD_DAEMON_API_GRPC_SERVER_H_
#define SHREDD_DAEMON_API_GRPC_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include <grpcpp/grpcpp.h>

#include "daemon/api/auth.h"
#include "daemon/api/catalog_service.h"
#include "daemon/api/log_service.h"
#include "daemon/api/order_service.h"
#include "daemon/api/shred_service.h"
#include "daemon/api/stall_watch.h"
#include "daemon/api/store_service.h"
#include "daemon/api/unix_listener.h"
#include "daemon/config/config.h"

namespace shredd {

// What the services front (not owned; outlive the server).
struct ApiDomain {
  ItemStore* store;
  Catalog* catalog;
  Shredder* shredder;
  OrderBook* orders;
  TransparencyLog* log;
  MemoryGate* transfers;  // the transfer memory budget; null: none
};

// Turns a --listen value into a gRPC address ("unix:PATH" or "HOST:PORT");
// prepares unix socket paths (refusing one another daemon answers on).
// INVALID_ARGUMENT for plaintext TCP off loopback unless `tls`.
absl::StatusOr<std::string> ListenAddress(const std::string& spec, bool tls);

class GrpcServer {
 public:
  // Validates the policy and TLS settings of `config`, binds every listener
  // and starts serving.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(const DaemonConfig& config, const ApiDomain& domain);
  // Stops the listeners, drains in-flight calls (at most 10 s), removes the
  // unix sockets. The server itself is released, not destroyed: its
  // destructor ends in grpc_shutdown, which waits ~10 s for an idle executor
  // thread.
  ~GrpcServer();

  grpc::Server* server() { return server_.get(); }
  auth::Authorizer& authorizer() { return authorizer_; }

 private:
  GrpcServer(const DaemonConfig& config, const ApiDomain& domain, auth::Policy policy);
  absl::Status Listen(const DaemonConfig& config, grpc::ServerBuilder& builder, std::vector<int>* ports);
  static void LimitCalls(const DaemonConfig& config, grpc::ServerBuilder& builder);
  void Stop();

  CallHolds call_holds_;    // before the services that keep leases in it
  StallWatch stall_watch_;  // before the services whose transfers it watches
  StoreService store_service_;
  ShredService shred_service_;
  CatalogService catalog_service_;
  OrdersService orders_service_;
  LogService log_service_;
  auth::Authorizer authorizer_;
  bool tls_ = false;
  std::vector<std::string> listen_;
  std::vector<std::unique_ptr<UnixListener>> unix_listeners_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_API_GRPC_SERVER_H_
