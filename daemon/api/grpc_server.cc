#include "daemon/api/grpc_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>

#include "daemon/api/request_metrics.h"
#include "daemon/base/fs_util.h"
#include "daemon/base/strings.h"

namespace shredd {

// Turns a --listen value into a gRPC address; prepares unix socket paths.
absl::StatusOr<std::string> ListenAddress(const std::string& spec, bool tls) {
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
    // With TLS configured every tcp: listener is mutual TLS. Without it,
    // plaintext TCP only on loopback, callers identified by uid
    // (docs/SECURITY.md).
    if (!tls && !hostport.starts_with("127.") && !hostport.starts_with("localhost:") &&
        !hostport.starts_with("[::1]:")) {
      return absl::InvalidArgumentError(StrCat("refusing plaintext TCP on ", hostport,
                                               ": only loopback addresses are allowed without TLS "
                                               "(--tls-cert, --tls-key, --tls-client-ca)"));
    }
    return hostport;
  }
  return absl::InvalidArgumentError(
      StrCat("unknown listen address \"", spec, "\": expected unix:PATH or tcp:HOST:PORT"));
}

// What gRPC itself holds for calls is bounded by three settings (docs/CONFIG.md
// [server]; PERFORMANCE.md "gRPC's own buffers"):
// - each call's HTTP/2 receive window is fixed at stream_window_kib. gRPC's
//   BDP probe would grow it with the link's throughput, not with the
//   handler's reading, so an upload waiting for transfer memory absorbed
//   ~30 MiB of its file (48 such uploads: 1.5 GiB resident);
// - at most max_calls calls are served at once: the sync server's thread
//   quota (one thread per call, plus the poller that hands calls out) makes
//   gRPC refuse further calls with RESOURCE_EXHAUSTED;
// - every connection is pinged each keepalive_s, with or without calls or
//   data, and dropped when the ping goes unanswered: an upload whose client
//   vanished (TCP to a lost machine never closes by itself) would otherwise
//   hold its call and its transfer memory forever.
void GrpcServer::LimitCalls(const DaemonConfig& config, grpc::ServerBuilder& builder) {
  const int keepalive_ms = static_cast<int>(config.keepalive_s * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, keepalive_ms);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, std::min(keepalive_ms, 20000));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, static_cast<int>(config.stream_window_kib << 10));
  grpc::ResourceQuota quota("shredd-calls");
  quota.SetMaxThreads(static_cast<int>(config.max_calls) + 1);
  builder.SetResourceQuota(quota);
}

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(const DaemonConfig& config, const ApiDomain& domain) {
  // Who may do what: one interceptor decides every call (daemon/api/auth.h).
  auth::Policy policy{config.local_roles, config.tls_roles, getuid()};
  if (auto s = auth::ValidatePolicy(policy); !s.ok()) return s;
  const int tls_set = !config.tls_cert.empty() + !config.tls_key.empty() + !config.tls_client_ca.empty();
  if (tls_set != 0 && tls_set != 3) {
    return absl::InvalidArgumentError("TLS needs a certificate, a key and a client CA, or none of them");
  }
  std::unique_ptr<GrpcServer> g(new GrpcServer(config, domain, std::move(policy)));
  g->tls_ = tls_set == 3;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // Held by a static (volatile: the store must not be optimised away)
  // pointer so that it stays reachable: LeakSanitizer
  // (scripts/test-sanitizers.sh) then knows it is kept on purpose.
  static grpc::ServerBuilder* volatile builder_ptr;
  builder_ptr = new grpc::ServerBuilder();
  grpc::ServerBuilder& builder = *builder_ptr;
  builder.SetMaxReceiveMessageSize(config.max_message_bytes);
  // Replies may be large: the private manifest of an order of 100k items is
  // ~18 MB. Until manifests stream (issue 6), allow replies up to 512 MiB.
  builder.SetMaxSendMessageSize(512 * 1024 * 1024);
  LimitCalls(config, builder);
  std::vector<int> ports(config.listen.size(), 0);
  if (auto s = g->Listen(config, builder, &ports); !s.ok()) return s;
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<auth::AuthInterceptorFactory>(&g->authorizer_));
  interceptors.push_back(std::make_unique<RequestMetricsFactory>());
  interceptors.push_back(g->call_holds_.Interceptors());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.RegisterService(&g->store_service_);
  builder.RegisterService(&g->shred_service_);
  builder.RegisterService(&g->catalog_service_);
  builder.RegisterService(&g->orders_service_);
  builder.RegisterService(&g->log_service_);
  g->server_ = builder.BuildAndStart();
  if (g->server_ == nullptr) return absl::UnavailableError("cannot start the gRPC server (address in use?)");
  for (size_t i = 0; i < config.listen.size(); ++i) {
    if (config.listen[i].starts_with("tcp:") && ports[i] == 0) {
      return absl::UnavailableError(StrCat("cannot bind ", config.listen[i]));  // ~GrpcServer shuts it down
    }
    if (config.listen[i].starts_with("tcp:") && !g->tls_) g->authorizer_.AddPlaintextTcpPort(ports[i]);
  }
  for (auto& l : g->unix_listeners_) l->Start(g->server_.get(), &g->authorizer_);
  return g;
}

GrpcServer::GrpcServer(const DaemonConfig& config, const ApiDomain& domain, auth::Policy policy)
    : stall_watch_(std::chrono::seconds(config.transfer_idle_s)),
      store_service_(domain.store, domain.catalog, domain.transfers, &stall_watch_),
      shred_service_(domain.shredder, domain.transfers, &call_holds_, &stall_watch_),
      catalog_service_(domain.store, domain.catalog, domain.transfers, &call_holds_, &stall_watch_),
      orders_service_(domain.orders, domain.catalog, &stall_watch_),
      log_service_(domain.log),
      authorizer_(std::move(policy)),
      listen_(config.listen) {}

// unix: listeners are accepted by shredd itself (SO_PEERCRED, see
// unix_listener.h); tcp: ones by gRPC.
absl::Status GrpcServer::Listen(const DaemonConfig& config, grpc::ServerBuilder& builder, std::vector<int>* ports) {
  std::shared_ptr<grpc::ServerCredentials> tcp_creds = grpc::InsecureServerCredentials();
  if (tls_) {
    auto creds = auth::MutualTlsServerCredentials(config.tls_cert, config.tls_key, config.tls_client_ca);
    if (!creds.ok()) return creds.status();
    tcp_creds = *creds;
  }
  for (size_t i = 0; i < config.listen.size(); ++i) {
    auto addr = ListenAddress(config.listen[i], tls_);
    if (!addr.ok()) return addr.status();
    if (addr->starts_with("unix:")) {
      auto l = UnixListener::Bind(addr->substr(5));
      if (!l.ok()) return l.status();
      unix_listeners_.push_back(std::move(*l));
    } else {
      builder.AddListeningPort(*addr, tcp_creds, &(*ports)[i]);
    }
  }
  return absl::OkStatus();
}

void GrpcServer::Stop() {
  for (auto& l : unix_listeners_) l->Stop();
  if (server_ == nullptr) return;
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(10));
  server_->Wait();
}

GrpcServer::~GrpcServer() {
  Stop();
  if (server_ != nullptr) {
    for (const auto& l : listen_) {
      if (l.starts_with("unix:")) unlink(l.substr(5).c_str());
    }
  }
  static grpc::Server* volatile kept_server;  // reachable until exit, like the builder
  kept_server = server_.release();
  (void)kept_server;
}

}  // namespace shredd
