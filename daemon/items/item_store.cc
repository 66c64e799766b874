#include "daemon/items/item_store.h"

#include <sodium.h>

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include <nlohmann/json.hpp>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>

#include "daemon/base/coding.h"
#include "daemon/base/fs_util.h"
#include "daemon/base/logging.h"
#include "daemon/base/parallel.h"
#include "daemon/base/strings.h"
#include "daemon/crypto/aead.h"
#include "daemon/items/item_record.h"
#include "daemon/items/item_store_internal.h"
#include "daemon/items/metadata_codec.h"
#include "daemon/log/transparency_log.h"
#include "daemon/storage/keyspace.h"
#include "daemon/storage/rocks_util.h"
#include "daemon/storage/space_guard.h"
#include "daemon/storage/storage_health.h"
#include "formats/commitment.h"

namespace shredd {
namespace items_internal {

std::string LabelIndexKey(const ItemStore& store, std::string_view k, std::string_view v, const ItemKey& key) {
  return IndexKey(keyspace::kIndexLabel, store.KeyedHash("label", StrCat(k, "=", v)), key);
}

std::vector<std::string> IndexKeysOf(const ItemStore& store, const ItemMetadata& m, const ItemKey& key) {
  std::vector<std::string> keys;
  for (const auto& s : m.subject_ids)
    keys.push_back(IndexKey(keyspace::kIndexSubject, store.KeyedHash("subject", s), key));
  for (const auto& d : m.datasets)
    keys.push_back(IndexKey(keyspace::kIndexDataset, store.KeyedHash("dataset", d), key));
  for (const auto& [k, v] : m.labels) keys.push_back(LabelIndexKey(store, k, v, key));
  return keys;
}

std::string CustodyRecordText(const ContentDigest& digest, ItemKind kind, std::string_view salt_hex) {
  return StrCat("{\"digest\":\"", digest.HashString(), "\",\"kind\":\"", KindName(kind), "\",\"salt\":\"", salt_hex,
                "\",\"size\":", digest.size, "}");
}

std::string ItemStoredEntry(const ContentDigest& digest, ItemKind kind, std::string_view item_commitment,
                            const std::vector<std::string_view>& dataset_commitments, std::string_view time) {
  std::string out = "{\"datasets\":[";
  for (size_t i = 0; i < dataset_commitments.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    out += dataset_commitments[i];
    out += '"';
  }
  out += "],";
  if (kind == ItemKind::kModel) out += StrCat("\"digest\":\"", digest.HashString(), "\",");  // weights are not personal
  out += StrCat("\"item\":\"", item_commitment, "\",\"kind\":\"", KindName(kind), "\",\"time\":\"", time,
                "\",\"type\":\"item-stored\"}");
  return out;
}

}  // namespace items_internal

using namespace items_internal;  // NOLINT(google-build-using-namespace): the layer's own helpers

ItemStore::~ItemStore() {
  reaper_.reset();
  tree_.reset();
  if (db_) (void)db_->Close();
}

namespace {

// Scratch records of an order scan a crash interrupted (slot_ordered_lookup.h).
absl::Status DropSlotScratch(rocksdb::DB* db) {
  const std::string end = StrCat(keyspace::kSlotScratch, std::string(16, '\xff'));
  const rocksdb::Slice upper(end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;  // else a seek walks on over the next prefix's tombstones
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
  it->Seek(keyspace::kSlotScratch);
  if (!it->Valid()) return FromRocks(it->status(), "reading scratch records");
  it.reset();
  rocksdb::WriteBatch batch;
  batch.DeleteRange(keyspace::kSlotScratch, end);
  return GuardedWrite(db, rocksdb::WriteOptions(), &batch, "dropping the scratch of an interrupted scan");
}

}  // namespace

absl::StatusOr<std::unique_ptr<ItemStore>> ItemStore::Open(const Options& options, Vault* vault) {
  std::unique_ptr<ItemStore> store(new ItemStore());
  store->options_ = options;
  if (auto s = MakeDirs(options.data_dir, 0700); !s.ok()) return s;
  rocksdb::Options ro;
  ro.create_if_missing = true;
  ro.IncreaseParallelism(2);
  ro.max_background_jobs = 2;
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  ApplyRocksDbMemoryBudget(options.memory_budget_bytes, &ro, &table);
  ApplyRocksDbWriteTuning(&ro);
  ro.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  if (options.storage_health) StorageHealth::Install(options.storage_health, &ro);
  rocksdb::DB* raw = nullptr;
  if (auto s = FromRocks(rocksdb::DB::Open(ro, options.data_dir + "/db", &raw),
                         "opening RocksDB in " + options.data_dir + "/db");
      !s.ok()) {
    return s;
  }
  store->db_.reset(raw);
  if (options.before_use) {
    if (auto s = options.before_use(raw); !s.ok()) return s;
  }
  if (auto s = DropSlotScratch(raw); !s.ok()) return s;
  auto tree = KeyTree::Open(raw, vault);
  if (!tree.ok()) return tree.status();
  store->tree_ = std::move(*tree);
  auto system_key = store->tree_->GetDek(KeyTree::kSystemSlot);
  if (!system_key.ok()) {
    return absl::DataLossError(StrCat("cannot unwrap the system key: ", system_key.status().message()));
  }
  store->index_key_ = DeriveSubkey(*system_key, Subkey::kIndex);
  store->system_metadata_key_ = DeriveSubkey(*system_key, Subkey::kMetadata);
  auto blobs = options.open_blobs ? options.open_blobs() : OpenFileBlobBackend(options.data_dir);
  if (!blobs.ok()) return blobs.status();
  store->blobs_ = std::move(*blobs);
  store->CollectBlobGarbage();
  store->reaper_ = std::make_unique<BlobReaper>(raw, store->blobs_.get());
  return store;
}

absl::Status ItemStore::NoteUploadIntent(const std::string& object_id) {
  rocksdb::WriteBatch batch;
  batch.Put(IntentKey(object_id), "");
  return GuardedWrite(db_.get(), rocksdb::WriteOptions(), &batch, "noting an upload");
}

// Deletes the orphans of a crash before the daemon serves: objects no
// record names. In a shared object store (BlobBackend::Shared) only those
// this daemon began itself (an upload intent, no record): another daemon
// on the same prefix (a mistake, or an older copy of this data dir started
// beside it, with state replication off) must never lose its objects to
// this one's start; unknown objects are left alone and counted. An orphan
// the store refuses to delete does not stop the start: it is logged,
// counted, and queued for the reaper, which retries it with backoff; what
// could not even be listed is retried at the next start.
void ItemStore::CollectBlobGarbage() {
  rocksdb::DB* db = db_.get();
  const bool shared = blobs_->Shared();
  std::set<std::string, std::less<>> unknown;
  std::vector<std::string> undeleted;
  auto gc = blobs_->CollectGarbage(
      [&](std::string_view name) {
        auto oid = HexDecode(name);
        std::string v;
        if (name.size() != 2 * kObjectIdSize || !oid) {
          if (shared) unknown.emplace(name);
          return shared;
        }
        // A queued drop is the reaper's: it deletes once the shred is replicated.
        if (db->Get(rocksdb::ReadOptions(), ObjectKey(*oid), &v).ok() || BlobReaper::IsQueued(db, *oid)) return true;
        if (!shared || db->Get(rocksdb::ReadOptions(), IntentKey(*oid), &v).ok()) return false;
        unknown.emplace(name);
        return true;
      },
      &undeleted);
  blob_unknown_objects_ = unknown.size();
  if (!unknown.empty()) {
    LogWarning("objects under the object store prefix that this daemon neither holds nor began: left alone",
               {{"objects", unknown.size()},
                {"why",
                 "another daemon's on the same prefix, an older copy's, or orphans from before upload "
                 "intents (docs/OBJECT-STORE.md)"}});
  }
  if (gc.ok()) {
    DropUploadIntents();
    return;
  }
  blob_gc_failures_ = std::max<uint64_t>(undeleted.size(), 1);
  LogWarning("blob garbage collection at start failed; starting anyway, the orphans are retried later",
             {{"undeleted", undeleted.size()}, {"reason", std::string(gc.message())}});
  rocksdb::WriteBatch batch;
  for (const std::string& name : undeleted) {
    auto oid = HexDecode(name);
    if (name.size() == 2 * kObjectIdSize && oid) BlobReaper::StageDrop(*oid, &batch);
  }
  // Not fatal either (a full disk): the next start collects them again.
  if (auto s = GuardedWrite(db, rocksdb::WriteOptions(), &batch, "queueing undeletable orphans for the blob reaper");
      !s.ok()) {
    LogWarning("cannot queue the orphans for deletion; the next start tries again",
               {{"reason", std::string(s.message())}});
  }
}

// After a collection that went through: every upload it found begun and
// uncommitted is gone (or queued for the reaper), and none is in flight yet.
void ItemStore::DropUploadIntents() {
  const std::string end = StrCat(keyspace::kBlobIntent, std::string(kObjectIdSize + 1, '\xff'));
  {
    // No write when there is none: a start that writes nothing leaves the
    // replicated history continuous across it (RECOVERY.md "Runs").
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    it->Seek(keyspace::kBlobIntent);
    if (!it->Valid() || it->key().compare(end) >= 0) return;
  }
  rocksdb::WriteBatch batch;
  batch.DeleteRange(keyspace::kBlobIntent, end);
  if (auto s = GuardedWrite(db_.get(), rocksdb::WriteOptions(), &batch, "dropping upload intents"); !s.ok()) {
    LogWarning("cannot drop the upload intents; the next start does", {{"reason", std::string(s.message())}});
  }
}

ItemKey ItemStore::KeyedHash(std::string_view domain, std::string_view value) const {
  ItemKey out;
  crypto_generichash_state st;
  crypto_generichash_init(&st, index_key_.data(), index_key_.size(), out.size());
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(domain.data()), domain.size());
  const unsigned char zero = 0;
  crypto_generichash_update(&st, &zero, 1);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(value.data()), value.size());
  crypto_generichash_final(&st, out.data(), out.size());
  return out;
}

std::string ItemStore::SealSystem(std::string_view plaintext, std::string_view ad) const {
  return SealWithKey(system_metadata_key_, plaintext, ad);
}

absl::StatusOr<std::string> ItemStore::OpenSystem(std::string_view sealed, std::string_view ad) const {
  return OpenData(system_metadata_key_, sealed, ad);
}

std::optional<std::string> ItemStore::ShreddedBy(const ItemKey& key, const Custody& custody) {
  std::string v;
  if (db_->Get(rocksdb::ReadOptions(), LiftedSuppressionKey(key, custody.index), &v).ok()) return v;
  auto latest = LatestCustody(key);
  if (!latest || latest->index != custody.index) return std::nullopt;  // stored again, lifted before lifts kept it
  if (db_->Get(rocksdb::ReadOptions(), SuppressionKey(key), &v).ok()) return v;
  return std::nullopt;
}

std::optional<std::string> ItemStore::SuppressedBy(const Sha256& hash) {
  std::string v;
  if (db_->Get(rocksdb::ReadOptions(), SuppressionKey(ItemKeyFor(hash)), &v).ok()) return v;
  return std::nullopt;
}

absl::Status ItemStore::CheckUploadable(const ContentDigest& declared, const ItemMetadata& metadata) {
  if (auto s = metadata.Validate(); !s.ok()) return s;
  if (declared.size > options_.max_item_size) {
    return absl::InvalidArgumentError(
        StrCat("declared size ", declared.size, " exceeds the maximum item size of ", options_.max_item_size));
  }
  return CheckNotSuppressed(declared);
}

absl::Status ItemStore::CheckNotSuppressed(const ContentDigest& declared) {
  if (auto by = SuppressedBy(declared.hash)) {
    return absl::FailedPreconditionError(StrCat(declared.HashString(), " was shredded (", *by,
                                                "); it cannot be stored again unless an admin lifts the suppression"));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ItemStore::CountItems() {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;  // a one-off scan should not evict the working set
  std::string upper(keyspace::kItem);
  ++upper.back();  // just past the item records
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  int64_t n = 0;
  for (it->Seek(keyspace::kItem); it->Valid(); it->Next()) ++n;
  if (auto s = FromRocks(it->status(), "counting items"); !s.ok()) return s;
  item_count_.store(n);
  return static_cast<uint64_t>(n);
}

absl::StatusOr<ItemInfo> ItemStore::DecodeInfo(const ItemKey& key, std::string_view rec, uint64_t* slot,
                                               std::string* object_id, bool* inline_content) {
  auto header = DecodeItemRecord(rec);
  if (!header.ok()) return header.status();
  auto dek = tree_->GetDek(header->slot);
  if (!dek.ok()) {
    if (absl::IsNotFound(dek.status())) return absl::DataLossError("the item's data key is missing");
    return dek.status();
  }
  SecretBytes meta_key(kKeySize);
  return DecodeInfoWithDek(key, rec, *dek, &meta_key, slot, object_id, inline_content);
}

absl::StatusOr<ItemInfo> ItemStore::DecodeInfoWithDek(const ItemKey& key, std::string_view rec, KeyView dek,
                                                      SecretBytes* meta_key, uint64_t* slot, std::string* object_id,
                                                      bool* inline_content) {
  auto header = DecodeItemRecord(rec);
  if (!header.ok()) return header.status();
  ItemInfo info;
  info.metadata.kind = header->kind;
  info.chunk_size = header->chunk_size;
  info.digest.size = header->size;
  info.stored_unix_nanos = header->stored_unix_nanos;
  *inline_content = !header->in_blob;
  *slot = header->slot;
  *object_id = std::move(header->object_id);
  DeriveSubkeyInto(dek, Subkey::kMetadata, meta_key->mutable_span());
  auto meta = OpenData(*meta_key, SealedMetadataOf(rec), MetadataAd(key));
  if (!meta.ok()) return absl::DataLossError("the item's metadata does not authenticate (altered on disk)");
  auto s = DecodeMetadata(*meta, &info.digest, &info.metadata);
  sodium_memzero(meta->data(), meta->size());
  if (!s.ok()) return s;
  return info;
}

bool ItemStore::Contains(const Sha256& hash) {
  std::string v;
  return db_->Get(rocksdb::ReadOptions(), ItemRecordKey(ItemKeyFor(hash)), &v).ok();
}

absl::StatusOr<StoredItem> ItemStore::Lookup(const Sha256& hash) {
  StoredItem item;
  item.item_key = ItemKeyFor(hash);
  std::string rec;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), ItemRecordKey(item.item_key), &rec);
  if (rs.IsNotFound()) {
    ContentDigest d{hash, 0};
    if (auto by = SuppressedBy(hash)) {
      return absl::NotFoundError(StrCat(d.HashString(), " was shredded (", *by, ")"));
    }
    return absl::NotFoundError(StrCat(d.HashString(), " is not stored"));
  }
  if (!rs.ok()) return FromRocks(rs, "reading an item record");
  auto info = DecodeInfo(item.item_key, rec, &item.slot, &item.object_id, &item.inline_content);
  if (!info.ok()) {
    // Read without the write lease: a shred epoch may have committed between
    // reading the record and its key. That is "shredded", not data loss.
    if (auto by = SuppressedBy(hash)) {
      return absl::NotFoundError(StrCat(ContentDigest{hash, 0}.HashString(), " was shredded (", *by, ")"));
    }
    return info.status();
  }
  if (info->digest.hash != hash) return absl::DataLossError("item record belongs to another digest");
  item.info = std::move(*info);
  return item;
}

absl::StatusOr<ItemInfo> ItemStore::Stat(const Sha256& hash) {
  auto item = Lookup(hash);
  if (!item.ok()) return item.status();
  return std::move(item->info);
}

absl::StatusOr<std::unique_ptr<ItemReader>> ItemStore::OpenReader(const Sha256& hash) {
  // Read before the record: a shred committed after it moves the epoch, so
  // the reader's first StillStored() looks.
  const uint64_t epoch = tree_->epoch();
  auto item = Lookup(hash);
  if (!item.ok()) return item.status();
  auto dek = tree_->GetDek(item->slot);
  if (!dek.ok()) return dek.status();
  std::unique_ptr<ItemReader> r(new ItemReader());
  r->tree_ = tree_.get();
  r->epoch_ = epoch;
  r->stored_ = [this, key = item->item_key, oid = item->object_id] {
    std::string rec;
    if (!db_->Get(rocksdb::ReadOptions(), ItemRecordKey(key), &rec).ok()) return false;
    auto header = DecodeItemRecord(rec);
    return header.ok() && header->object_id == oid;  // not a later upload of the same content
  };
  r->size_ = item->info.digest.size;
  r->chunk_size_ = item->info.chunk_size;
  r->object_id_ = item->object_id;
  SecretBytes ck = DeriveSubkey(*dek, Subkey::kContent);
  r->cipher_ = std::make_unique<ChunkCipher>(ck, r->object_id_, r->size_);
  if (item->inline_content) {
    rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), InlineKey(item->object_id), &r->inline_ciphertext_);
    if (rs.IsNotFound()) return absl::DataLossError("the item's stored ciphertext is missing");
    if (!rs.ok()) return FromRocks(rs, "reading ciphertext");
  } else {
    auto b = blobs_->Open(HexEncode(item->object_id));
    if (!b.ok()) return b.status();
    r->blob_ = std::move(*b);
  }
  return r;
}

absl::StatusOr<ItemStore::ListPage> ItemStore::List(const ListFilter& filter, size_t page_size,
                                                    std::string_view page_token) {
  ListPage page;
  std::string start;
  if (!page_token.empty()) {
    auto decoded = HexDecode(page_token);
    if (!decoded || decoded->size() != 32) return absl::InvalidArgumentError("malformed page token");
    start = std::move(*decoded);
  }
  // Pick the most selective index, or scan all items.
  std::string prefix(keyspace::kItem);
  size_t key_offset = prefix.size();
  if (!filter.subject_id.empty() || !filter.dataset.empty() || !filter.labels.empty()) {
    char type;
    ItemKey h;
    if (!filter.subject_id.empty()) {
      type = keyspace::kIndexSubject;
      h = KeyedHash("subject", filter.subject_id);
    } else if (!filter.dataset.empty()) {
      type = keyspace::kIndexDataset;
      h = KeyedHash("dataset", filter.dataset);
    } else {
      type = keyspace::kIndexLabel;
      h = KeyedHash("label", StrCat(filter.labels.begin()->first, "=", filter.labels.begin()->second));
    }
    prefix = keyspace::kIndex;
    prefix.push_back(type);
    prefix += KeyString(h);
    key_offset = prefix.size();
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  std::string seek = prefix + start;
  for (it->Seek(seek); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string_view k = it->key().ToStringView().substr(key_offset);
    if (k.size() != 32) continue;
    if (!start.empty() && k == start) continue;
    ItemKey key;
    std::memcpy(key.data(), k.data(), 32);
    std::string rec;
    if (key_offset == 1) {
      rec = it->value().ToString();
    } else if (!db_->Get(rocksdb::ReadOptions(), ItemRecordKey(key), &rec).ok()) {
      continue;
    }
    uint64_t slot;
    std::string oid;
    bool inl;
    auto info = DecodeInfo(key, rec, &slot, &oid, &inl);
    if (!info.ok()) {
      if (IsSuppressed(key)) continue;  // shredded while we listed (see Lookup)
      return info.status();
    }
    const auto& m = info->metadata;
    bool match =
        (!filter.kind || m.kind == *filter.kind) &&
        (filter.subject_id.empty() ||
         std::find(m.subject_ids.begin(), m.subject_ids.end(), filter.subject_id) != m.subject_ids.end()) &&
        (filter.dataset.empty() || std::find(m.datasets.begin(), m.datasets.end(), filter.dataset) != m.datasets.end());
    for (const auto& [lk, lv] : filter.labels) {
      auto f = m.labels.find(lk);
      if (f == m.labels.end() || f->second != lv) match = false;
    }
    if (match) page.items.push_back(std::move(*info));
    if (page.items.size() >= page_size) {
      page.next_page_token = HexEncode(k);
      break;
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "listing items");
  return page;
}

std::vector<std::string> ItemStore::ShredDeleteKeys(const StoredItem& item) const {
  std::vector<std::string> keys;
  keys.push_back(ItemRecordKey(item.item_key));
  keys.push_back(item.inline_content ? InlineKey(item.object_id) : ObjectKey(item.object_id));
  for (auto& k : IndexKeysOf(*this, item.info.metadata, item.item_key)) keys.push_back(std::move(k));
  return keys;
}

std::string ItemStore::SuppressionRecordKey(const ItemKey& item_key) { return SuppressionKey(item_key); }

void ItemStore::AddShredOps(const ItemKey& item_key, const std::vector<std::string>& delete_keys, std::string_view by,
                            rocksdb::WriteBatch* batch) {
  for (const auto& k : delete_keys) batch->Delete(k);
  batch->Put(SuppressionKey(item_key), rocksdb::Slice(by.data(), by.size()));
}

void ItemStore::AddShredOps(const StoredItem& item, std::string_view certificate_id, rocksdb::WriteBatch* batch) {
  AddShredOps(item.item_key, ShredDeleteKeys(item), certificate_id, batch);
}

absl::StatusOr<std::string> ItemStore::RemoveSuppression(const Sha256& hash,
                                                         const std::vector<std::pair<std::string, std::string>>& extra,
                                                         const std::string& log_entry) {
  ItemKey key = ItemKeyFor(hash);
  std::lock_guard stripe(StripeFor(key));
  std::string by;
  if (!db_->Get(rocksdb::ReadOptions(), SuppressionKey(key), &by).ok()) {
    return absl::NotFoundError(StrCat(ContentDigest{hash, 0}.HashString(), " is not suppressed"));
  }
  rocksdb::WriteBatch batch;
  batch.Delete(SuppressionKey(key));
  // Kept, so that the dataset manifest still names the certificate that
  // shredded this custody once the item is stored again (ShreddedBy).
  if (auto custody = LatestCustody(key)) batch.Put(LiftedSuppressionKey(key, custody->index), by);
  for (const auto& [k, v] : extra) batch.Put(k, v);
  auto committed = Commit(&batch, [&](uint64_t) -> absl::StatusOr<std::vector<std::string>> {
    return std::vector<std::string>{log_entry};
  });
  if (!committed.ok()) return committed.status();
  return by;
}

absl::StatusOr<uint64_t> ItemStore::Commit(rocksdb::WriteBatch* batch, const LogEntries& entries, bool fresh_entries,
                                           uint64_t* durable_at) {
  if (log_ != nullptr) return log_->Append(batch, entries, fresh_entries, durable_at);
  if (durable_at != nullptr) *durable_at = 0;
  auto e = entries(0);  // unit tests without a log: records only
  if (!e.ok()) return e.status();
  if (auto s = SyncWrite(db_.get(), batch); !s.ok()) return s;
  return 0;
}

absl::Status ItemStore::WaitDurable(uint64_t durable_at) {
  if (log_ == nullptr) return absl::OkStatus();  // Commit synced already
  return log_->WaitDurable(durable_at);
}

absl::Status ItemStore::WaitForRecordsRead() {
  if (log_ == nullptr) return absl::OkStatus();
  return log_->WaitDurable(log_->WrittenSize());
}

std::string ItemStore::DatasetSaltHex(std::string_view dataset) const {
  return HexEncode(KeyedHash("dataset-salt", dataset));
}

std::string ItemStore::DatasetCommitment(std::string_view dataset) const {
  return verify::DatasetCommitment(dataset, DatasetSaltHex(dataset));
}

ItemKey ItemStore::DatasetKeyOf(std::string_view dataset) const { return KeyedHash("dataset-record", dataset); }

// The "item-stored" entry of a new item; adds its custody record and its
// dataset memberships (both kept after a shred, for audits) to `batch`.
std::string ItemStore::CustodyEntry(const ContentDigest& digest, const ItemMetadata& metadata, const ItemKey& key,
                                    uint64_t index, rocksdb::WriteBatch* batch, std::string* salt_hex) {
  const std::string last_salt = RandomHex(32);
  if (salt_hex != nullptr) *salt_hex = last_salt;
  batch->Put(CustodyKeyPrefix(key) + BigEndian64(index),
             SealSystem(CustodyRecordText(digest, metadata.kind, last_salt), CustodyAd(key)));
  std::vector<std::string> datasets;
  for (const auto& d : metadata.datasets) {
    datasets.push_back(DatasetCommitment(d));
    batch->Put(MemberKey(DatasetKeyOf(d), key, BigEndian64(index)), BigEndian64(index));
  }
  return ItemStoredEntry(digest, metadata.kind, verify::CustodyCommitment(digest.HashString(), last_salt),
                         std::vector<std::string_view>(datasets.begin(), datasets.end()), FormatRfc3339(absl::Now()));
}

std::string ItemStore::LineageEntry(const ContentDigest& model, const std::string& model_commitment,
                                    const std::string& edges_json) {
  nlohmann::json entry{{"type", "lineage"}, {"model", model.HashString()}, {"item", model_commitment}};
  entry["edges"] = nlohmann::json::parse(edges_json, nullptr, false);
  entry["time"] = FormatRfc3339(absl::Now());
  return entry.dump();
}

std::optional<ItemStore::Custody> ItemStore::LatestCustody(const ItemKey& key) {
  return CustodyAt(key, std::numeric_limits<uint64_t>::max());
}

std::optional<ItemStore::Custody> ItemStore::CustodyAt(const ItemKey& key, uint64_t index) {
  std::string prefix = CustodyKeyPrefix(key);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  it->SeekForPrev(prefix + BigEndian64(index));
  if (!it->Valid() || !it->key().starts_with(prefix) || it->key().size() != prefix.size() + 8) return std::nullopt;
  auto plain = OpenSystem(it->value().ToStringView(), CustodyAd(key));
  if (!plain.ok()) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(*plain, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  Custody c;
  auto h = ParseDigestHash(j.value("digest", ""));
  if (!h.ok()) return std::nullopt;
  c.digest = ContentDigest{*h, j.value("size", uint64_t{0})};
  c.kind = j.value("kind", "photo") == "model" ? ItemKind::kModel : ItemKind::kPhoto;
  c.salt_hex = j.value("salt", "");
  c.index = LoadBigEndian64(it->key().data() + prefix.size());
  return c;
}

uint64_t ItemStore::ForEachDatasetMemberEver(std::string_view dataset,
                                             const std::function<bool(const ItemKey&, uint64_t)>& fn) {
  uint64_t n = 0;
  std::string prefix = StrCat(keyspace::kMember, KeyString(DatasetKeyOf(dataset)));
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    const size_t rest = it->key().size() - prefix.size();  // item key, then (not in older stores) the index
    if ((rest != 32 && rest != 40) || it->value().size() != 8) continue;
    ++n;
    if (!fn) continue;
    ItemKey k;
    std::memcpy(k.data(), it->key().data() + prefix.size(), 32);
    if (!fn(k, LoadBigEndian64(it->value().data()))) break;
  }
  return n;
}

ItemKey ItemStore::ItemKeyFor(const Sha256& hash) const {
  return KeyedHash("item", std::string_view(reinterpret_cast<const char*>(hash.data()), hash.size()));
}

void ItemStore::SetUploadExtras(Upload* upload, std::vector<std::pair<std::string, std::string>> extra,
                                std::string lineage_edges_json, std::vector<ItemKey> lineage_parents) {
  upload->extra_ = std::move(extra);
  upload->lineage_edges_ = std::move(lineage_edges_json);
  upload->lineage_parents_ = std::move(lineage_parents);
}

absl::StatusOr<StoredItem> ItemStore::LookupByKey(const ItemKey& key) {
  StoredItem item;
  item.item_key = key;
  std::string rec;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), ItemRecordKey(key), &rec);
  if (rs.IsNotFound()) return absl::NotFoundError("item is not stored");
  if (!rs.ok()) return FromRocks(rs, "reading an item record");
  auto info = DecodeInfo(key, rec, &item.slot, &item.object_id, &item.inline_content);
  if (!info.ok()) {
    if (IsSuppressed(key)) return absl::NotFoundError("item was shredded");  // after the record was read (see Lookup)
    return info.status();
  }
  item.info = std::move(*info);
  return item;
}

absl::Status ItemStore::UnreadableItem(const ItemKey& key, const absl::Status& error) {
  std::string what = StrCat("the item of key ", HexEncode(key));
  if (auto c = LatestCustody(key)) what = StrCat(KindName(c->kind), " ", c->digest.HashString());
  return absl::Status(error.code(), StrCat(what, " cannot be read: ", error.message()));
}

std::vector<absl::StatusOr<StoredItem>> ItemStore::LookupByKeys(std::span<const ItemKey> keys) {
  std::vector<absl::StatusOr<StoredItem>> out(keys.size(), absl::UnknownError("not read"));
  auto records = ReadRecords(keys);
  std::vector<RawItem> raws;
  std::vector<size_t> where;  // index in keys of raws[j]
  for (size_t i = 0; i < records.size(); ++i) {
    if (!records[i].ok()) {
      out[i] = records[i].status();
      continue;
    }
    raws.push_back(std::move(*records[i]));
    where.push_back(i);
  }
  auto opened = OpenRecords(raws);
  for (size_t j = 0; j < opened.size(); ++j) out[where[j]] = std::move(opened[j]);
  return out;
}

std::vector<absl::StatusOr<ItemStore::RawItem>> ItemStore::ReadRecords(std::span<const ItemKey> keys) {
  std::vector<absl::StatusOr<RawItem>> out(keys.size(), absl::UnknownError("not read"));
  if (keys.empty()) return out;
  // One MultiGet, in key order.
  std::vector<size_t> order(keys.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return keys[a] < keys[b]; });
  std::vector<std::string> rkeys(keys.size());
  std::vector<rocksdb::Slice> rslices(keys.size());
  for (size_t j = 0; j < order.size(); ++j) {
    rkeys[j] = ItemRecordKey(keys[order[j]]);
    rslices[j] = rkeys[j];
  }
  std::vector<rocksdb::PinnableSlice> recs(keys.size());
  std::vector<rocksdb::Status> rs(keys.size());
  db_->MultiGet(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), rslices.size(), rslices.data(), recs.data(),
                rs.data(), /*sorted_input=*/true);
  for (size_t j = 0; j < order.size(); ++j) {
    const size_t i = order[j];
    if (rs[j].IsNotFound()) {
      out[i] = absl::NotFoundError("item is not stored");
      continue;
    }
    if (!rs[j].ok()) {
      out[i] = FromRocks(rs[j], "reading an item record");
      continue;
    }
    auto header = DecodeItemRecord(recs[j].ToStringView());
    if (!header.ok()) {
      out[i] = header.status();
      continue;
    }
    out[i] = RawItem{header->slot, keys[i], recs[j].ToString()};
  }
  return out;
}

std::vector<absl::StatusOr<StoredItem>> ItemStore::OpenRecords(std::span<const RawItem> raws) {
  std::vector<absl::StatusOr<StoredItem>> out(raws.size(), absl::UnknownError("not read"));
  if (raws.empty()) return out;
  std::vector<uint64_t> slots(raws.size());
  for (size_t i = 0; i < raws.size(); ++i) slots[i] = raws[i].slot;
  SecretBytes deks(raws.size() * kKeySize);
  std::vector<absl::Status> dek_status = tree_->GetDeks(slots, {deks.data(), slots.size() * kKeySize});
  SecretBytes meta_key(kKeySize);
  for (size_t i = 0; i < raws.size(); ++i) {
    // Shredded between reading the record and its key: gone, not data loss
    // (as in LookupByKey).
    auto failed = [&](absl::Status s) -> absl::Status {
      return IsSuppressed(raws[i].key) ? absl::NotFoundError("item was shredded") : s;
    };
    if (!dek_status[i].ok()) {
      out[i] = failed(absl::IsNotFound(dek_status[i]) ? absl::DataLossError("the item's data key is missing")
                                                      : dek_status[i]);
      continue;
    }
    StoredItem item;
    item.item_key = raws[i].key;
    auto info = DecodeInfoWithDek(raws[i].key, raws[i].record, {deks.data() + kKeySize * i, kKeySize}, &meta_key,
                                  &item.slot, &item.object_id, &item.inline_content);
    if (!info.ok()) {
      out[i] = failed(info.status());
      continue;
    }
    item.info = std::move(*info);
    out[i] = std::move(item);
  }
  return out;
}

uint64_t ItemStore::CountIndexed(char type, std::string_view value) {
  uint64_t n = 0;
  (void)ForEachIndexed(type, value, [&](const ItemKey&) -> absl::StatusOr<bool> {
    ++n;
    return true;
  });
  return n;
}

absl::Status ItemStore::ForEachIndexed(char type, std::string_view value,
                                       const std::function<absl::StatusOr<bool>(const ItemKey&)>& fn) {
  const char* domain = type == keyspace::kIndexSubject   ? "subject"
                       : type == keyspace::kIndexDataset ? "dataset"
                                                         : "label";
  std::string prefix(keyspace::kIndex);
  prefix.push_back(type);
  prefix += KeyString(KeyedHash(domain, value));
  rocksdb::ReadOptions ro;
  std::string upper = prefix;
  upper.back() = static_cast<char>(static_cast<uint8_t>(upper.back()) + 1);  // keyed hash: never 0xff-only
  rocksdb::Slice upper_slice(upper);
  if (static_cast<uint8_t>(prefix.back()) != 0xff) ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string_view k = it->key().ToStringView().substr(prefix.size());
    if (k.size() != 32) continue;
    ItemKey key;
    std::memcpy(key.data(), k.data(), 32);
    auto more = fn(key);
    if (!more.ok()) return more.status();
    if (!*more) break;
  }
  return FromRocks(it->status(), "scanning a lookup index");
}

bool ItemStore::IsSuppressed(const ItemKey& key) {
  std::string by;
  return db_->Get(rocksdb::ReadOptions(), SuppressionKey(key), &by).ok();
}

std::string ItemStore::DatasetRecordKey(const ItemKey& dataset_key) {
  return StrCat(keyspace::kDataset, KeyString(dataset_key));
}
std::string ItemStore::DatasetAd(const ItemKey& dataset_key) { return "shredd/dataset/v1" + KeyString(dataset_key); }

bool ItemStore::DatasetExists(std::string_view name) {
  std::string v;
  return db_->Get(rocksdb::ReadOptions(), DatasetRecordKey(DatasetKeyOf(name)), &v).ok();
}

void ItemStore::AddNewDatasets(std::span<const std::string> names, rocksdb::WriteBatch* batch,
                               std::vector<std::string>* entries) {
  std::set<std::string_view> seen;
  for (const std::string& name : names) {
    if (!seen.insert(name).second || DatasetExists(name)) continue;
    const ItemKey k = DatasetKeyOf(name);
    nlohmann::json record{{"name", name}, {"created", absl::GetCurrentTimeNanos()}};
    batch->Put(DatasetRecordKey(k), SealSystem(record.dump(), DatasetAd(k)));
    entries->push_back(nlohmann::json{
        {"type", "dataset-registered"}, {"dataset", DatasetCommitment(name)}, {"time", FormatRfc3339(absl::Now())}}
                           .dump());
  }
}

void ItemStore::StageBlobDrop(std::string_view object_id, rocksdb::WriteBatch* batch) {
  BlobReaper::StageDrop(object_id, batch);
}

void ItemStore::BlobDropsCommitted(uint64_t n) { reaper_->Committed(n); }

}  // namespace shredd