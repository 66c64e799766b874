// The merge path of the item store: the locks every item commit takes
// (LockForCommit), and merging the metadata of a re-upload or a tag into a
// stored item (MergeLocked), with its log entries.
#include <sodium.h>

#include <algorithm>

#include "absl/time/clock.h"
#include <nlohmann/json.hpp>

#include "daemon/base/coding.h"
#include "daemon/base/strings.h"
#include "daemon/crypto/aead.h"
#include "daemon/items/item_record.h"
#include "daemon/items/item_store.h"
#include "daemon/items/item_store_internal.h"
#include "daemon/items/metadata_codec.h"
#include "daemon/storage/rocks_util.h"
#include "formats/commitment.h"

namespace shredd {

using namespace items_internal;  // NOLINT(google-build-using-namespace): the layer's own helpers

namespace {

// True if `stored` already holds every subject, dataset and label of `add`.
bool Covers(const ItemMetadata& stored, const ItemMetadata& add) {
  auto has_all = [](const std::vector<std::string>& in, const std::vector<std::string>& want) {
    return std::all_of(want.begin(), want.end(),
                       [&](const std::string& v) { return std::find(in.begin(), in.end(), v) != in.end(); });
  };
  if (!has_all(stored.subject_ids, add.subject_ids) || !has_all(stored.datasets, add.datasets)) return false;
  return std::all_of(add.labels.begin(), add.labels.end(), [&](const auto& kv) {
    auto it = stored.labels.find(kv.first);
    return it != stored.labels.end() && it->second == kv.second;
  });
}

// Adds the values of `more` missing from `into` to it; returns those added.
std::vector<std::string> MergeValues(std::vector<std::string>& into, const std::vector<std::string>& more) {
  std::vector<std::string> added;
  for (const auto& v : more) {
    if (std::find(into.begin(), into.end(), v) == into.end()) {
      into.push_back(v);
      added.push_back(v);
    }
  }
  return added;
}

}  // namespace

absl::StatusOr<ItemInfo> ItemStore::AddMetadata(const Sha256& hash, const ItemMetadata& add,
                                                const std::vector<std::pair<std::string, std::string>>& extra,
                                                const DestructionGate::Commit* passed) {
  if (auto s = add.Validate(); !s.ok()) return s;
  ItemKey key = ItemKeyFor(hash);
  DestructionGate::Commit gate;
  if (passed == nullptr) {
    auto g = PassDestructionGate();
    if (!g.ok()) return g.status();
    gate = std::move(*g);
  }
  std::lock_guard stripe(StripeFor(key));
  auto lease = tree_->BeginWrite();  // no shred between reading and rewriting the record
  std::string rec;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), ItemRecordKey(key), &rec);
  if (rs.IsNotFound()) {
    if (auto by = SuppressedBy(hash)) {
      return absl::FailedPreconditionError(StrCat(ContentDigest{hash, 0}.HashString(), " was shredded (", *by, ")"));
    }
    return absl::NotFoundError(StrCat(ContentDigest{hash, 0}.HashString(), " is not stored; nothing was changed"));
  }
  if (!rs.ok()) return FromRocks(rs, "reading an item record");
  return MergeLocked(lease, key, hash, std::move(rec), add, std::nullopt, extra, "");
}

absl::StatusOr<ItemInfo> ItemStore::OpenRecordLocked(const KeyTree::WriteLease& lease, const ItemKey& key,
                                                     const Sha256& hash, std::string_view rec,
                                                     std::optional<ItemKind> kind, SecretBytes* meta_key) {
  auto header = DecodeItemRecord(rec);
  if (!header.ok()) return header.status();
  if (kind && *kind != header->kind) {
    return absl::FailedPreconditionError(
        StrCat(ContentDigest{hash, 0}.HashString(), " is already stored as a ", KindName(header->kind),
               "; the kind of stored content is fixed when it is first stored, so it cannot be stored as a ",
               KindName(*kind), "; nothing was stored"));
  }
  // The lease is held; GetDekLocked does not take the epoch lock again.
  auto dek = tree_->GetDekLocked(lease, header->slot);
  if (!dek.ok()) return dek.status();
  *meta_key = DeriveSubkey(*dek, Subkey::kMetadata);
  auto meta = OpenData(*meta_key, SealedMetadataOf(rec), MetadataAd(key));
  if (!meta.ok()) return absl::DataLossError("the item's metadata does not authenticate (altered on disk)");
  ItemInfo info;
  absl::Status decoded = DecodeMetadata(*meta, &info.digest, &info.metadata);
  sodium_memzero(meta->data(), meta->size());
  if (!decoded.ok()) return decoded;
  info.digest.size = header->size;
  info.metadata.kind = header->kind;
  info.chunk_size = header->chunk_size;
  info.stored_unix_nanos = header->stored_unix_nanos;
  return info;
}

std::vector<std::string> ItemStore::StageMergedIndexes(const ItemKey& key, const ItemMetadata& add,
                                                       ItemMetadata* stored, rocksdb::WriteBatch* batch) {
  for (const auto& s : MergeValues(stored->subject_ids, add.subject_ids)) {
    batch->Put(IndexKey(keyspace::kIndexSubject, KeyedHash("subject", s), key), "");
  }
  std::vector<std::string> new_datasets = MergeValues(stored->datasets, add.datasets);
  for (const auto& d : new_datasets) batch->Put(IndexKey(keyspace::kIndexDataset, KeyedHash("dataset", d), key), "");
  for (const auto& [k, v] : add.labels) {
    auto old = stored->labels.find(k);
    if (old != stored->labels.end()) batch->Delete(LabelIndexKey(*this, k, old->second, key));
    stored->labels[k] = v;
    batch->Put(LabelIndexKey(*this, k, v, key), "");
  }
  return new_datasets;
}

absl::StatusOr<ItemInfo> ItemStore::MergeLocked(const KeyTree::WriteLease& lease, const ItemKey& key,
                                                const Sha256& hash, std::string rec, const ItemMetadata& add,
                                                std::optional<ItemKind> kind,
                                                const std::vector<std::pair<std::string, std::string>>& extra,
                                                const std::string& lineage_edges) {
  SecretBytes meta_key;
  auto info = OpenRecordLocked(lease, key, hash, rec, kind, &meta_key);
  if (!info.ok()) return info.status();
  if (Covers(info->metadata, add) && extra.empty()) return info;  // nothing to write
  rocksdb::WriteBatch batch;
  const std::vector<std::string> new_datasets = StageMergedIndexes(key, add, &info->metadata, &batch);
  if (auto s = info->metadata.Validate(); !s.ok()) return s;
  std::string plain = EncodeMetadata(info->digest, info->metadata);
  ReplaceSealedMetadata(&rec, SealWithKey(meta_key, plain, MetadataAd(key)));
  sodium_memzero(plain.data(), plain.size());
  batch.Put(ItemRecordKey(key), rec);
  for (const auto& [k, v] : extra) batch.Put(k, v);
  auto custody = LatestCustody(key);
  const std::string item_commitment =
      custody ? verify::CustodyCommitment(info->digest.HashString(), custody->salt_hex) : "";
  auto committed = Commit(&batch, [&](uint64_t first) -> absl::StatusOr<std::vector<std::string>> {
    std::vector<std::string> out;
    AddNewDatasets(new_datasets, &batch, &out);
    for (const auto& d : new_datasets) {
      const std::string index = BigEndian64(first + out.size());
      batch.Put(MemberKey(DatasetKeyOf(d), key, index), index);
      out.push_back(nlohmann::json{{"type", "dataset-member"},
                                   {"dataset", DatasetCommitment(d)},
                                   {"item", item_commitment},
                                   {"time", FormatRfc3339(absl::Now())}}
                        .dump());
    }
    if (!lineage_edges.empty()) out.push_back(LineageEntry(info->digest, item_commitment, lineage_edges));
    return out;
  });
  if (!committed.ok()) return committed.status();
  return info;
}

absl::Status ItemStore::CheckNotSuppressedLocked(const ItemKey& key, const ContentDigest& digest,
                                                 std::span<const ItemKey> parents) {
  std::string by;
  if (db_->Get(rocksdb::ReadOptions(), SuppressionKey(key), &by).ok()) {
    return absl::FailedPreconditionError(
        StrCat(digest.HashString(), " was shredded (", by,
               "); it cannot be stored again unless an admin lifts the suppression; nothing was stored"));
  }
  for (const ItemKey& parent : parents) {
    if (db_->Get(rocksdb::ReadOptions(), SuppressionKey(parent), &by).ok()) {
      return absl::FailedPreconditionError(StrCat("a lineage parent of ", digest.HashString(), " was shredded (", by,
                                                  ") while the upload was in flight; nothing was stored"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<PutResult> ItemStore::MergeIntoExisting(const ContentDigest& digest, const ItemMetadata& metadata,
                                                       const std::vector<std::pair<std::string, std::string>>& extra,
                                                       const std::string& lineage_edges,
                                                       std::span<const ItemKey> lineage_parents) {
  ItemKey key = ItemKeyFor(digest.hash);
  CommitLocks locks;
  if (auto s = LockForCommit(key, digest, lineage_parents, !lineage_edges.empty(), &locks); !s.ok()) return s;
  if (!locks.record) {  // not reachable: only a shred deletes an item record, and it suppresses
    return absl::NotFoundError(StrCat(digest.HashString(), " is not stored"));
  }
  return MergeAndAcknowledge(locks, key, digest, metadata, extra, lineage_edges);
}

absl::Status PendingDestructionRefusal(std::string_view certificate_id, std::string_view what) {
  return absl::UnavailableError(
      StrCat("a destruction is pending after a failure (certificate ", certificate_id, ", finished by the daemon's ",
             "retries or by GetCertificate once the vault and the object store answer); ", what,
             " wait until it is certified (docs/ORDERS.md \"Writes during a destruction\"): nothing was changed, "
             "retry later"));
}

absl::StatusOr<DestructionGate::Commit> ItemStore::PassDestructionGate() {
  DestructionGate::Commit c = gate_.EnterCommit();
  // Checked inside: a destruction this commit waited for may have failed.
  if (std::string pending = gate_.PendingCertificate(); !pending.empty()) {
    return PendingDestructionRefusal(pending, "changes to stored items and uploads with lineage");
  }
  if (!c.held()) {
    return absl::AbortedError(
        StrCat("a destruction has been in progress for ", absl::FormatDuration(DestructionGate::kCommitWait),
               "; changes to stored items and uploads with lineage wait for it to end (docs/ORDERS.md); nothing was "
               "changed, retry later"));
  }
  return c;
}

absl::Status ItemStore::LockForCommit(const ItemKey& key, const ContentDigest& digest, std::span<const ItemKey> parents,
                                      bool lineage, CommitLocks* locks) {
  if (lineage) {
    auto g = PassDestructionGate();
    if (!g.ok()) return g.status();
    locks->gate = std::move(*g);
  }
  if (auto s = LockAndRead(key, digest, parents, locks); !s.ok() || !locks->record || locks->gate.held()) return s;
  // A merge into a stored item: it must not run during a destruction, so
  // it passes the gate, which comes before the stripe lock (lock order).
  locks->record.reset();
  locks->lease.reset();
  locks->stripe.unlock();
  auto g = PassDestructionGate();
  if (!g.ok()) return g.status();
  locks->gate = std::move(*g);
  return LockAndRead(key, digest, parents, locks);
}

absl::Status ItemStore::LockAndRead(const ItemKey& key, const ContentDigest& digest, std::span<const ItemKey> parents,
                                    CommitLocks* locks) {
  locks->stripe = std::unique_lock(StripeFor(key));
  // From here on no shred epoch can commit: suppression and existence are
  // decided together with the write (see the header, "Ingest and shred").
  locks->lease.emplace(tree_->BeginWrite());
  if (auto s = CheckNotSuppressedLocked(key, digest, parents); !s.ok()) return s;
  std::string rec;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), ItemRecordKey(key), &rec);
  if (rs.ok()) {
    locks->record = std::move(rec);
  } else if (!rs.IsNotFound()) {
    return FromRocks(rs, "reading an item record");
  }
  return absl::OkStatus();
}

absl::StatusOr<PutResult> ItemStore::MergeAndAcknowledge(CommitLocks& locks, const ItemKey& key,
                                                         const ContentDigest& digest, const ItemMetadata& metadata,
                                                         const std::vector<std::pair<std::string, std::string>>& extra,
                                                         const std::string& lineage_edges) {
  auto merged = MergeLocked(*locks.lease, key, digest.hash, std::move(*locks.record), metadata, metadata.kind, extra,
                            lineage_edges);
  if (!merged.ok()) return merged.status();
  locks.lease.reset();
  locks.stripe.unlock();
  // The record read may belong to a batch written but not synced yet.
  if (auto s = WaitForRecordsRead(); !s.ok()) return s;
  return PutResult{digest, true};
}

}  // namespace shredd
