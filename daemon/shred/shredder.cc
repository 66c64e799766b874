#include "daemon/shred/shredder.h"

#include <sodium.h>
#include <sys/resource.h>

#include <algorithm>
#include <set>
#include <shared_mutex>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include <nlohmann/json.hpp>

#include "daemon/base/coding.h"
#include "daemon/base/field_rules.h"
#include "daemon/base/logging.h"
#include "daemon/base/metrics.h"
#include "daemon/base/parallel.h"
#include "daemon/base/strings.h"
#include "daemon/shred/pending_record.h"
#include "daemon/shred/shredder_records.h"
#include "daemon/storage/keyspace.h"
#include "daemon/storage/rocks_util.h"
#include "daemon/storage/space_guard.h"
#include "formats/certificate.h"
#include "formats/dsse.h"
#include "formats/keys.h"
#include "formats/tlog.h"

namespace shredd {

using namespace shred_internal;  // NOLINT: this library's internal helpers

absl::StatusOr<std::unique_ptr<Shredder>> Shredder::Create(ItemStore* store, Catalog* catalog, TransparencyLog* log,
                                                           Options options) {
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
  for (it->Seek(keyspace::kPending); it->Valid() && it->key().starts_with(keyspace::kPending); it->Next())
    ids.push_back(it->key().ToString().substr(1));
  if (auto s = FromRocks(it->status(), "listing pending certifications"); !s.ok()) return s;
  return ids;
}

bool Shredder::HasPending(std::string_view cert_id) {
  std::string v;
  return store_->db()->Get(rocksdb::ReadOptions(), PendingKey(cert_id), &v).ok();
}

absl::StatusOr<Shredder::Phase> Shredder::PhaseOf(std::string_view request_id) {
  std::string record;
  rocksdb::Status rs = store_->db()->Get(rocksdb::ReadOptions(), RequestKey(request_id), &record);
  if (rs.IsNotFound()) return Phase::kNotBegun;  // "r" commits with the first epoch
  if (!rs.ok()) return FromRocks(rs, "reading a request record");
  std::string pending;
  rs = store_->db()->Get(rocksdb::ReadOptions(), PendingKey(ParseRequestRecord(record).cert_id), &pending);
  if (rs.IsNotFound()) return Phase::kCertified;  // "P" goes in the write that stores the certificate
  if (!rs.ok()) return FromRocks(rs, "reading a pending certification");
  return Phase::kPending;
}

absl::StatusOr<PendingReservations> Shredder::Reservations() {
  auto ids = PendingIds();
  if (!ids.ok()) return ids.status();
  PendingReservations out;
  out.store_ = store_;
  for (const std::string& id : *ids) {
    auto pending = LoadPending(id);
    if (!pending.ok()) return pending.status();
    out.holders_.emplace_back(ScopeOf(id), PendingReservations::Holder{id, pending->order_id});
  }
  return out;
}

std::string PendingReservations::Holder::Name() const {
  if (order_id.empty()) return StrCat("certificate ", certificate_id);
  return StrCat("certificate ", certificate_id, " of order ", QuoteForError(order_id));
}

absl::StatusOr<std::optional<PendingReservations::Holder>> PendingReservations::HolderOf(const StoredItem& item) const {
  for (const auto& [scope, holder] : holders_) {
    std::string v;
    rocksdb::Status rs =
        store_->db()->Get(rocksdb::ReadOptions(), StrCat(keyspace::kStagedItem, scope, BigEndian64(item.slot)), &v);
    if (rs.IsNotFound()) continue;
    if (!rs.ok()) return FromRocks(rs, "reading the items of a pending destruction");
    return holder;
  }
  return std::nullopt;
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
  // A digest is its hash and its size: a size that is not the stored
  // item's names other content, refused (as Put refuses it) rather than
  // read as "not stored", which a deleting client could take for "gone".
  // An item not stored is left to the shred (it says why, or answers a
  // retry's certificate).
  for (size_t i = 0; i < spec.sizes.size() && i < spec.hashes.size(); ++i) {
    if (spec.sizes[i] == 0) continue;
    auto item = store_->Lookup(spec.hashes[i]);
    if (item.ok() && item->info.digest.size != spec.sizes[i]) {
      return absl::InvalidArgumentError(StrCat(item->info.digest.HashString(), " is stored with size ",
                                               item->info.digest.size, ", not ", spec.sizes[i],
                                               "; nothing was shredded"));
    }
  }
  ShredJob job;
  job.hashes = spec.hashes;
  std::sort(job.hashes.begin(), job.hashes.end());
  job.hashes.erase(std::unique(job.hashes.begin(), job.hashes.end()), job.hashes.end());
  if (spec.include_receipts && job.hashes.size() > options_.receipt_items) {
    return absl::FailedPreconditionError(StrCat(
        "receipts are served for up to ", options_.receipt_items, " items, and this request names ", job.hashes.size(),
        "; nothing was shredded. Shred without receipts and derive them offline from "
        "the manifest (shredctl receipt)"));
  }
  job.request_id = spec.request_id;
  if (job.request_id.starts_with(kAutoRequestPrefix) || job.request_id.starts_with(kOrderRequestPrefix)) {
    return absl::InvalidArgumentError(StrCat("request id ", QuoteForError(job.request_id), " begins with \"",
                                             kAutoRequestPrefix, "\" or \"", kOrderRequestPrefix,
                                             "\", which the daemon keeps for its own ids; choose another"));
  }
  // Bound for an automatic id too: its id stands for the digests (and
  // their custody), the binding adds the reason, so the same digests again
  // with another reason are refused rather than answered with a
  // certificate stating the first one.
  job.request_binding = RequestBinding(job.hashes, spec.reason);
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
  auto b = Execute(std::move(job), spec.keep_models ? BareShredGuard() : bare_shred_guard_);
  if (!b.ok() || !spec.include_receipts) return b;
  return Load(b->certificate_id, CertificateParts::kManifestAndReceipts);
}

// ------------------------------------------------------------------ staging

absl::Status PlanSink::Add(const StoredItem& item) {
  if (auto s = RefuseIfReserved(item); !s.ok()) return s;
  pending_.push_back(item);
  ++count_;
  if (pending_.size() >= batch_items_) return Flush();
  return absl::OkStatus();
}

absl::Status PlanSink::RefuseIfReserved(const StoredItem& item) {
  auto holder = reserved_.HolderOf(item);
  if (!holder.ok()) return holder.status();
  if (*holder) {
    // Staged twice, it would be destroyed and certified by both, and the
    // pending one's retry would shred its key-tree slot again later.
    return absl::UnavailableError(StrCat(
        item.info.digest.HashString(), " is being destroyed by ", (*holder)->Name(),
        ", which is pending after a failure (finished by the daemon's retries or by GetCertificate once the vault "
        "and the object store answer); nothing was shredded: retry once it is certified"));
  }
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
      r.leaf_key =
          StrCat(keyspace::kStagedLeaf, scope_, std::string_view(reinterpret_cast<const char*>(leaf.data()), 32));
      r.slot_value = store_->SealSystem(EncodeStaged(item, store_->ShredDeleteKeys(item)), StagedAd(r.slot_key));
      r.leaf_value =
          store_->SealSystem(EncodeEntry(item.info.metadata.kind, d.size, d.hash, salt), StagedAd(r.leaf_key));
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
  // Reserved: one allocation, not growth by doubling (16: tag and lengths).
  size_t bytes = 0;
  for (const auto& [k, v] : puts) bytes += k.size() + v.size() + 16;
  rocksdb::WriteBatch batch(bytes);
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
  if (!hold.ok()) return hold.status();
  if (!*hold) return absl::OkStatus();
  return absl::FailedPreconditionError(StrCat(item.info.digest.HashString(), " is under legal hold ", (*hold)->id,
                                              "; a held item is never destroyed (remove the hold first); "
                                              "nothing was shredded"));
}

absl::StatusOr<CertificateBundle> Shredder::Execute(ShredJob job, const BareShredGuard& guard) {
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
    // Under the destruction gate: no upload or AddLineage adds a child now.
    return guard ? guard(hashes) : absl::OkStatus();
  });
}

absl::Status Shredder::DestroyKeys(std::span<const uint64_t> slots, rocksdb::WriteBatch* batch) {
  ErasureWrites erasure;
  std::lock_guard lock(mu_);
  const uint64_t before = store_->key_tree().epoch();
  auto epoch = store_->key_tree().Shred(slots, batch);
  if (!epoch.ok()) {
    if (store_->key_tree().epoch() != before) {  // committed: the old root waits for the retrier
      stale_roots_.store(true);
      retrier_->Kick();
    }
    return epoch.status();
  }
  LogInfo("key epoch without items",
          {{"destroyed_epoch", epoch->destroyed_epoch}, {"installed_epoch", epoch->installed_epoch}});
  return absl::OkStatus();
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
    const RequestRecordParts first = ParseRequestRecord(existing);
    if (!job.request_binding.empty()) {
      if (auto s = RefuseAnotherRequestLocked(job, std::string(first.cert_id), first.binding); !s.ok()) return s;
    }
    return LoadFinishingLocked(std::string(first.cert_id));
  }
  // Certifications left pending by a vault failure go first (they may
  // have old roots to destroy that this destruction would also meet).
  if (pending_count_.load() > 0) (void)FinishPendingLocked();
  // From the plan to the certificate no merge into a stored item and no
  // upload with lineage commits: what is planned is what gets destroyed
  // (items/destruction_gate.h).
  DestructionGate::Destruction no_commits(&store_->destruction_gate());
  const absl::Time plan_start = absl::Now();
  const double plan_cpu = ProcessCpuSeconds();
  const std::string cert_id = NewCertificateId();
  PlanSink sink(store_, ScopeOf(cert_id));
  // Destructions still pending: what they staged is theirs.
  auto reserved = Reservations();
  if (!reserved.ok()) return reserved.status();
  sink.reserved_ = std::move(*reserved);
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

  PendingRecord pending;
  pending.request_id = job.request_id;
  pending.request_binding = job.request_binding;
  pending.reason = job.reason;
  pending.requested = FormatRfc3339(requested);
  pending.vault = store_->key_tree().vault().BackendName();
  pending.order_id = job.order_id;
  pending.suppressed_by = job.order_id.empty() ? StrCat("certificate ", cert_id)
                                               : StrCat("order ", job.order_id, ", certificate ", cert_id);
  pending.planned = sink.count();
  if (!job.order_public.is_null()) {
    pending.order = json::parse(job.order_public.dump());
    pending.order_private = job.order_private;
    pending.order_salt = RandomHex(32);
  }
  pending.derived_models = json::parse(job.derived_models.dump());
  pending.retained = json::parse(job.retained.dump());
  const absl::Time destroy_start = absl::Now();
  const double destroy_cpu = ProcessCpuSeconds();
  LogInfo("shred planned", {{"certificate", cert_id},
                            {"order", job.order_id},
                            {"items", sink.count()},
                            {"seconds", absl::ToDoubleSeconds(destroy_start - plan_start)},
                            {"cpu_seconds", destroy_cpu - plan_cpu}});
  if (auto s = CheckCertificateFits(cert_id, pending); !s.ok()) {
    (void)DropStaged(sink.scope_, false);
    return s;
  }
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

absl::Status Shredder::RefuseAnotherRequestLocked(const ShredJob& job, const std::string& cert_id,
                                                  std::string_view binding) {
  if (!binding.empty() && binding == job.request_binding) return absl::OkStatus();
  // The first request's reason: from its certificate, or its pending record
  // while it is not issued yet (public either way: the certificate states it).
  std::optional<std::string> reason;
  if (auto pending = LoadPending(cert_id); pending.ok()) {
    reason = pending->reason;
  } else if (auto b = Load(cert_id, CertificateParts::kEnvelope); b.ok()) {
    if (auto env = verify::ParseEnvelope(b->envelope); env.ok()) {
      json payload = json::parse(env->payload, nullptr, false);
      const json* r = payload.is_object() ? &payload : nullptr;
      for (const char* member : {"predicate", "request", "reason"}) {
        r = r != nullptr && r->is_object() && r->contains(member) ? &(*r)[member] : nullptr;
      }
      if (r != nullptr && r->is_string()) reason = r->get<std::string>();
    }
  }
  // A record of an earlier version holds no binding: the reason is all it
  // can be compared on (its digests are the id's, for an automatic one).
  // Not readable: answered, as before bindings.
  if (binding.empty() && (!reason || *reason == job.reason)) return absl::OkStatus();
  const std::string first_reason = reason ? StrCat(" for reason ", QuoteForError(*reason)) : "";
  if (job.request_id.starts_with(kAutoRequestPrefix)) {
    return absl::AlreadyExistsError(StrCat("these digests were shredded already (certificate ", cert_id, ")",
                                           first_reason, ", not for reason ", QuoteForError(job.reason),
                                           "; nothing was shredded. Repeat the first reason to get that "
                                           "certificate, or fetch it with GetCertificate"));
  }
  return absl::AlreadyExistsError(StrCat("request id ", QuoteForError(job.request_id),
                                         " was used for another shred (certificate ", cert_id, first_reason,
                                         ") with other digests or another reason; nothing was shredded. "
                                         "Give each shred its own request id"));
}

absl::Status Shredder::ReadChunk(const std::string& begin, const std::string& end, const std::string& resume,
                                 const std::string& by, DestroyChunk* chunk) {
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper(end);
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(store_->db()->NewIterator(ro));
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
  chunk->end = raw.back().first;
  chunk->end.push_back('\0');  // the next key after the chunk's last
  const bool range_delete = raw.size() >= std::min<uint64_t>(kRangeDeleteMin, options_.epoch_items);
  if (range_delete) chunk->batch.DeleteRange(raw.front().first, chunk->end);
  return StageChunkOps(raw, begin.size(), by, range_delete, chunk);
}

absl::Status Shredder::StageChunkOps(std::vector<std::pair<std::string, std::string>>& raw, size_t prefix_size,
                                     const std::string& by, bool range_delete, DestroyChunk* chunk) {
  std::vector<absl::StatusOr<Staged>> staged(raw.size(), absl::UnknownError("not read"));
  ParallelFor(raw.size(), [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      auto open = store_->OpenSystem(raw[i].second, StagedAd(raw[i].first));
      staged[i] = open.ok()
                      ? DecodeStaged(*open)
                      : absl::StatusOr<Staged>(absl::DataLossError("a staged shred record does not authenticate"));
    }
  });
  // The chunk's operations go into the batch sorted by key: RocksDB's
  // memtable inserts a batch in order, and sorted inserts reuse the skip
  // list's search path (random order cost most of an epoch's time).
  std::vector<std::pair<std::string, bool>> ops;  // key, is a put (of `by`)
  for (size_t i = 0; i < raw.size(); ++i) {
    if (!staged[i].ok()) return staged[i].status();
    chunk->slots.push_back(ReadBigEndian64(std::string_view(raw[i].first).substr(prefix_size)));
    for (auto& k : staged[i]->delete_keys) ops.emplace_back(std::move(k), false);
    ops.emplace_back(ItemStore::SuppressionRecordKey(staged[i]->item_key), true);
    if (catalog_ != nullptr && staged[i]->kind == ItemKind::kModel) {
      catalog_->AddEdgeDeletions(staged[i]->item_key, &chunk->batch);
    }
    if (!staged[i]->inline_content) {
      ItemStore::StageBlobDrop(staged[i]->object_id, &chunk->batch);
      ++chunk->blobs;
    }
    if (!range_delete) ops.emplace_back(std::move(raw[i].first), false);
  }
  std::sort(ops.begin(), ops.end());
  for (const auto& [k, put] : ops) {
    if (put) {
      chunk->batch.Put(k, by);
    } else {
      chunk->batch.Delete(k);
    }
  }
  return absl::OkStatus();
}

absl::Status Shredder::Destroy(const std::string& cert_id, const PendingRecord* fresh) {
  const std::string scope = ScopeOf(cert_id);
  const std::string begin = StrCat(keyspace::kStagedItem, scope);
  const std::string end = RangeEnd(begin);
  PendingRecord pending;
  if (fresh != nullptr) {
    pending = *fresh;
  } else {
    auto stored = LoadPending(cert_id);
    if (!stored.ok()) return stored.status();
    pending = std::move(*stored);
  }
  const std::string by = pending.suppressed_by;
  bool first = fresh != nullptr;  // nothing committed yet
  // Where the next chunk starts. Each chunk's records end up deleted by a
  // range tombstone; seeking past them (instead of from `begin` again) keeps
  // every chunk's scan independent of how many chunks went before (an order
  // of 3,000,000 items has 120 chunks).
  std::string resume = begin;
  rocksdb::WriteBatch reused;  // every chunk's batch (see DestroyChunk)
  for (;;) {
    if (stop_.load() && fresh != nullptr) {
      if (first) (void)DropStaged(scope, false);
      return absl::CancelledError("the daemon is stopping; the destruction resumes at the next start");
    }

    // One chunk, in slot order (neighbouring slots share key-tree nodes).
    DestroyChunk chunk(reused);
    if (auto s = ReadChunk(begin, end, resume, by, &chunk); !s.ok()) return s;
    if (chunk.slots.empty()) return absl::OkStatus();
    rocksdb::WriteBatch& batch = chunk.batch;
    const std::vector<uint64_t>& slots = chunk.slots;
    KeyTree& tree = store_->key_tree();
    if (!pending.destroyed_epoch) pending.destroyed_epoch = tree.epoch();
    pending.installed_epoch = tree.epoch() + 1;
    pending.destroyed += slots.size();
    batch.Put(PendingKey(cert_id), store_->SealSystem(EncodePendingRecord(pending), PendingAd(cert_id)));
    if (first) batch.Put(RequestKey(pending.request_id), RequestRecord(cert_id, pending.request_binding));
    const absl::Time epoch_start = absl::Now();
    auto epoch = tree.Shred(slots, &batch);
    if (!epoch.ok()) {
      if (tree.epoch() + 1 == *pending.installed_epoch) {
        // Nothing committed: abandon the destruction (the caller sees why).
        if (first) (void)DropStaged(scope, false);
      } else {
        // Committed, then failed (the state not yet in the object store, the
        // old root not destroyed): the chunk's objects are queued for
        // deletion all the same, and the reaper deletes them once the state
        // is replicated (it used to wait for the next shred or start).
        store_->BlobDropsCommitted(chunk.blobs);
      }
      return epoch.status();
    }
    first = false;
    const double seconds = absl::ToDoubleSeconds(absl::Now() - epoch_start);
    store_->NoteItemsShredded(slots.size());
    {
      std::lock_guard l(progress_mu_);
      progress_request_ = pending.request_id;
      progress_ = {.planned = pending.planned, .destroyed = pending.destroyed};
    }
    Metrics().shred_epoch_seconds.Observe(seconds);
    LogInfo("shred epoch", {{"certificate", cert_id},
                            {"order", pending.order_id},
                            {"destroyed_epoch", epoch->destroyed_epoch},
                            {"installed_epoch", epoch->installed_epoch},
                            {"items", slots.size()},
                            {"seconds", seconds}});
    store_->BlobDropsCommitted(chunk.blobs);  // deleted in the background
    resume = chunk.end;
  }
}

std::optional<Shredder::Progress> Shredder::ProgressOf(std::string_view request_id) const {
  std::lock_guard l(progress_mu_);
  if (progress_request_.empty() || progress_request_ != request_id) return std::nullopt;
  return progress_;
}

absl::StatusOr<PendingRecord> Shredder::LoadPending(const std::string& cert_id) {
  std::string sealed;
  if (auto s = FromRocks(store_->db()->Get(rocksdb::ReadOptions(), PendingKey(cert_id), &sealed),
                         "reading a pending certification");
      !s.ok()) {
    return s;
  }
  auto plain = store_->OpenSystem(sealed, PendingAd(cert_id));
  if (!plain.ok()) return plain.status();
  return DecodePendingRecord(*plain, cert_id);
}

}  // namespace shredd
