#include "daemon/shred/shredder.h"

#include <sodium.h>
#include <sys/resource.h>

#include <algorithm>
#include <set>
#include <shared_mutex>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "daemon/base/coding.h"
#include "daemon/base/strings.h"
#include "daemon/storage/space_guard.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "formats/certificate.h"
#include "formats/dsse.h"
#include "formats/keys.h"
#include "formats/tlog.h"
#include "daemon/base/field_rules.h"
#include "daemon/base/logging.h"
#include "daemon/base/metrics.h"
#include "daemon/base/parallel.h"
#include "daemon/storage/keyspace.h"
#include "daemon/storage/rocks_util.h"

namespace shredd {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// CPU seconds of the whole daemon so far (all threads, RocksDB's background
// work included): the log's phase figures stay comparable on a busy machine.
double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

std::string RequestKey(std::string_view id) { return StrCat(keyspace::kRequest, id); }
std::string PendingKey(std::string_view id) { return StrCat(keyspace::kPending, id); }
std::string CertKey(std::string_view id) { return StrCat(keyspace::kCertificate, id); }
std::string ManifestKey(std::string_view id) { return StrCat(keyspace::kManifest, id); }
std::string PendingAd(std::string_view id) { return StrCat("shredd/pending/v1", id); }
std::string ManifestAd(std::string_view id) { return StrCat("shredd/manifest/v1", id); }

std::string NewCertificateId() {
  uint8_t b[16];
  randombytes_buf(b, sizeof b);
  return HexEncode(b);
}

absl::StatusOr<verify::ItemCommitment> CommitmentFrom(const json& items) {
  std::vector<verify::ItemEntry> entries;
  for (const auto& e : items) {
    verify::ItemEntry ie;
    ie.kind = e.at("kind").get<std::string>();
    ie.digest = e.at("digest").get<std::string>();
    ie.size = e.at("size").get<uint64_t>();
    auto salt = HexDecode(e.at("salt").get<std::string>());
    if (!salt || salt->size() != 32) return absl::DataLossError("pending certification holds a malformed salt");
    std::memcpy(ie.salt.data(), salt->data(), 32);
    entries.push_back(std::move(ie));
  }
  return verify::ItemCommitment::Create(std::move(entries));
}

}  // namespace

namespace {

// Chunks of at least this many staged records (or full chunks of a smaller
// epoch_items, as in tests) are deleted with one range deletion (see Destroy).
constexpr size_t kRangeDeleteMin = 1024;

std::string ScopeOf(std::string_view cert_id) {
  auto raw = HexDecode(cert_id);
  if (raw && raw->size() == 16) return *raw;
  const Sha256 h = Sha256Hasher::Of(cert_id);
  return std::string(reinterpret_cast<const char*>(h.data()), 16);
}
std::string StagedAd(std::string_view key) { return StrCat("shredd/staged/v1", key); }
std::string ManifestChunkKey(std::string_view cert_id, uint32_t seq) { return StrCat(keyspace::kManifestChunk, cert_id, BigEndian32(seq)); }
std::string ManifestChunkAd(std::string_view cert_id, uint32_t seq) {
  return StrCat("shredd/manifest-chunk/v1", cert_id, BigEndian32(seq));
}
// The end of a key range that starts with `prefix` (prefix + 0xff...).
std::string RangeEnd(std::string_view prefix) { return StrCat(prefix, std::string(40, '\xff')); }

// A staged item ("qs" record), in the clear.
struct Staged {
  ItemKey item_key{};
  ItemKind kind = ItemKind::kPhoto;
  bool inline_content = true;
  std::string object_id;
  std::vector<std::string> delete_keys;
};

std::string EncodeStaged(const StoredItem& item, const std::vector<std::string>& delete_keys) {
  std::string v;
  v.append(reinterpret_cast<const char*>(item.item_key.data()), 32);
  v.push_back(static_cast<char>(item.info.metadata.kind));
  v.push_back(item.inline_content ? 1 : 0);
  v.push_back(static_cast<char>(item.object_id.size()));
  v += item.object_id;
  for (const auto& k : delete_keys) {
    v.push_back(static_cast<char>(k.size() >> 8));
    v.push_back(static_cast<char>(k.size() & 0xff));
    v += k;
  }
  return v;
}

absl::StatusOr<Staged> DecodeStaged(std::string_view v) {
  Staged s;
  if (v.size() < 35) return absl::DataLossError("staged shred record is truncated");
  std::memcpy(s.item_key.data(), v.data(), 32);
  s.kind = static_cast<ItemKind>(v[32]);
  s.inline_content = v[33] != 0;
  size_t oid = static_cast<uint8_t>(v[34]);
  if (v.size() < 35 + oid) return absl::DataLossError("staged shred record is truncated");
  s.object_id = std::string(v.substr(35, oid));
  v.remove_prefix(35 + oid);
  while (!v.empty()) {
    if (v.size() < 2) return absl::DataLossError("staged shred record is truncated");
    size_t n = (static_cast<uint8_t>(v[0]) << 8) | static_cast<uint8_t>(v[1]);
    if (v.size() < 2 + n) return absl::DataLossError("staged shred record is truncated");
    s.delete_keys.emplace_back(v.substr(2, n));
    v.remove_prefix(2 + n);
  }
  return s;
}

// A manifest entry ("ql" record): kind(1) size(8) hash(32) salt(32).
std::string EncodeEntry(ItemKind kind, uint64_t size, const Sha256& hash, const uint8_t salt[32]) {
  std::string v;
  v.push_back(static_cast<char>(kind));
  v += BigEndian64(size);
  v.append(reinterpret_cast<const char*>(hash.data()), 32);
  v.append(reinterpret_cast<const char*>(salt), 32);
  return v;
}

void AppendItemJson(const verify::ItemEntry& e, std::string* out) {
  StrAppend(out, "{\"kind\":\"", e.kind, "\",\"digest\":\"", e.digest, "\",\"size\":", e.size, ",\"salt\":\"",
            HexEncode(std::string_view(reinterpret_cast<const char*>(e.salt.data()), 32)), "\"}");
}

}  // namespace

absl::StatusOr<std::unique_ptr<Shredder>> Shredder::Create(ItemStore* store, Catalog* catalog,
                                                             TransparencyLog* log, Options options) {
  options.epoch_items = std::max<uint64_t>(options.epoch_items, 1);
  options.manifest_chunk_items = std::max<uint64_t>(options.manifest_chunk_items, 1);
  std::unique_ptr<Shredder> s(new Shredder(store, catalog, log, options));
  s->retrier_ = std::make_unique<BackoffRetrier>([p = s.get()] { return p->RetryPending(); }, options.pending_retry);
  if (auto st = s->CompletePending(); !st.ok()) return st;
  return s;
}

absl::StatusOr<std::vector<std::string>> Shredder::PendingIds() {
  std::vector<std::string> ids;
  std::unique_ptr<rocksdb::Iterator> it(store_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(keyspace::kPending); it->Valid() && it->key().starts_with(keyspace::kPending); it->Next()) ids.push_back(it->key().ToString().substr(1));
  if (auto s = FromRocks(it->status(), "listing pending certifications"); !s.ok()) return s;
  return ids;
}

bool Shredder::HasPending(std::string_view cert_id) {
  std::string v;
  return store_->db()->Get(rocksdb::ReadOptions(), PendingKey(cert_id), &v).ok();
}

absl::Status Shredder::DropUncommittedPlans(const std::vector<std::string>& pending_ids) {
  std::set<std::string> scopes;
  for (const auto& id : pending_ids) scopes.insert(ScopeOf(id));
  std::unique_ptr<rocksdb::Iterator> it(store_->db()->NewIterator(rocksdb::ReadOptions()));
  for (std::string_view p : {keyspace::kStagedItem, keyspace::kStagedLeaf}) {
    for (it->Seek(std::string(p)); it->Valid() && it->key().starts_with(p);) {
      std::string_view k = it->key().ToStringView();
      if (k.size() < p.size() + 16) {
        it->Next();
        continue;
      }
      std::string scope(k.substr(p.size(), 16));
      if (!scopes.count(scope)) {
        if (auto s = DropStaged(scope, true); !s.ok()) return s;
      }
      it->Seek(RangeEnd(StrCat(p, scope)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CertificateBundle> Shredder::Shred(const ShredSpec& spec) {
  ErasureWrites erasure;  // deletion keeps working on a nearly full disk (space_guard.h)
  if (spec.hashes.empty()) return absl::InvalidArgumentError("nothing to shred: no digests given");
  if (spec.reason.size() > 4096) return absl::InvalidArgumentError("reason is longer than 4096 bytes");
  ShredJob job;
  job.hashes = spec.hashes;
  std::sort(job.hashes.begin(), job.hashes.end());
  job.hashes.erase(std::unique(job.hashes.begin(), job.hashes.end()), job.hashes.end());
  job.request_id = spec.request_id;
  if (job.request_id.empty()) {
    // Derived from the digests and their custody records, so repeating a
    // request returns its certificate, while content stored again after a
    // suppression lift (a new custody record) is a new destruction. The id
    // is public (it is in the certificate): keyed with the daemon's index
    // key, so nobody who merely holds the content can compute it
    // (invariant 6).
    std::string material;
    for (const auto& x : job.hashes) {
      material.append(reinterpret_cast<const char*>(x.data()), x.size());
      auto custody = store_->LatestCustody(store_->ItemKeyFor(x));
      material += StrCat(" ", custody ? custody->index : 0, ";");
    }
    const ItemKey id = store_->KeyedHash("shredd/auto-request/v3", material);
    job.request_id = StrCat(kAutoRequestPrefix, HexEncode(std::span<const uint8_t>(id.data(), id.size())));
  }
  job.reason = spec.reason;
  auto b = Execute(std::move(job));
  if (!b.ok() || !spec.include_receipts) return b;
  return Load(b->certificate_id, true);
}

// ------------------------------------------------------------------ staging


absl::Status PlanSink::Add(const StoredItem& item) {
  pending_.push_back(item);
  ++count_;
  if (pending_.size() >= batch_items_) return Flush();
  return absl::OkStatus();
}

absl::Status PlanSink::Flush() {
  if (pending_.empty()) return absl::OkStatus();
  struct Records {
    std::string slot_key, slot_value, leaf_key, leaf_value;
  };
  std::vector<Records> out(pending_.size());
  ParallelFor(pending_.size(), [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const StoredItem& item = pending_[i];
      // Salt: a keyed hash of the item key under a key that exists only
      // while planning; as good as random to anyone without it, and the
      // same for an item staged twice (so its records simply overwrite).
      uint8_t salt[32];
      crypto_generichash(salt, sizeof salt, item.item_key.data(), item.item_key.size(), salt_key_.data(),
                         salt_key_.size());
      const ContentDigest& d = item.info.digest;
      verify::ItemEntry e;
      e.kind = std::string(KindName(item.info.metadata.kind));
      e.digest = d.HashString();
      e.size = d.size;
      std::memcpy(e.salt.data(), salt, 32);
      const verify::Hash leaf = verify::ItemLeafHash(e);
      Records& r = out[i];
      r.slot_key = StrCat(keyspace::kStagedItem, scope_, BigEndian64(item.slot));
      r.leaf_key = StrCat(keyspace::kStagedLeaf, scope_, std::string_view(reinterpret_cast<const char*>(leaf.data()), 32));
      r.slot_value = store_->SealSystem(EncodeStaged(item, store_->ShredDeleteKeys(item)), StagedAd(r.slot_key));
      r.leaf_value = store_->SealSystem(EncodeEntry(item.info.metadata.kind, d.size, d.hash, salt), StagedAd(r.leaf_key));
      sodium_memzero(salt, sizeof salt);
    }
  });
  pending_.clear();
  // Sorted by key (see Destroy): slot keys ascend already, leaf keys do not.
  std::vector<std::pair<std::string_view, std::string_view>> puts;
  puts.reserve(2 * out.size());
  for (const Records& r : out) {
    puts.emplace_back(r.slot_key, r.slot_value);
    puts.emplace_back(r.leaf_key, r.leaf_value);
  }
  std::sort(puts.begin(), puts.end());
  rocksdb::WriteBatch batch;
  for (const auto& [k, v] : puts) batch.Put(rocksdb::Slice(k.data(), k.size()), rocksdb::Slice(v.data(), v.size()));
  // Not synced: a plan lost in a crash is simply made again (the next start
  // drops staged records without a "P" record). The first logged_items_ go
  // through the WAL, so the synced write of "P" makes them durable; a large
  // plan's other records skip it (saving ~400 bytes per item written twice),
  // and ExecutePlanned flushes the memtable (synced tables) before the first
  // epoch commits "P" (docs/PERFORMANCE.md).
  rocksdb::WriteOptions wo;
  wo.disableWAL = written_ >= logged_items_;
  unlogged_ = unlogged_ || wo.disableWAL;
  written_ += out.size();
  return GuardedWrite(store_->db(), wo, &batch, "staging a shred plan");
}

absl::Status Shredder::DropStaged(std::string_view scope, bool sync) {
  rocksdb::WriteBatch batch;
  for (std::string_view p : {keyspace::kStagedItem, keyspace::kStagedLeaf}) {
    std::string begin = StrCat(p, scope);
    batch.DeleteRange(begin, RangeEnd(begin));
  }
  if (sync) return SyncWrite(store_->db(), &batch);
  return GuardedWrite(store_->db(), rocksdb::WriteOptions(), &batch, "dropping a shred plan");
}

// ------------------------------------------------------------------ execute

absl::Status Shredder::RefuseIfHeld(const StoredItem& item) {
  if (catalog_ == nullptr) return absl::OkStatus();
  auto hold = catalog_->HoldFor(item);
  if (!hold) return absl::OkStatus();
  return absl::FailedPreconditionError(StrCat(item.info.digest.HashString(), " is under legal hold ", hold->id,
                                              "; a held item is never destroyed (remove the hold first); "
                                              "nothing was shredded"));
}

absl::StatusOr<CertificateBundle> Shredder::Execute(ShredJob job) {
  ErasureWrites erasure;  // deletion keeps working on a nearly full disk (space_guard.h)
  std::vector<Sha256> hashes = std::move(job.hashes);
  const bool order = !job.order_id.empty();
  return ExecutePlanned(std::move(job), [&](PlanSink& sink, ShredJob&) -> absl::Status {
    for (const auto& h : hashes) {
      if (auto by = store_->SuppressedBy(h)) {
        if (order) continue;  // shredded meanwhile by another order
        return absl::FailedPreconditionError(
            StrCat(ContentDigest{h, 0}.HashString(), " was already shredded (", *by, ")"));
      }
      auto item = store_->Lookup(h);
      if (!item.ok()) {
        if (absl::IsNotFound(item.status()) && order) continue;
        return item.status();
      }
      if (auto s = RefuseIfHeld(*item); !s.ok()) return s;
      if (auto s = sink.Add(*item); !s.ok()) return s;
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<CertificateBundle> Shredder::ExecutePlanned(ShredJob job, const Planner& planner) {
  ErasureWrites erasure;  // deletion keeps working on a nearly full disk (space_guard.h)
  const absl::Time requested = absl::Now();
  if (job.request_id.empty() || job.request_id.size() > 256) {
    return absl::InvalidArgumentError("request id must be 1..256 bytes");
  }
  std::lock_guard lock(mu_);
  // No hold can be added from planning to the last epoch: a hold either
  // exists when the planner looks (and binds it) or comes after the
  // destruction (catalog.h, HoldsStable).
  std::shared_lock<std::shared_mutex> holds_stable;
  if (catalog_ != nullptr) holds_stable = catalog_->HoldsStable();
  std::string existing;
  if (store_->db()->Get(rocksdb::ReadOptions(), RequestKey(job.request_id), &existing).ok()) {
    return LoadFinishingLocked(existing);
  }
  // Certifications left pending by a vault failure go first (they may
  // have old roots to destroy that this destruction would also meet).
  if (pending_count_.load() > 0) (void)FinishPendingLocked();
  const absl::Time plan_start = absl::Now();
  const double plan_cpu = ProcessCpuSeconds();
  const std::string cert_id = NewCertificateId();
  PlanSink sink(store_, ScopeOf(cert_id));
  sink.salt_key_ = SecretBytes::Random(32);
  sink.batch_items_ = std::min<uint64_t>(8192, options_.epoch_items);
  sink.logged_items_ = options_.epoch_items;
  absl::Status planned = planner(sink, job);
  if (planned.ok()) planned = sink.Flush();
  if (planned.ok() && sink.count() == 0) planned = absl::NotFoundError("nothing left to shred");
  if (!planned.ok()) {
    (void)DropStaged(sink.scope_, false);
    if (absl::IsNotFound(planned) && planned.message() == "nothing left to shred" && job.order_id.empty()) {
      return absl::FailedPreconditionError("nothing left to shred");
    }
    return planned;
  }

  json pending;
  pending["requestId"] = job.request_id;
  pending["reason"] = job.reason;
  pending["requested"] = FormatRfc3339(requested);
  pending["vault"] = store_->key_tree().vault().BackendName();
  pending["orderId"] = job.order_id;
  pending["suppressedBy"] =
      job.order_id.empty() ? StrCat("certificate ", cert_id) : StrCat("order ", job.order_id, ", certificate ", cert_id);
  pending["planned"] = sink.count();
  pending["destroyed"] = 0;
  if (!job.order_public.is_null()) {
    uint8_t order_salt[32];
    randombytes_buf(order_salt, sizeof order_salt);
    pending["order"] = json::parse(job.order_public.dump());
    pending["orderPrivate"] = job.order_private;
    pending["orderSalt"] = HexEncode(order_salt);
  }
  pending["derivedModels"] = json::parse(job.derived_models.dump());
  pending["retained"] = json::parse(job.retained.dump());
  const absl::Time destroy_start = absl::Now();
  const double destroy_cpu = ProcessCpuSeconds();
  LogInfo("shred planned", {{"certificate", cert_id},
                            {"order", job.order_id},
                            {"items", sink.count()},
                            {"seconds", absl::ToDoubleSeconds(destroy_start - plan_start)},
                            {"cpu_seconds", destroy_cpu - plan_cpu}});
  // Staged records written without the WAL: flush them to sorted tables
  // (synced) before anything can depend on them.
  if (sink.unlogged_) {
    if (auto s = FromRocks(store_->db()->Flush(rocksdb::FlushOptions()), "flushing a staged shred plan"); !s.ok()) {
      (void)DropStaged(sink.scope_, false);
      return s;
    }
  }
  // The "P" and "r" records commit with the first epoch: before it, a crash
  // leaves only staged records, which the next start drops.
  if (auto s = Destroy(cert_id, &pending); !s.ok()) return AfterFailure(cert_id, s);
  const absl::Time certify_start = absl::Now();
  const double certify_cpu = ProcessCpuSeconds();
  auto bundle = Certify(cert_id);
  if (!bundle.ok()) return AfterFailure(cert_id, bundle.status());
  if (bundle.ok()) {
    LogInfo("certificate issued", {{"certificate", cert_id},
                                   {"order", job.order_id},
                                   {"items", bundle->item_count},
                                   {"destroy_seconds", absl::ToDoubleSeconds(certify_start - destroy_start)},
                                   {"certify_seconds", absl::ToDoubleSeconds(absl::Now() - certify_start)},
                                   {"destroy_cpu_seconds", certify_cpu - destroy_cpu},
                                   {"certify_cpu_seconds", ProcessCpuSeconds() - certify_cpu}});
  }
  return bundle;
}

absl::Status Shredder::Destroy(const std::string& cert_id, const json* fresh) {
  rocksdb::DB* db = store_->db();
  const std::string scope = ScopeOf(cert_id);
  const std::string begin = StrCat(keyspace::kStagedItem, scope);
  const std::string end = RangeEnd(begin);
  json pending;
  if (fresh != nullptr) {
    pending = *fresh;
  } else {
    auto stored = LoadPending(cert_id);
    if (!stored.ok()) return stored.status();
    pending = std::move(*stored);
  }
  const std::string by = pending.value("suppressedBy", StrCat("certificate ", cert_id));
  bool first = fresh != nullptr;  // nothing committed yet
  // Where the next chunk starts. Each chunk's records end up deleted by a
  // range tombstone; seeking past them (instead of from `begin` again) keeps
  // every chunk's scan independent of how many chunks went before (an order
  // of 3,000,000 items has 120 chunks).
  std::string resume = begin;
  for (;;) {
    if (stop_.load() && fresh != nullptr) {
      if (first) (void)DropStaged(scope, false);
      return absl::CancelledError("the daemon is stopping; the destruction resumes at the next start");
    }

    // One chunk, in slot order (neighbouring slots share key-tree nodes).
    rocksdb::WriteBatch batch;
    std::vector<uint64_t> slots;
    std::vector<std::string> blobs;
    rocksdb::ReadOptions ro;
    rocksdb::Slice upper(end);
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
    std::vector<std::pair<std::string, std::string>> raw;
    for (it->Seek(resume); it->Valid() && raw.size() < options_.epoch_items; it->Next()) {
      if (it->key().size() != begin.size() + 8) return absl::DataLossError("malformed staged shred record key");
      raw.emplace_back(it->key().ToString(), it->value().ToString());
    }
    if (!it->status().ok()) return FromRocks(it->status(), "reading staged shred records");
    it.reset();
    if (raw.empty()) return absl::OkStatus();
    // The chunk's staged records are exactly the keys in [first, last]: a
    // large chunk deletes them with one range deletion instead of a
    // tombstone per item. Small ones (a one-item shred) keep point
    // deletions, so frequent small shreds do not pile up range tombstones
    // that every later read would have to consult.
    const std::string chunk_begin = raw.front().first;
    std::string chunk_end = raw.back().first;
    chunk_end.push_back('\0');  // the next key after the chunk's last
    const bool range_delete = raw.size() >= std::min<uint64_t>(kRangeDeleteMin, options_.epoch_items);
    std::vector<absl::StatusOr<Staged>> staged(raw.size(), absl::UnknownError("not read"));
    ParallelFor(raw.size(), [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) {
        auto open = store_->OpenSystem(raw[i].second, StagedAd(raw[i].first));
        staged[i] = open.ok() ? DecodeStaged(*open)
                              : absl::StatusOr<Staged>(absl::DataLossError("a staged shred record does not authenticate"));
      }
    });
    // The chunk's operations go into the batch sorted by key: RocksDB's
    // memtable inserts a batch in order, and sorted inserts reuse the skip
    // list's search path (random order cost most of an epoch's time).
    std::vector<std::pair<std::string, bool>> ops;  // key, is a put (of `by`)
    for (size_t i = 0; i < raw.size(); ++i) {
      if (!staged[i].ok()) return staged[i].status();
      slots.push_back(ReadBigEndian64(std::string_view(raw[i].first).substr(begin.size())));
      for (auto& k : staged[i]->delete_keys) ops.emplace_back(std::move(k), false);
      ops.emplace_back(ItemStore::SuppressionRecordKey(staged[i]->item_key), true);
      if (catalog_ != nullptr && staged[i]->kind == ItemKind::kModel) {
        catalog_->AddEdgeDeletions(staged[i]->item_key, &batch);
      }
      if (!staged[i]->inline_content) blobs.push_back(staged[i]->object_id);
      if (!range_delete) ops.emplace_back(std::move(raw[i].first), false);
    }
    if (range_delete) batch.DeleteRange(chunk_begin, chunk_end);
    std::sort(ops.begin(), ops.end());
    for (const auto& [k, put] : ops) {
      if (put) {
        batch.Put(k, by);
      } else {
        batch.Delete(k);
      }
    }
    ops.clear();
    raw.clear();
    staged.clear();

    KeyTree& tree = store_->key_tree();
    if (!pending.contains("destroyedEpoch")) pending["destroyedEpoch"] = tree.epoch();
    pending["installedEpoch"] = tree.epoch() + 1;
    pending["destroyed"] = pending.value("destroyed", uint64_t{0}) + slots.size();
    batch.Put(PendingKey(cert_id), store_->SealSystem(pending.dump(), PendingAd(cert_id)));
    if (first) batch.Put(RequestKey(pending.value("requestId", "")), cert_id);
    const absl::Time epoch_start = absl::Now();
    auto epoch = tree.Shred(slots, &batch);
    if (!epoch.ok()) {
      if (first && tree.epoch() + 1 == pending["installedEpoch"].get<uint64_t>()) {
        // Nothing committed: abandon the destruction (the caller sees why).
        (void)DropStaged(scope, false);
      }
      return epoch.status();
    }
    first = false;
    const double seconds = absl::ToDoubleSeconds(absl::Now() - epoch_start);
    store_->NoteItemsShredded(slots.size());
    Metrics().shred_epoch_seconds.Observe(seconds);
    LogInfo("shred epoch", {{"certificate", cert_id},
                            {"order", pending.value("orderId", "")},
                            {"destroyed_epoch", epoch->destroyed_epoch},
                            {"installed_epoch", epoch->installed_epoch},
                            {"items", slots.size()},
                            {"seconds", seconds}});
    for (const auto& oid : blobs) store_->DropBlobObject(oid);
    resume = chunk_end;
  }
}

absl::StatusOr<json> Shredder::LoadPending(const std::string& cert_id) {
  std::string sealed;
  if (auto s = FromRocks(store_->db()->Get(rocksdb::ReadOptions(), PendingKey(cert_id), &sealed),
                         "reading a pending certification");
      !s.ok()) {
    return s;
  }
  auto plain = store_->OpenSystem(sealed, PendingAd(cert_id));
  if (!plain.ok()) return plain.status();
  json pending = json::parse(*plain, nullptr, false);
  if (pending.is_discarded()) return absl::DataLossError("pending certification is unreadable");
  return pending;
}

absl::StatusOr<CertificateBundle> Shredder::Certify(const std::string& cert_id) {
  rocksdb::DB* db = store_->db();
  auto loaded = LoadPending(cert_id);
  if (!loaded.ok()) return loaded.status();
  json pending = std::move(*loaded);
  if (!pending.contains("installedEpoch")) return absl::InternalError("pending certification destroyed nothing");
  // No certificate unless the old roots are gone: every root the vault
  // still holds must be the current one.
  Vault& vault = store_->key_tree().vault();
  uint64_t current = store_->key_tree().epoch();
  auto roots = vault.ListRoots();
  if (!roots.ok()) return roots.status();
  for (uint64_t r : *roots) {
    if (r == current) continue;
    if (r > current) continue;  // an epoch being prepared by nobody: Recover() handles it
    if (auto s = vault.DestroyRoot(r); !s.ok()) return s;
  }
  if (current < pending["installedEpoch"].get<uint64_t>()) {
    return absl::InternalError("pending certification refers to an epoch that was never committed");
  }
  const absl::Time destroyed = absl::Now();

  // One pass over the manifest entries, in tree order: Merkle root with a
  // stack of subtree roots (RFC 6962), counts, and the manifest in chunks.
  const std::string scope = ScopeOf(cert_id);
  const std::string begin = StrCat(keyspace::kStagedLeaf, scope);
  const std::string end = RangeEnd(begin);
  struct Peak {
    int level;
    verify::Hash hash;
  };
  std::vector<Peak> peaks;
  uint64_t count = 0, photos = 0, models = 0;
  uint32_t chunks = 0;
  std::string chunk;
  rocksdb::WriteBatch chunk_batch;
  auto flush_chunk = [&]() -> absl::Status {
    if (chunk.empty()) return absl::OkStatus();
    chunk_batch.Put(ManifestChunkKey(cert_id, chunks), store_->SealSystem(chunk, ManifestChunkAd(cert_id, chunks)));
    ++chunks;
    chunk.clear();
    if (chunk_batch.GetDataSize() < (16u << 20)) return absl::OkStatus();
    auto s = GuardedWrite(db, rocksdb::WriteOptions(), &chunk_batch, "writing a manifest");
    chunk_batch.Clear();
    return s;
  };
  {
    rocksdb::ReadOptions ro;
    rocksdb::Slice upper(end);
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
    // Batches of entries are opened and checked on several threads, then
    // folded into the tree and the manifest in order.
    std::vector<std::pair<std::string, std::string>> raw;
    struct Opened {
      verify::ItemEntry entry;
      ItemKind kind = ItemKind::kPhoto;
      verify::Hash leaf{};
      bool ok = false;
    };
    std::vector<Opened> opened;
    auto fold = [&]() -> absl::Status {
      opened.assign(raw.size(), Opened{});
      ParallelFor(raw.size(), [&](size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) {
          std::string_view k = raw[i].first;
          auto v = store_->OpenSystem(raw[i].second, StagedAd(k));
          if (!v.ok() || v->size() != 73 || k.size() != begin.size() + 32) continue;
          Opened& o = opened[i];
          o.kind = static_cast<ItemKind>((*v)[0]);
          o.entry.kind = std::string(KindName(o.kind));
          o.entry.size = ReadBigEndian64(std::string_view(*v).substr(1, 8));
          Sha256 hash;
          std::memcpy(hash.data(), v->data() + 9, 32);
          o.entry.digest = ContentDigest{hash, o.entry.size}.HashString();
          std::memcpy(o.entry.salt.data(), v->data() + 41, 32);
          o.leaf = verify::ItemLeafHash(o.entry);
          o.ok = std::memcmp(o.leaf.data(), k.data() + begin.size(), 32) == 0;
        }
      });
      for (const Opened& o : opened) {
        if (!o.ok) return absl::DataLossError("a staged manifest entry does not authenticate or match its leaf hash");
        (o.kind == ItemKind::kModel ? models : photos) += 1;
        ++count;
        peaks.push_back({0, o.leaf});
        while (peaks.size() >= 2 && peaks[peaks.size() - 2].level == peaks.back().level) {
          verify::Hash right = peaks.back().hash;
          peaks.pop_back();
          peaks.back().hash = verify::NodeHash(peaks.back().hash, right);
          peaks.back().level += 1;
        }
        if (!chunk.empty()) chunk.push_back(',');
        AppendItemJson(o.entry, &chunk);
        if (count % options_.manifest_chunk_items == 0) {
          if (auto s = flush_chunk(); !s.ok()) return s;
        }
      }
      raw.clear();
      return absl::OkStatus();
    };
    for (it->Seek(begin); it->Valid(); it->Next()) {
      raw.emplace_back(it->key().ToString(), it->value().ToString());
      if (raw.size() >= 16384) {
        if (auto s = fold(); !s.ok()) return s;
      }
    }
    if (auto s = fold(); !s.ok()) return s;
    if (!it->status().ok()) return FromRocks(it->status(), "reading staged manifest entries");
  }
  if (auto s = flush_chunk(); !s.ok()) return s;
  if (count == 0) return absl::DataLossError("a pending certification has no manifest entries");
  verify::Hash root = peaks.back().hash;
  for (size_t i = peaks.size() - 1; i-- > 0;) root = verify::NodeHash(peaks[i].hash, root);
  const std::string root_hex = HexEncode(std::string_view(reinterpret_cast<const char*>(root.data()), 32));

  ordered_json pred;
  pred["certificateId"] = cert_id;
  pred["request"] = {{"id", pending["requestId"]}, {"reason", pending["reason"]}};
  std::string order_salt;
  if (pending.contains("order")) {
    // Public order fields, plus a salted commitment to the private ones
    // (requester, selectors), which only the manifest reveals.
    pred["order"] = ordered_json::parse(pending["order"].dump());
    order_salt = pending.value("orderSalt", "");
    auto salt = HexDecode(order_salt);
    if (!salt || salt->size() != 32) return absl::DataLossError("pending certification holds a malformed order salt");
    pred["order"]["privateCommitment"] =
        HexEncode(Sha256Hasher::Of(*salt + pending["orderPrivate"].get<std::string>()));
  }
  pred["method"] = {{"technique", "cryptographic-erase"},
                    {"standard", "NIST SP 800-88 Rev. 1"},
                    {"sanitization", "purge"}};
  pred["destruction"] = {{"vaultBackend", pending["vault"]},
                         {"rootEpochDestroyed", pending["destroyedEpoch"]},
                         {"rootEpochInstalled", pending["installedEpoch"]}};
  pred["times"] = {{"requested", pending["requested"]},
                   {"destroyed", FormatRfc3339(destroyed)},
                   {"issued", FormatRfc3339(absl::Now())}};
  pred["items"] = {{"count", count},
                   {"byKind", {{verify::kKindPhoto, photos}, {verify::kKindModel, models}}},
                   {"merkleRoot", root_hex},
                   {"leafFormat", verify::kLeafFormat}};
  pred["derivedModels"] = ordered_json::parse(pending.value("derivedModels", json::array()).dump());
  pred["retainedUnderHold"] = ordered_json::parse(pending.value("retained", json::array()).dump());
  pred["shredd"] = {{"version", SHREDD_VERSION}};
  auto pub = vault.SigningPublicKey();
  if (!pub.ok()) return pub.status();
  ordered_json header;
  header["type"] = verify::kManifestType;
  header["certificateId"] = cert_id;
  header["merkleRoot"] = root_hex;
  header["count"] = count;
  header["chunks"] = chunks;
  if (pending.contains("order")) header["order"] = {{"private", pending["orderPrivate"]}, {"salt", order_salt}};
  CertificateBundle bundle;
  bundle.certificate_id = cert_id;
  bundle.item_count = count;
  // Signs the certificate for log position `index` (if there is a log).
  auto sign = [&](std::optional<uint64_t> index) -> absl::StatusOr<std::string> {
    if (index) pred["log"] = {{"origin", log_->origin()}, {"index", *index}};
    auto statement = verify::StatementJson(pred);
    if (!statement.ok()) return statement.status();
    auto sig = vault.Sign(verify::PreAuthEncoding(verify::kCertificatePayloadType, *statement));
    if (!sig.ok()) return sig.status();
    verify::Envelope env;
    env.payload_type = std::string(verify::kCertificatePayloadType);
    env.payload = *statement;
    env.signatures.push_back(
        {verify::KeyId(*pub), std::string(reinterpret_cast<const char*>(sig->data()), sig->size())});
    return verify::SerializeEnvelope(env);
  };
  rocksdb::WriteBatch& batch = chunk_batch;  // the last manifest chunks commit with the certificate
  batch.Put(ManifestKey(cert_id), store_->SealSystem(header.dump(), ManifestAd(cert_id)));
  batch.Delete(PendingKey(cert_id));
  batch.DeleteRange(begin, end);
  if (log_ == nullptr) {
    auto env = sign(std::nullopt);
    if (!env.ok()) return env.status();
    bundle.envelope = std::move(*env);
    batch.Put(CertKey(cert_id), bundle.envelope);
    if (auto s = SyncWrite(db, &batch); !s.ok()) return s;
  } else {
    auto appended = log_->Append(&batch, [&](uint64_t index) -> absl::StatusOr<std::vector<std::string>> {
      auto env = sign(index);
      if (!env.ok()) return env.status();
      bundle.envelope = *env;
      batch.Put(CertKey(cert_id), bundle.envelope);
      return std::vector<std::string>{std::move(*env)};
    });
    if (!appended.ok()) return appended.status();
    // A checkpoint covers the certificate before anyone sees it.
    auto proof = TlogProofFor(bundle.envelope);
    if (!proof.ok()) return proof.status();
    bundle.tlog_proof = std::move(*proof);
  }
  if (count <= options_.inline_manifest_items) {
    auto m = Load(cert_id, false);
    if (!m.ok()) return m.status();
    bundle.manifest = std::move(m->manifest);
  } else {
    bundle.manifest_omitted = true;
  }
  return bundle;
}

absl::Status Shredder::StreamManifest(std::string_view cert_id, const std::function<bool(std::string_view)>& sink) {
  rocksdb::DB* db = store_->db();
  std::string sealed;
  rocksdb::Status rs = db->Get(rocksdb::ReadOptions(), ManifestKey(cert_id), &sealed);
  if (rs.IsNotFound()) return absl::NotFoundError(StrCat("no manifest for certificate ", cert_id));
  if (auto s = FromRocks(rs, "reading a manifest"); !s.ok()) return s;
  auto m = store_->OpenSystem(sealed, ManifestAd(cert_id));
  if (!m.ok()) return m.status();
  json header = json::parse(*m, nullptr, false);
  if (header.is_discarded()) return absl::DataLossError("stored manifest is unreadable");
  if (!header.contains("chunks")) {  // a manifest stored whole
    sink(*m);
    return absl::OkStatus();
  }
  if (!sink(StrCat("{\"type\":", json(header["type"]).dump(), ",\"certificateId\":", json(header["certificateId"]).dump(),
                   ",\"merkleRoot\":", json(header["merkleRoot"]).dump(), ",\"items\":["))) {
    return absl::OkStatus();
  }
  const uint32_t chunks = header["chunks"].get<uint32_t>();
  for (uint32_t i = 0; i < chunks; ++i) {
    std::string c;
    if (auto s = FromRocks(db->Get(rocksdb::ReadOptions(), ManifestChunkKey(cert_id, i), &c), "reading a manifest chunk");
        !s.ok()) {
      return s;
    }
    auto plain = store_->OpenSystem(c, ManifestChunkAd(cert_id, i));
    if (!plain.ok()) return absl::DataLossError(StrCat("manifest chunk ", i, " does not authenticate"));
    if (i > 0 && !sink(",")) return absl::OkStatus();
    if (!sink(*plain)) return absl::OkStatus();
  }
  std::string tail = "]";
  if (header.contains("order")) {
    ordered_json o;
    o["private"] = header["order"]["private"];
    o["salt"] = header["order"]["salt"];
    tail += ",\"order\":" + o.dump();
  }
  tail += "}";
  sink(tail);
  return absl::OkStatus();
}

absl::StatusOr<CertificateBundle> Shredder::Load(const std::string& cert_id, bool include_receipts) {
  CertificateBundle b;
  b.certificate_id = cert_id;
  rocksdb::DB* db = store_->db();
  rocksdb::Status rs = db->Get(rocksdb::ReadOptions(), CertKey(cert_id), &b.envelope);
  if (rs.IsNotFound()) {
    std::string p;
    if (db->Get(rocksdb::ReadOptions(), PendingKey(cert_id), &p).ok()) {
      return absl::UnavailableError(StrCat("certificate ", cert_id, " is not issued yet; retry"));
    }
    return absl::NotFoundError(StrCat("no certificate ", cert_id));
  }
  if (!rs.ok()) return FromRocks(rs, "reading a certificate");
  std::string sealed;
  if (auto s = FromRocks(db->Get(rocksdb::ReadOptions(), ManifestKey(cert_id), &sealed), "reading a manifest"); !s.ok()) {
    return s;
  }
  auto header = store_->OpenSystem(sealed, ManifestAd(cert_id));
  if (!header.ok()) return header.status();
  json h = json::parse(*header, nullptr, false);
  if (h.is_discarded()) return absl::DataLossError("stored manifest is unreadable");
  b.item_count = h.contains("count") ? h["count"].get<uint64_t>() : h.value("items", json::array()).size();
  if (b.item_count > options_.inline_manifest_items) {
    b.manifest_omitted = true;
  } else {
    auto s = StreamManifest(cert_id, [&](std::string_view piece) {
      b.manifest.append(piece);
      return true;
    });
    if (!s.ok()) return s;
  }
  if (log_ != nullptr) {
    auto proof = TlogProofFor(b.envelope);
    if (!proof.ok()) return proof.status();
    b.tlog_proof = std::move(*proof);
  }
  if (include_receipts) {
    if (b.manifest_omitted) {
      return absl::FailedPreconditionError(StrCat("certificate ", cert_id, " covers ", b.item_count,
                                                  " items; derive receipts offline from its manifest "
                                                  "(shredctl receipt)"));
    }
    json manifest = json::parse(b.manifest, nullptr, false);
    if (manifest.is_discarded()) return absl::DataLossError("stored manifest is unreadable");
    auto commitment = CommitmentFrom(manifest["items"]);
    if (!commitment.ok()) return commitment.status();
    for (uint64_t i = 0; i < commitment->size(); ++i) {
      auto r = commitment->ReceiptJson(cert_id, i);
      if (!r.ok()) return r.status();
      b.receipts.push_back(std::move(*r));
    }
  }
  return b;
}

absl::StatusOr<CertificateBundle> Shredder::GetCertificate(std::string_view certificate_id,
                                                           std::string_view request_id, bool include_receipts) {
  ErasureWrites erasure;  // deletion keeps working on a nearly full disk (space_guard.h)
  std::string id(certificate_id);
  if (id.empty()) {
    if (request_id.empty()) return absl::InvalidArgumentError("give a certificate id or a request id");
    if (request_id.size() > 256) return absl::InvalidArgumentError("request id is longer than 256 bytes");
    rocksdb::Status rs = store_->db()->Get(rocksdb::ReadOptions(), RequestKey(request_id), &id);
    if (rs.IsNotFound()) return absl::NotFoundError(StrCat("no certificate for request ", QuoteForError(request_id)));
    if (!rs.ok()) return FromRocks(rs, "reading a request record");
  }
  if (id.size() > 64) return absl::InvalidArgumentError("malformed certificate id");
  if (HasPending(id)) {
    // Pending: finish it now, unless a destruction holds the lock for long
    // (the background retry then gets to it soon). The retry's own attempts
    // take well under this wait.
    std::unique_lock lock(mu_, std::chrono::seconds(5));
    if (lock.owns_lock()) {
      (void)FinishPendingLocked(id);
    } else {
      retrier_->Kick();
    }
  }
  return Load(id, include_receipts);
}

absl::StatusOr<std::string> Shredder::TlogProofFor(std::string_view envelope) {
  auto index = log_->IndexOfLeafHash(verify::LeafHash(envelope));
  if (!index.ok()) return index.status();
  auto note = log_->SignedCheckpoint();
  if (!note.ok()) return note.status();
  auto cp = verify::ParseCheckpointText(note->substr(0, note->find("\n\n") + 1));
  if (!cp.ok()) return cp.status();
  auto path = log_->InclusionProof(*index, cp->size);
  if (!path.ok()) return path.status();
  verify::TlogProof proof;
  proof.index = *index;
  proof.path = std::move(*path);
  proof.checkpoint = *note;
  return verify::FormatTlogProof(proof);
}

absl::StatusOr<PublicKeyInfo> Shredder::PublicKey() {
  auto pub = store_->key_tree().vault().SigningPublicKey();
  if (!pub.ok()) return pub.status();
  PublicKeyInfo info;
  info.raw = *pub;
  info.spki_pem = verify::ToSpkiPem(*pub);
  // The note key name is the log origin, so this vkey verifies checkpoints.
  info.key_name = log_ != nullptr ? log_->origin() : DefaultLogOrigin(*pub);
  info.note_verifier_key = verify::NoteVerifierKey(info.key_name, *pub);
  return info;
}

}  // namespace shredd
