#include "daemon/app/server.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <iostream>
#include <optional>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <systemd/sd-daemon.h>

#include "daemon/api/auth.h"
#include "daemon/api/log_service.h"
#include "daemon/api/order_service.h"
#include "daemon/api/request_metrics.h"
#include "daemon/api/shred_service.h"
#include "daemon/api/store_service.h"
#include "daemon/api/unix_listener.h"
#include "daemon/app/memory.h"
#include "daemon/app/metrics_server.h"
#include "daemon/app/watchdog.h"
#include "daemon/base/fs_util.h"
#include "daemon/base/logging.h"
#include "daemon/base/strings.h"
#include "daemon/items/item_store.h"
#include "daemon/keys/vault.h"
#include "daemon/lineage/catalog.h"
#include "daemon/log/transparency_log.h"
#include "daemon/orders/orders.h"
#include "daemon/shred/shredder.h"
#include "daemon/storage/rocks_util.h"
#include "daemon/storage/space_guard.h"
#include "daemon/storage/storage_health.h"

namespace shredd {
namespace {

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

// The scrape: the process-wide instruments plus gauges read from their owners.
std::string RenderMetrics(ItemStore* store, OrderBook* orders, TransparencyLog* log, uint64_t memory_budget_bytes,
                          const MemoryTrimmer* trimmer, const StorageHealth* storage) {
  Exposition e;
  ExposeDaemonMetrics(Metrics(), &e);
  e.AddGauge("shredd_items_stored", "Items (photos and models) held now.", static_cast<double>(store->item_count()));
  auto counts = orders->CountByState();
  std::vector<std::pair<std::string, double>> by_state;
  for (OrderState st :
       {OrderState::kPending, OrderState::kRunning, OrderState::kDone, OrderState::kEmpty, OrderState::kFailed}) {
    by_state.emplace_back(std::string(OrderStateName(st)), static_cast<double>(counts[st]));
  }
  e.AddLabeledGauge("shredd_orders", "Deletion orders known to the daemon, by state.", "state", by_state);
  e.AddGauge("shredd_log_size", "Entries in the transparency log.", static_cast<double>(log->size()));
  e.AddGauge(
      "shredd_storage_writable",
      "1 if writes are taken, 0 while they are stopped (a full disk, or below [storage] min_free_mib; reads go on).",
      storage->state().writable && !storage->guard_stopped() ? 1.0 : 0.0);
  e.AddGauge("shredd_data_dir_free_bytes",
             "Free bytes on the data dir's filesystem, as the free-space guard sees them ([storage] min_free_mib).",
             static_cast<double>(GuardedFreeBytes()));
  e.AddCounter("shredd_storage_errors_total",
               "Background errors RocksDB reported (failed writes, flushes, compactions).", storage->errors());
  e.AddGauge("shredd_root_epoch", "Current root key epoch of the key tree (one per shred epoch).",
             static_cast<double>(store->key_tree().epoch()));
  // Memory: where the resident set goes (docs/SERVICE.md#metrics).
  const RocksDbMemory rocks = ReadRocksDbMemory(store->db());
  const AllocatorStats heap = ReadAllocatorStats();
  e.AddGauge("process_resident_memory_bytes", "Resident set size of the daemon (VmRSS).",
             static_cast<double>(ResidentBytes()));
  e.AddLabeledGauge("shredd_memory_bytes",
                    "Memory by holder: malloc in use / freed but held; RocksDB memtables, table readers outside "
                    "the cache, block cache usage (includes the memtables' reservation) and its pinned part.",
                    "kind",
                    {{"malloc_in_use", static_cast<double>(heap.in_use)},
                     {"malloc_free_held", static_cast<double>(heap.free_held)},
                     {"rocksdb_memtables", static_cast<double>(rocks.memtables)},
                     {"rocksdb_table_readers", static_cast<double>(rocks.table_readers)},
                     {"rocksdb_block_cache", static_cast<double>(rocks.block_cache)},
                     {"rocksdb_block_cache_pinned", static_cast<double>(rocks.block_cache_pinned)}});
  e.AddGauge("shredd_memory_budget_bytes", "RocksDB memory budget ([storage] memory_budget_mib).",
             static_cast<double>(memory_budget_bytes));
  e.AddCounter("shredd_malloc_trims_total",
               "Periodic heap trims (jemalloc purge or malloc_trim: free pages handed back to the kernel).",
               trimmer ? trimmer->trims() : 0);
  e.AddGauge("shredd_malloc_trim_seconds_total", "Time spent in the periodic malloc_trim calls.",
             trimmer ? trimmer->trim_seconds() : 0.0);
  e.AddLabeledGauge("shredd_build_info", "Always 1; the label is the shredd version.", "version",
                    {{SHREDD_VERSION, 1.0}});
  return e.text();
}

// The watchdog's proof of service: a gRPC health check through the server's
// own request path (an in-process channel: the same threads, interceptors
// and services as socket calls, whatever the listeners' credentials), then a
// RocksDB read. NOT_SERVING passes while writes are stopped by an error
// RocksDB recovers from by itself (a full disk), or by the free-space guard
// (space_guard.h): the daemon serves reads and erasures,
// and a restart would not free space (docs/SERVICE.md "Full disk").
absl::Status ProbeService(grpc::GenericStub* health, ItemStore* store, const StorageHealth* storage) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Slice empty_request("");  // HealthCheckRequest{service: ""}: the whole server
  grpc::ByteBuffer request(&empty_request, 1), response;
  std::promise<grpc::Status> done;
  health->UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                    [&done](grpc::Status s) { done.set_value(std::move(s)); });
  grpc::Status s = done.get_future().get();
  if (!s.ok()) return absl::UnavailableError(StrCat("health check failed: ", s.error_message()));
  std::vector<grpc::Slice> slices;
  (void)response.Dump(&slices);
  std::string bytes;
  for (const auto& slice : slices) bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  if (bytes != std::string("\x08\x01", 2)) {
    const StorageState st = storage->state();
    if ((st.writable && !storage->guard_stopped()) || !st.recoverable) {
      return absl::UnavailableError(StrCat("health check: not SERVING", st.reason.empty() ? "" : ": ", st.reason));
    }
  }
  auto stat = store->Stat(Sha256{});  // a real RocksDB read; NOT_FOUND is the healthy answer
  if (!stat.ok() && !absl::IsNotFound(stat.status())) return stat.status();
  return absl::OkStatus();
}

// SIGHUP: applies what can change at run time, keeps the rest.
void ReloadConfig(const DaemonOptions& options, DaemonConfig* running, auth::Authorizer* authorizer) {
  sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
  auto loaded = options.reload
                    ? options.reload()
                    : absl::StatusOr<DaemonConfig>(absl::FailedPreconditionError("no --config file to reload"));
  absl::Status s = loaded.status();
  if (s.ok()) s = ValidateConfig(*loaded);
  auth::Policy policy;
  if (s.ok()) {
    policy = auth::Policy{loaded->local_roles, loaded->tls_roles, getuid()};
    s = auth::ValidatePolicy(policy);
  }
  if (!s.ok()) {
    LogError("config reload failed; the running config stays in force", {{"reason", std::string(s.message())}});
    sd_notify(0, "READY=1\nSTATUS=serving (config reload failed)");
    return;
  }
  SetLogFormat(loaded->log_format);  // first: the lines below are in the new format
  for (const auto& key : KeysNeedingRestart(*running, *loaded)) {
    LogWarning("config key changed; it takes effect at the next start", {{"key", key}});
  }
  authorizer->SetPolicy(std::move(policy));
  running->local_roles = loaded->local_roles;
  running->tls_roles = loaded->tls_roles;
  running->log_format = loaded->log_format;
  running->min_free_mib = loaded->min_free_mib;
  SetSpaceGuardFloor(running->min_free_mib << 20);
  LogInfo("config reloaded", {{"local_grants", running->local_roles.size()},
                              {"tls_grants", running->tls_roles.size()},
                              {"min_free_mib", running->min_free_mib},
                              {"log_format", LogFormatName(running->log_format)}});
  sd_notify(0, "READY=1\nSTATUS=serving");
}

}  // namespace

absl::Status RunDaemon(const DaemonOptions& options) {
  SetLogFormat(options.log_format);
  auto vault = OpenVault(options.vault);
  if (!vault.ok()) return vault.status();
  ItemStore::Options so;
  so.data_dir = options.data_dir;
  so.inline_threshold = options.inline_threshold;
  so.memory_budget_bytes = options.memory_budget_mib << 20;
  auto storage = std::make_shared<StorageHealth>();
  so.storage_health = storage;
  // Before the store opens: its first writes are guarded too. Start-up's
  // own writes (a new key tree and log, finishing pending certifications)
  // keep only the erasure reserve: a daemon must come up on a disk that
  // ingest filled, to serve reads and clean it.
  InstallSpaceGuard(options.data_dir, options.min_free_mib << 20);
  std::optional<ErasureWrites> start_up_writes(std::in_place);
  auto store = ItemStore::Open(so, vault->get());
  if (!store.ok()) return store.status();
  if (auto s = TransparencyLog::CheckSigningKey((*store)->db(), vault->get(), options.new_signing_key); !s.ok()) {
    return s;
  }
  std::string origin = options.log_origin;
  if (origin.empty()) {
    auto pub = (*vault)->SigningPublicKey();
    if (!pub.ok()) return pub.status();
    origin = DefaultLogOrigin(*pub);
  }
  absl::StatusOr<std::unique_ptr<TransparencyLog>> log = TransparencyLog::Open((*store)->db(), vault->get(), origin);
  if (!log.ok()) return log.status();
  if (options.new_signing_key) {
    // The latest stored checkpoint is signed with the new key from now on
    // (the next start checks it).
    auto cp = (*log)->SignedCheckpoint();
    if (!cp.ok()) return cp.status();
    LogWarning("new signing key in use", {{"log_origin", (*log)->origin()}, {"log_size", (*log)->size()}});
  }
  (*store)->set_log(log->get());
  Catalog catalog(store->get());
  Shredder::Options shred_options;
  shred_options.epoch_items = options.shred_epoch_items;
  shred_options.manifest_chunk_items = options.shred_manifest_chunk_items;
  shred_options.inline_manifest_items = options.shred_inline_manifest_items;
  auto shredder = Shredder::Create(store->get(), &catalog, log->get(), shred_options);
  if (!shredder.ok()) return shredder.status();
  if (!options.metrics_listen.empty()) {
    // Before orders resume (they shred): the gauge starts exact.
    if (auto n = (*store)->CountItems(); !n.ok()) return n.status();
  }
  auto orders = OrderBook::Create(store->get(), &catalog, shredder->get());
  if (!orders.ok()) return orders.status();

  StoreService store_service(store->get(), &catalog);
  ShredService shred_service(shredder->get());
  CatalogService catalog_service(store->get(), &catalog);
  OrdersService orders_service(orders->get(), &catalog);
  LogService log_service(log->get());
  // Who may do what: one interceptor decides every call (daemon/api/auth.h).
  auth::Policy policy{options.local_roles, options.tls_roles, getuid()};
  if (auto s = auth::ValidatePolicy(policy); !s.ok()) return s;
  auth::Authorizer authorizer(policy);
  const int tls_set = !options.tls_cert.empty() + !options.tls_key.empty() + !options.tls_client_ca.empty();
  if (tls_set != 0 && tls_set != 3) {
    return absl::InvalidArgumentError("TLS needs a certificate, a key and a client CA, or none of them");
  }
  std::shared_ptr<grpc::ServerCredentials> tcp_creds = grpc::InsecureServerCredentials();
  if (tls_set == 3) {
    auto creds = auth::MutualTlsServerCredentials(options.tls_cert, options.tls_key, options.tls_client_ca);
    if (!creds.ok()) return creds.status();
    tcp_creds = *creds;
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // The builder and the server are released, not destroyed, at exit: their
  // destructors end in grpc_shutdown, which waits ~10 s for an idle executor
  // thread. Storage is closed explicitly before that point.
  // Held by a static (volatile: the store must not be optimised away)
  // pointer so that it stays reachable: LeakSanitizer
  // (scripts/test-sanitizers.sh) then knows it is kept on purpose.
  static grpc::ServerBuilder* volatile builder_ptr;
  builder_ptr = new grpc::ServerBuilder();
  grpc::ServerBuilder& builder = *builder_ptr;
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  // Replies may be large: the private manifest of an order of 100k items is
  // ~18 MB. Until manifests stream (issue 6), allow replies up to 512 MiB.
  builder.SetMaxSendMessageSize(512 * 1024 * 1024);
  std::vector<int> ports(options.listen.size(), 0);
  // unix: listeners are accepted by shredd itself (SO_PEERCRED, see
  // unix_listener.h); tcp: ones by gRPC.
  std::vector<std::unique_ptr<UnixListener>> unix_listeners;
  for (size_t i = 0; i < options.listen.size(); ++i) {
    auto addr = ListenAddress(options.listen[i], tls_set == 3);
    if (!addr.ok()) return addr.status();
    if (addr->starts_with("unix:")) {
      auto l = UnixListener::Bind(addr->substr(5));
      if (!l.ok()) return l.status();
      unix_listeners.push_back(std::move(*l));
    } else {
      builder.AddListeningPort(*addr, tcp_creds, &ports[i]);
    }
  }
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<auth::AuthInterceptorFactory>(&authorizer));
  interceptors.push_back(std::make_unique<RequestMetricsFactory>());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
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
    if (options.listen[i].starts_with("tcp:") && tls_set == 0) authorizer.AddPlaintextTcpPort(ports[i]);
  }
  for (auto& l : unix_listeners) l->Start(server.get(), &authorizer);
  // Hands freed heap pages back to the kernel every 10 s, with or without
  // systemd (daemon/app/memory.h). Outlives the metrics endpoint, which reads it.
  std::unique_ptr<MemoryTrimmer> trimmer;
  if (AllocatorTuningEnabled()) trimmer = std::make_unique<MemoryTrimmer>();
  std::unique_ptr<MetricsServer> metrics;
  if (!options.metrics_listen.empty()) {
    auto m =
        MetricsServer::Start(options.metrics_listen,
                             [s = store->get(), o = orders->get(), l = log->get(), budget = so.memory_budget_bytes,
                              t = trimmer.get(), h = storage.get()] { return RenderMetrics(s, o, l, budget, t, h); });
    if (!m.ok()) {
      server->Shutdown();
      return m.status();
    }
    metrics = std::move(*m);
  }
  std::string listening;
  for (const auto& l : options.listen) listening += (listening.empty() ? "" : " ") + l;
  LogInfo("serving", {{"listen", listening},
                      {"vault", (*vault)->Describe()},
                      {"data_dir", options.data_dir},
                      {"log_origin", (*log)->origin()},
                      {"log_size", (*log)->size()},
                      {"root_epoch", (*store)->key_tree().epoch()},
                      {"version", SHREDD_VERSION}});
  if (metrics) {
    std::string host = options.metrics_listen.substr(0, options.metrics_listen.rfind(':'));
    LogInfo("metrics", {{"url", StrCat("http://", host, ":", metrics->port(), "/metrics")}});
  }
  sd_notify(0, "READY=1\nSTATUS=serving");
  // gRPC health: NOT_SERVING while writes are stopped (docs/SERVICE.md).
  auto storage_monitor = std::make_unique<StorageMonitor>(
      (*store)->db(), storage.get(), [health = server->GetHealthCheckService()](const StorageState& st) {
        if (health != nullptr) health->SetServingStatus(st.writable);
        const std::string status = st.writable
                                       ? std::string("STATUS=serving")
                                       : StrCat("STATUS=serving reads only: writes are stopped (", st.reason, ")");
        sd_notify(0, status.c_str());
      });
  grpc::GenericStub health(server->InProcessChannel(grpc::ChannelArguments()));
  auto watchdog = ServiceWatchdog::StartIfEnabled(
      [&health, s = store->get(), h = storage.get()] { return ProbeService(&health, s, h); });
  if (watchdog)
    LogInfo("watchdog",
            {{"interval_ms", std::chrono::duration_cast<std::chrono::milliseconds>(watchdog->interval()).count()}});

  start_up_writes.reset();
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  DaemonConfig running = options;
  int sig = 0;
  for (;;) {
    sigwait(&set, &sig);
    if (sig != SIGHUP) break;
    ReloadConfig(options, &running, &authorizer);
  }
  sd_notify(0, "STOPPING=1\nSTATUS=draining");
  LogInfo("stopping: draining in-flight calls", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  watchdog.reset();
  for (auto& l : unix_listeners) l->Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(10));
  server->Wait();
  storage_monitor.reset();
  for (const auto& l : options.listen) {
    if (l.starts_with("unix:")) unlink(l.substr(5).c_str());
  }
  // No call is in flight any more: finish the order in progress, then close
  // the log and RocksDB cleanly.
  metrics.reset();
  trimmer.reset();
  orders->reset();
  shredder->reset();
  log->reset();
  store->reset();
  static grpc::Server* volatile kept_server;  // reachable until exit, like builder_ptr
  kept_server = server.release();
  (void)kept_server;
  LogInfo("stopped cleanly");
  return absl::OkStatus();
}

}  // namespace shredd
