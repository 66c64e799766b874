#include "daemon/app/server.h"

#include <signal.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <iostream>
#include <optional>

#include "absl/strings/ascii.h"
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <systemd/sd-daemon.h>

#include "daemon/api/auth.h"
#include "daemon/api/grpc_server.h"
#include "daemon/app/memory.h"
#include "daemon/app/metrics_server.h"
#include "daemon/app/path_safety.h"
#include "daemon/app/state_replication.h"
#include "daemon/app/watchdog.h"
#include "daemon/base/fs_util.h"
#include "daemon/base/logging.h"
#include "daemon/base/memory_gate.h"
#include "daemon/base/strings.h"
#include "daemon/crypto/digest.h"
#include "daemon/items/item_store.h"
#include "daemon/keys/vault.h"
#include "daemon/lineage/catalog.h"
#include "daemon/log/tile_writer.h"
#include "daemon/log/transparency_log.h"
#include "daemon/orders/orders.h"
#include "daemon/shred/shredder.h"
#include "daemon/storage/blob_backend_s3.h"
#include "daemon/storage/rocks_util.h"
#include "daemon/storage/s3_client.h"
#include "daemon/storage/space_guard.h"
#include "daemon/storage/state_replicator.h"
#include "daemon/storage/storage_health.h"

namespace shredd {
namespace {

// One series per tile writer, labelled by where it writes: "dir" ([log]
// tiles_dir) or "object_store" ([object_store] log_tiles).
void ExposeTileMetrics(const std::vector<const TileWriter*>& writers, Exposition* e) {
  if (writers.empty()) return;
  std::vector<TileWriter::Stats> st;
  std::vector<std::string> target;
  for (const TileWriter* w : writers) {
    st.push_back(w->stats());
    target.emplace_back(w->where().starts_with("s3://") ? "object_store" : "dir");
  }
  auto series = [&](auto value) {
    std::vector<std::pair<std::string, double>> out;
    for (size_t i = 0; i < st.size(); ++i) out.emplace_back(target[i], static_cast<double>(value(st[i])));
    return out;
  };
  e->AddLabeledGauge("shredd_log_tiles_size", "Tree size of the checkpoint last written to the log's tiles.", "target",
                     series([](const TileWriter::Stats& t) { return t.published_size; }));
  e->AddLabeledGauge("shredd_log_tiles_failing", "1 if the last attempt to write the log's tiles failed (retried).",
                     "target", series([](const TileWriter::Stats& t) { return t.failing ? 1 : 0; }));
  e->AddLabeledCounter("shredd_log_tiles_failures_total", "Failed attempts to write the log's tiles (each retried).",
                       "target", series([](const TileWriter::Stats& t) { return t.failures; }));
  e->AddLabeledCounter("shredd_log_tiles_oversized_entries_total",
                       "Log entries too long (over 65535 bytes) for a tlog-tiles entry bundle; their bundles are not "
                       "written.",
                       "target", series([](const TileWriter::Stats& t) { return t.oversized_entries; }));
}

// The scrape: the process-wide instruments plus gauges read from their owners.
std::string RenderMetrics(ItemStore* store, OrderBook* orders, TransparencyLog* log, uint64_t memory_budget_bytes,
                          const MemoryGate* transfers, const MemoryTrimmer* trimmer, const StorageHealth* storage,
                          const std::vector<const TileWriter*>& tiles) {
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
  ExposeTileMetrics(tiles, &e);
  e.AddGauge(
      "shredd_storage_writable",
      "1 if writes are taken, 0 while they are stopped (a full disk, or below [storage] min_free_mib; reads go on).",
      storage->state().writable && !storage->guard_stopped() ? 1.0 : 0.0);
  e.AddGauge("shredd_data_dir_free_bytes",
             "Free bytes on the data dir's filesystem, as the free-space guard sees them ([storage] min_free_mib).",
             static_cast<double>(GuardedFreeBytes()));
  e.AddCounter("shredd_storage_errors_total",
               "Background errors RocksDB reported (failed writes, flushes, compactions).", storage->errors());
  const BlobReaper::Stats drops = store->blob_deletions();
  e.AddGauge("shredd_blob_deletions_pending",
             "Ciphertext objects of shredded items still to delete from the blob store (deleted in the background).",
             static_cast<double>(drops.pending));
  e.AddCounter("shredd_blob_deletions_total", "Ciphertext objects of shredded items deleted since start.",
               drops.deleted);
  e.AddCounter("shredd_blob_deletion_failures_total",
               "Failed attempts to delete a shredded item's ciphertext object (retried with backoff).", drops.failures);
  e.AddGauge("shredd_blob_deletions_failing",
             "Queued ciphertext objects whose last deletion attempt failed (each retried with its own backoff; the "
             "others are deleted meanwhile).",
             static_cast<double>(drops.failing));
  e.AddCounter("shredd_blob_gc_failures_total",
               "Objects start-up garbage collection could not delete, plus listings of the blob store it could not "
               "finish (logged; the start goes on).",
               store->blob_gc_failures());
  e.AddGauge("shredd_blob_unknown_objects",
             "Objects under the object store prefix that this daemon neither holds nor began, found by start-up "
             "garbage collection and left alone (another daemon's on the same prefix, an older copy's, or orphans "
             "from before upload intents).",
             static_cast<double>(store->blob_unknown_objects()));
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
  e.AddGauge("shredd_transfer_memory_budget_bytes",
             "Buffers concurrent downloads, uploads and large replies may hold ([storage] transfer_memory_mib).",
             static_cast<double>(transfers->budget()));
  e.AddGauge("shredd_transfer_memory_bytes", "Transfer memory leased by calls now.",
             static_cast<double>(transfers->in_use()));
  e.AddCounter("shredd_transfer_memory_waits_total",
               "Calls that waited for transfer memory (the budget was taken by other calls).", transfers->waits());
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
  // The values are checked, not the files and directories they name: those
  // matter only at the next start (below), and a renewed TLS certificate
  // must not stop a reload that withdraws a role.
  if (s.ok()) s = ValidateConfig(*loaded, /*check_files=*/false);
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
  std::vector<std::string> warnings;
  absl::Status next_start = ValidateConfig(*loaded);
  if (next_start.ok()) next_start = CheckStoragePaths(*loaded, &warnings);
  if (!next_start.ok()) {
    LogError("config reloaded, but the next start would refuse it; fix it before restarting",
             {{"reason", std::string(next_start.message())}});
  }
  for (const auto& w : warnings) LogWarning(w);
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

// Everything the daemon serves, opened at start-up (OpenDomain), closed in
// reverse order of dependency (Close).
struct Domain {
  std::unique_ptr<Vault> vault;
  std::shared_ptr<StorageHealth> storage = std::make_shared<StorageHealth>();
  uint64_t memory_budget_bytes = 0;
  std::unique_ptr<ItemStore> store;
  // State replication (docs/RECOVERY.md). Declared after the store, so
  // destroyed before it (its last shipment reads the database); Close()
  // stops it too.
  std::unique_ptr<StateReplicator> replicator;
  std::unique_ptr<TransparencyLog> log;
  // [log] tiles_dir and [object_store] log_tiles: stopped before the log closes.
  std::vector<std::unique_ptr<TileWriter>> tiles;
  std::vector<const TileWriter*> tile_writers() const {
    std::vector<const TileWriter*> out;
    for (const auto& t : tiles) out.push_back(t.get());
    return out;
  }
  std::unique_ptr<Catalog> catalog;
  std::unique_ptr<Shredder> shredder;
  std::unique_ptr<OrderBook> orders;
  // [storage] transfer_memory_mib: leased by downloads, uploads and large
  // inline replies (daemon/base/memory_gate.h).
  std::unique_ptr<MemoryGate> transfers;

  ApiDomain api() const {
    return {store.get(), catalog.get(), shredder.get(), orders.get(), log.get(), transfers.get()};
  }
  // After the last call: finishes the order in progress, then closes the log
  // and RocksDB cleanly.
  void Close() {
    orders.reset();
    shredder.reset();
    catalog.reset();
    tiles.clear();
    log.reset();
    StopStateReplication(config, std::move(replicator));  // ships what is written, before RocksDB closes
    store.reset();
  }
  DaemonConfig config;  // for StopStateReplication
};

// The object store, checked before anything is written (ProbeObjectStore).
absl::StatusOr<std::unique_ptr<BlobBackend>> OpenObjectStore(const ObjectStoreConfig& os) {
  auto client = S3Client::Create(S3ConfigFrom(os));
  if (!client.ok()) return client.status();
  auto versioning = ProbeObjectStore(os, **client);
  if (!versioning.ok()) return versioning.status();
  LogInfo(
      "object store",
      {{"url", os.url}, {"endpoint", (*client)->config().endpoint}, {"versioning", *versioning ? "enabled" : "off"}});
  S3BlobOptions blob_options;
  blob_options.part_size = os.part_size_mib << 20;
  blob_options.concurrency = static_cast<int>(os.concurrency);
  return OpenS3BlobBackend(std::shared_ptr<S3Client>(std::move(*client)), blob_options);
}

// This data dir's id (DATA_DIR/vault-owner, made at its first start): what
// a vault records as its owner. A copy of the data dir has the same id; a
// restored data dir a new one.
absl::StatusOr<std::string> DataDirId(const std::string& data_dir) {
  if (auto s = MakeDirs(data_dir, 0700); !s.ok()) return s;
  const std::string path = data_dir + "/vault-owner";
  auto text = ReadSmallFile(path, 64);
  if (text.ok()) {
    std::string id(absl::StripAsciiWhitespace(*text));
    if (id.size() != 32 || id.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return absl::DataLossError(StrCat(path, " does not hold a data dir id (32 lowercase hex digits)"));
    }
    return id;
  }
  if (!absl::IsNotFound(text.status())) return text.status();
  uint8_t raw[16];
  randombytes_buf(raw, sizeof raw);
  const std::string id = HexEncode(std::span<const uint8_t>(raw, sizeof raw));
  if (auto s = WriteFileDurably(path, id); !s.ok()) return s;
  return id;
}

absl::Status OpenStore(const DaemonOptions& options, Domain* d) {
  ItemStore::Options so;
  if (!options.object_store.url.empty()) {
    // Checked before the vault and RocksDB open: an unusable store leaves
    // the data dir and the vault as they were.
    auto blobs = OpenObjectStore(options.object_store);
    if (!blobs.ok()) return blobs.status();
    auto held = std::make_shared<std::unique_ptr<BlobBackend>>(std::move(*blobs));
    so.open_blobs = [held]() -> absl::StatusOr<std::unique_ptr<BlobBackend>> {
      if (*held == nullptr) return absl::InternalError("the object store backend was opened twice");
      return std::move(*held);
    };
  }
  auto vault = OpenVault(options.vault);
  if (!vault.ok()) return vault.status();
  d->vault = std::move(*vault);
  // One daemon per vault (docs/VAULT.md): claimed before the key tree
  // touches a root (its start destroys the roots it does not know).
  auto owner = DataDirId(options.data_dir);
  if (!owner.ok()) return owner.status();
  if (auto s = d->vault->ClaimOwnership(*owner, options.take_over_vault); !s.ok()) return s;
  so.data_dir = options.data_dir;
  so.inline_threshold = options.inline_threshold;
  so.memory_budget_bytes = options.memory_budget_mib << 20;
  so.storage_health = d->storage;
  d->transfers = std::make_unique<MemoryGate>(options.transfer_memory_mib << 20);
  d->memory_budget_bytes = so.memory_budget_bytes;
  // State replication (docs/RECOVERY.md), registered before the
  // store opens RocksDB (it archives the WAL for it), started once it has.
  d->config = options;
  auto replicator = PrepareStateReplication(options, d->vault.get());
  if (!replicator.ok()) return replicator.status();
  d->replicator = std::move(*replicator);
  if (StateReplicator* r = d->replicator.get()) {
    // Nothing in the store is deleted (leftover roots, blob garbage, a lost
    // WAL tail) if it holds newer state than this data dir: another daemon's.
    // The state this run continues ends here: what the start writes next is
    // this run's (StateRun::fork).
    so.before_use = [r](rocksdb::DB* db) {
      r->OpenedAt(db->GetLatestSequenceNumber());
      return r->CheckNoNewerState(db->GetLatestSequenceNumber());
    };
  }
  auto store = ItemStore::Open(so, d->vault.get());
  if (!store.ok()) return store.status();
  d->store = std::move(*store);
  // Before the replicator starts: it signs state objects with the vault's
  // key, and a first signature would make one where the log needs the old.
  if (auto s = TransparencyLog::CheckSigningKey(d->store->db(), d->vault.get(), options.new_signing_key); !s.ok()) {
    return s;
  }
  if (d->replicator) d->replicator->Start(d->store->db());
  return absl::OkStatus();
}

// The log's static copies (daemon/log/tile_writer.h), before anything
// appends: [log] tiles_dir, [object_store] log_tiles. A directory that cannot
// be made is an error at start; later write failures are retried and never
// stop the log.
absl::Status StartTileWriters(const DaemonOptions& options, Domain* d) {
  if (!options.log_tiles_dir.empty()) {
    std::string dir = options.log_tiles_dir;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    if (auto s = MakeDirs(dir, 0755); !s.ok()) return s;
    struct stat tiles_st {
    }, data_st{};
    const bool guard = stat(dir.c_str(), &tiles_st) != 0 || stat(options.data_dir.c_str(), &data_st) != 0 ||
                       tiles_st.st_dev == data_st.st_dev;
    d->tiles.push_back(std::make_unique<TileWriter>(d->log.get(), FileTileStore(dir, guard), TileWriter::Options{}));
    LogInfo("log tiles", {{"dir", dir}, {"free_space_guard", guard}});
  }
  if (options.object_store.log_tiles && !options.object_store.url.empty()) {
    auto client = MakeObjectStoreClient(options.object_store);
    if (!client.ok()) return client.status();
    TileWriter::Options o;
    o.min_interval = std::chrono::milliseconds(1000);  // each publish is a few PUTs: at most one a second
    d->tiles.push_back(std::make_unique<TileWriter>(d->log.get(), S3TileStore(*std::move(client)), o));
    LogInfo("log tiles", {{"object_store", d->tiles.back()->where()}});
  }
  for (auto& t : d->tiles) t->Start();
  return absl::OkStatus();
}

absl::Status OpenLog(const DaemonOptions& options, Domain* d) {
  std::string origin = options.log_origin;
  if (origin.empty()) {
    auto pub = d->vault->SigningPublicKey();
    if (!pub.ok()) return pub.status();
    origin = DefaultLogOrigin(*pub);
  }
  auto log = TransparencyLog::Open(d->store->db(), d->vault.get(), origin);
  if (!log.ok()) return log.status();
  d->log = std::move(*log);
  if (options.new_signing_key) {
    // The latest stored checkpoint is signed with the new key from now on
    // (the next start checks it).
    auto cp = d->log->SignedCheckpoint();
    if (!cp.ok()) return cp.status();
    LogWarning("new signing key in use", {{"log_origin", d->log->origin()}, {"log_size", d->log->size()}});
  }
  d->store->set_log(d->log.get());
  return StartTileWriters(options, d);
}

// The vault, the store, the log, the catalog, the shredder (which finishes
// pending certifications) and the order book (which resumes orders).
absl::Status OpenDomain(const DaemonOptions& options, Domain* d) {
  if (auto s = OpenStore(options, d); !s.ok()) return s;
  if (auto s = OpenLog(options, d); !s.ok()) return s;
  d->catalog = std::make_unique<Catalog>(d->store.get());
  Shredder::Options shred_options;
  shred_options.epoch_items = options.shred_epoch_items;
  shred_options.manifest_chunk_items = options.shred_manifest_chunk_items;
  shred_options.inline_manifest_items = options.shred_inline_manifest_items;
  auto shredder = Shredder::Create(d->store.get(), d->catalog.get(), d->log.get(), shred_options);
  if (!shredder.ok()) return shredder.status();
  d->shredder = std::move(*shredder);
  if (!options.metrics_listen.empty()) {
    // Before orders resume (they shred): the gauge starts exact.
    if (auto n = d->store->CountItems(); !n.ok()) return n.status();
  }
  auto orders = OrderBook::Create(d->store.get(), d->catalog.get(), d->shredder.get());
  if (!orders.ok()) return orders.status();
  d->orders = std::move(*orders);
  return absl::OkStatus();
}

// What watches the running daemon: the heap trimmer, the metrics endpoint,
// the storage monitor (health NOT_SERVING while writes are stopped) and the
// systemd watchdog. Destroyed in reverse order of declaration.
struct Monitors {
  std::unique_ptr<MemoryTrimmer> trimmer;
  std::unique_ptr<MetricsServer> metrics;
  std::unique_ptr<StorageMonitor> storage_monitor;
  std::unique_ptr<grpc::GenericStub> health;
  std::unique_ptr<ServiceWatchdog> watchdog;
};

absl::Status StartMetrics(const DaemonOptions& options, const Domain& d, Monitors* m) {
  // Hands freed heap pages back to the kernel every 10 s, with or without
  // systemd (daemon/app/memory.h). Outlives the metrics endpoint, which reads it.
  if (AllocatorTuningEnabled()) m->trimmer = std::make_unique<MemoryTrimmer>();
  if (options.metrics_listen.empty()) return absl::OkStatus();
  auto metrics = MetricsServer::Start(
      options.metrics_listen,
      [s = d.store.get(), o = d.orders.get(), l = d.log.get(), budget = d.memory_budget_bytes, g = d.transfers.get(),
       t = m->trimmer.get(), h = d.storage.get(), r = d.replicator.get(), w = d.tile_writers()] {
        return RenderMetrics(s, o, l, budget, g, t, h, w) + StateReplicationMetrics(r, s->db());
      });
  if (!metrics.ok()) return metrics.status();
  m->metrics = std::move(*metrics);
  // Logged before the gRPC server takes calls: whoever sees the daemon
  // serve finds the URL in the log already.
  std::string host = options.metrics_listen.substr(0, options.metrics_listen.rfind(':'));
  LogInfo("metrics", {{"url", StrCat("http://", host, ":", m->metrics->port(), "/metrics")}});
  return absl::OkStatus();
}

void LogServing(const DaemonOptions& options, const Domain& d) {
  std::string listening;
  for (const auto& l : options.listen) listening += (listening.empty() ? "" : " ") + l;
  LogInfo("serving", {{"listen", listening},
                      {"vault", d.vault->Describe()},
                      {"data_dir", options.data_dir},
                      {"log_origin", d.log->origin()},
                      {"log_size", d.log->size()},
                      {"root_epoch", d.store->key_tree().epoch()},
                      {"version", SHREDD_VERSION}});
}

void StartWatchers(const Domain& d, grpc::Server* server, Monitors* m) {
  // gRPC health: NOT_SERVING while writes are stopped (docs/SERVICE.md).
  m->storage_monitor = std::make_unique<StorageMonitor>(
      d.store->db(), d.storage.get(), [health = server->GetHealthCheckService()](const StorageState& st) {
        if (health != nullptr) health->SetServingStatus(st.writable);
        const std::string status = st.writable
                                       ? std::string("STATUS=serving")
                                       : StrCat("STATUS=serving reads only: writes are stopped (", st.reason, ")");
        sd_notify(0, status.c_str());
      });
  m->health = std::make_unique<grpc::GenericStub>(server->InProcessChannel(grpc::ChannelArguments()));
  m->watchdog = ServiceWatchdog::StartIfEnabled(
      [health = m->health.get(), s = d.store.get(), h = d.storage.get()] { return ProbeService(health, s, h); });
  if (m->watchdog) {
    LogInfo("watchdog",
            {{"interval_ms", std::chrono::duration_cast<std::chrono::milliseconds>(m->watchdog->interval()).count()}});
  }
}

// Until SIGTERM or SIGINT (returned); SIGHUP reloads the configuration.
int WaitForStop(const DaemonOptions& options, auth::Authorizer* authorizer) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  DaemonConfig running = options;
  int sig = 0;
  for (;;) {
    sigwait(&set, &sig);
    if (sig != SIGHUP) return sig;
    ReloadConfig(options, &running, authorizer);
  }
}

}  // namespace

absl::Status RunDaemon(const DaemonOptions& options) {
  SetLogFormat(options.log_format);
  // Before the store opens: its first writes are guarded too. Start-up's
  // own writes (a new key tree and log, finishing pending certifications)
  // keep only the erasure reserve: a daemon must come up on a disk that
  // ingest filled, to serve reads and clean it.
  InstallSpaceGuard(options.data_dir, options.min_free_mib << 20);
  std::optional<ErasureWrites> start_up_writes(std::in_place);
  Domain domain;
  if (auto s = OpenDomain(options, &domain); !s.ok()) return s;
  Monitors monitors;
  if (auto s = StartMetrics(options, domain, &monitors); !s.ok()) return s;
  auto grpc_server = GrpcServer::Start(options, domain.api());
  if (!grpc_server.ok()) return grpc_server.status();
  LogServing(options, domain);
  sd_notify(0, "READY=1\nSTATUS=serving");
  StartWatchers(domain, (*grpc_server)->server(), &monitors);
  start_up_writes.reset();

  const int sig = WaitForStop(options, &(*grpc_server)->authorizer());
  sd_notify(0, "STOPPING=1\nSTATUS=draining");
  LogInfo("stopping: draining in-flight calls", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  monitors.watchdog.reset();
  grpc_server->reset();  // drains in-flight calls
  monitors.storage_monitor.reset();
  monitors.metrics.reset();
  monitors.trimmer.reset();
  domain.Close();
  LogInfo("stopped cleanly");
  return absl::OkStatus();
}

}  // namespace shredd
