#include "daemon/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <chrono>
#include <iostream>

#include "daemon/strings.h"
#include "daemon/catalog.h"
#include "daemon/fs_util.h"
#include "daemon/order_service.h"
#include "daemon/orders.h"
#include "daemon/item_store.h"
#include "daemon/log_service.h"
#include "daemon/shred_service.h"
#include "daemon/shredder.h"
#include "daemon/store_service.h"
#include "daemon/transparency_log.h"
#include "daemon/vault.h"

namespace shredd {
namespace {

// Turns a --listen value into a gRPC address; prepares unix socket paths.
absl::StatusOr<std::string> ListenAddress(const std::string& spec) {
  if (spec.starts_with("unix:")) {
    std::string path = spec.substr(5);
    if (path.empty()) return absl::InvalidArgumentError("--listen unix: needs a path");
    if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return absl::InvalidArgumentError(StrCat("socket path too long: ", path));
    }
    if (auto s = MakeDirs(DirName(path), 0755); !s.ok()) return s;
    struct stat st {};
    if (lstat(path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        return absl::FailedPreconditionError(StrCat(path, " exists and is not a socket"));
      }
      // A socket left by a previous run. If something answers there, refuse.
      int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::memcpy(addr.sun_path, path.c_str(), path.size());
      bool live = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
      close(fd);
      if (live) return absl::FailedPreconditionError(StrCat("another daemon is listening on ", path));
      unlink(path.c_str());
    }
    return spec;
  }
  if (spec.starts_with("tcp:")) {
    std::string hostport = spec.substr(4);
    // Plaintext TCP only on loopback until TLS lands (see docs/OPERATIONS.md).
    if (!hostport.starts_with("127.") && !hostport.starts_with("localhost:") && !hostport.starts_with("[::1]:")) {
      return absl::InvalidArgumentError(StrCat(
          "refusing plaintext TCP on ", hostport, ": only loopback addresses are allowed without TLS"));
    }
    return hostport;
  }
  return absl::InvalidArgumentError(StrCat("unknown listen address \"", spec,
                                                 "\": expected unix:PATH or tcp:HOST:PORT"));
}

}  // namespace

absl::Status RunDaemon(const DaemonOptions& options) {
  auto vault = OpenVault(options.vault);
  if (!vault.ok()) return vault.status();
  ItemStore::Options so;
  so.data_dir = options.data_dir;
  so.inline_threshold = options.inline_threshold;
  auto store = ItemStore::Open(so, vault->get());
  if (!store.ok()) return store.status();
  std::string origin = options.log_origin;
  if (origin.empty()) {
    auto pub = (*vault)->SigningPublicKey();
    if (!pub.ok()) return pub.status();
    origin = DefaultLogOrigin(*pub);
  }
  absl::StatusOr<std::unique_ptr<TransparencyLog>> log = TransparencyLog::Open((*store)->db(), vault->get(), origin);
  if (!log.ok()) return log.status();
  (*store)->set_log(log->get());
  Catalog catalog(store->get());
  auto shredder = Shredder::Create(store->get(), &catalog, log->get());
  if (!shredder.ok()) return shredder.status();
  auto orders = OrderBook::Create(store->get(), &catalog, shredder->get());
  if (!orders.ok()) return orders.status();

  StoreService store_service(store->get(), &catalog);
  ShredService shred_service(shredder->get());
  CatalogService catalog_service(store->get(), &catalog);
  OrdersService orders_service(orders->get(), &catalog);
  LogService log_service(log->get());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // The builder and the server are released, not destroyed, at exit: their
  // destructors end in grpc_shutdown, which waits ~10 s for an idle executor
  // thread. Storage is closed explicitly before that point.
  auto* builder_ptr = new grpc::ServerBuilder();
  grpc::ServerBuilder& builder = *builder_ptr;
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  // Replies may be large: the private manifest of an order of 100k items is
  // ~18 MB. Until manifests stream (issue 6), allow replies up to 512 MiB.
  builder.SetMaxSendMessageSize(512 * 1024 * 1024);
  std::vector<int> ports(options.listen.size(), 0);
  for (size_t i = 0; i < options.listen.size(); ++i) {
    auto addr = ListenAddress(options.listen[i]);
    if (!addr.ok()) return addr.status();
    builder.AddListeningPort(*addr, grpc::InsecureServerCredentials(), &ports[i]);
  }
  builder.RegisterService(&store_service);
  builder.RegisterService(&shred_service);
  builder.RegisterService(&catalog_service);
  builder.RegisterService(&orders_service);
  builder.RegisterService(&log_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) return absl::UnavailableError("cannot start the gRPC server (address in use?)");
  for (size_t i = 0; i < options.listen.size(); ++i) {
    if (options.listen[i].starts_with("tcp:") && ports[i] == 0) {
      server->Shutdown();
      return absl::UnavailableError(StrCat("cannot bind ", options.listen[i]));
    }
  }
  std::cerr << "shredd: serving on";
  for (const auto& l : options.listen) std::cerr << " " << l;
  std::cerr << " (vault: " << (*vault)->Describe() << ", data: " << options.data_dir
            << ", log: " << (*log)->origin() << " at size " << (*log)->size() << ")" << std::endl;
  sd_notify(0, "READY=1\nSTATUS=serving");

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  sd_notify(0, "STOPPING=1\nSTATUS=draining");
  std::cerr << "shredd: signal " << sig << ", draining in-flight calls" << std::endl;
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(10));
  server->Wait();
  for (const auto& l : options.listen) {
    if (l.starts_with("unix:")) unlink(l.substr(5).c_str());
  }
  // No call is in flight any more: finish the order in progress, then close
  // the log and RocksDB cleanly.
  orders->reset();
  shredder->reset();
  log->reset();
  store->reset();
  (void)server.release();
  (void)builder_ptr;
  std::cerr << "shredd: stopped cleanly" << std::endl;
  return absl::OkStatus();
}

}  // namespace shredd
