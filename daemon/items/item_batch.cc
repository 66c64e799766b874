// ItemStore::PutBatch: many small items in one synced write, in the phases
// of BatchPut below.
//
// Everything that does not depend on an item's slot or log index (hashing,
// content and metadata sealing, index keys, the custody record and log
// entry) is done first, without any lock, so two concurrent batches overlap;
// the locked part is the existence check (one MultiGet), slot allocation,
// DEK wrapping and the log append. Entries larger than the inline threshold
// go through the stream path.
#include <sodium.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "absl/time/clock.h"

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

constexpr size_t kSaltSize = 32;

}  // namespace

class ItemStore::BatchPut {
 public:
  using Entries = std::span<const BatchEntry>;
  BatchPut(ItemStore* store, Entries entries);
  std::vector<absl::StatusOr<PutResult>> Run();

 private:
  // An entry sealed and ready to be written but for its slot and log index.
  struct Ready {
    size_t index;
    ItemKey key;
    std::string record_key, record, inline_key, inline_ct;
    std::vector<std::string> index_keys;
    std::vector<ItemKey> dataset_keys;  // for the membership records
    std::string custody_sealed, entry;
  };
  struct DatasetBits {
    ItemKey index_hash, record_key;
    std::string commitment;
  };

  KeyView DekOf(size_t i) const { return KeyView(deks_.data() + i * kKeySize, kKeySize); }
  // 1. Validation and the digest check; large entries go through the stream
  // path at once. Returns the entries left for the batch write.
  std::vector<size_t> Validate();
  // 2. Duplicates within the batch: the first occurrence is stored, the
  // others are merged into it afterwards (their kind and metadata count).
  // 3. Everything that needs no slot and no log index (Seal).
  void Prepare(const std::vector<size_t>& candidates);
  Ready Seal(size_t i);
  void AddDatasets(const ItemMetadata& metadata, Ready* r, std::vector<std::string_view>* commitments);
  // 4. Under the stripe locks and the key tree's write lease: suppression
  // and existence (one MultiGet: a shred epoch cannot commit between this
  // read and the write), slots, wrapped DEKs, records, in key order.
  void StageLocked(const KeyTree::WriteLease& lease);
  // One entry of StageLocked; true if it is to be written.
  bool Classify(size_t j, const rocksdb::Status& record_status, std::string_view record,
                const rocksdb::Status& suppression_status, std::string_view suppressed_by);
  bool Allocate(const KeyTree::WriteLease& lease, Ready& r);
  // 5. The custody entries, in one write with the records.
  absl::Status Write();
  std::vector<std::string> NewDatasetNames() const;
  absl::StatusOr<std::vector<std::string>> LogEntriesFrom(uint64_t first, const std::vector<std::string>& new_datasets);
  // The end: acknowledgements once durable, then the merges.
  void Acknowledge(absl::Status s);
  void MergeExisting();

  ItemStore* const store_;
  const Entries entries_;
  std::vector<absl::StatusOr<PutResult>> results_;
  std::vector<ItemKey> keys_;
  std::vector<Ready> ready_;
  std::vector<size_t> dup_merge_;  // entries merged after the write
  std::set<size_t> stripe_ids_;
  // Every DEK of the batch, and one scratch subkey, in secure memory: one
  // sodium_malloc per batch instead of three per item.
  SecretBytes deks_;
  SecretBytes subkey_;
  // Object ids and custody salts (neither is a key) of the whole batch in
  // one randombytes_buf call: one getrandom(2) per batch, not two per item.
  std::string random_bits_;
  ChunkSealer sealer_;
  std::map<std::string, DatasetBits, std::less<>> datasets_;
  const std::string now_;
  // Written in the locked phase.
  std::optional<rocksdb::WriteBatch> batch_;
  KeyTree::PendingNodes pending_;
  std::vector<Ready*> committed_;
  std::vector<std::pair<std::string_view, std::string_view>> puts_;
  bool seen_existing_ = false;  // acknowledged as present: found in the database
  uint64_t durable_at_ = 0;
};

ItemStore::BatchPut::BatchPut(ItemStore* store, Entries entries)
    : store_(store),
      entries_(entries),
      keys_(entries.size()),
      deks_(std::max<size_t>(1, entries.size()) * kKeySize),
      subkey_(kKeySize),
      random_bits_(entries.size() * (kObjectIdSize + kSaltSize), '\0'),
      now_(FormatRfc3339(absl::Now())) {
  results_.reserve(entries.size());
  randombytes_buf(deks_.data(), deks_.size());
  randombytes_buf(random_bits_.data(), random_bits_.size());
}

std::vector<absl::StatusOr<PutResult>> ItemStore::BatchPut::Run() {
  Prepare(Validate());
  if (ready_.empty()) {
    MergeExisting();
    return std::move(results_);
  }
  // The locks are released once the batch is written, before its WAL sync
  // (group commit, see TransparencyLog::Append), so the next batch's locked
  // work overlaps this one's fsync; nothing is acknowledged before the sync.
  std::vector<std::unique_lock<std::mutex>> locks;
  for (size_t s : stripe_ids_) locks.emplace_back(store_->stripes_[s]);
  std::optional<KeyTree::WriteLease> lease(store_->tree_->BeginWrite());
  StageLocked(*lease);
  absl::Status s = committed_.empty() ? absl::OkStatus() : Write();
  locks.clear();
  lease.reset();
  Acknowledge(std::move(s));
  MergeExisting();
  return std::move(results_);
}

std::vector<size_t> ItemStore::BatchPut::Validate() {
  std::vector<size_t> candidates;
  for (size_t i = 0; i < entries_.size(); ++i) {
    const BatchEntry& e = entries_[i];
    results_.emplace_back(absl::UnknownError("not processed"));
    if (auto s = e.metadata.Validate(); !s.ok()) {
      results_[i] = s;
      continue;
    }
    if (e.declared.size > store_->options_.max_item_size) {
      results_[i] = absl::InvalidArgumentError(StrCat(
          "declared size ", e.declared.size, " exceeds the maximum item size of ", store_->options_.max_item_size));
      continue;
    }
    ContentDigest actual{Sha256Hasher::Of(e.data), e.data.size()};
    if (actual != e.declared) {
      results_[i] = absl::InvalidArgumentError(StrCat(
          "content does not match the declared digest: declared ", e.declared.HashString(), " (", e.declared.size,
          " bytes), received ", actual.HashString(), " (", actual.size, " bytes); nothing was stored"));
      continue;
    }
    if (e.data.size() > store_->options_.inline_threshold) {
      auto up = store_->BeginUpload(e.declared, e.metadata);  // checks suppression itself
      if (!up.ok()) {
        results_[i] = up.status();
        continue;
      }
      auto s = (*up)->Append(e.data);
      results_[i] = s.ok() ? (*up)->Commit() : absl::StatusOr<PutResult>(s);
      continue;
    }
    keys_[i] = store_->ItemKeyFor(e.declared.hash);
    candidates.push_back(i);
  }
  return candidates;
}

void ItemStore::BatchPut::Prepare(const std::vector<size_t>& candidates) {
  ready_.reserve(candidates.size());
  std::set<ItemKey> seen;
  for (size_t i : candidates) {
    if (!seen.insert(keys_[i]).second) {
      dup_merge_.push_back(i);  // merged into the first occurrence once it is stored
      continue;
    }
    ready_.push_back(Seal(i));
    stripe_ids_.insert(keys_[i][0] % store_->stripes_.size());
  }
}

ItemStore::BatchPut::Ready ItemStore::BatchPut::Seal(size_t i) {
  const BatchEntry& e = entries_[i];
  Ready r;
  r.index = i;
  r.key = keys_[i];
  r.record_key = ItemRecordKey(r.key);
  const std::string_view object_id(random_bits_.data() + i * (kObjectIdSize + kSaltSize), kObjectIdSize);
  const auto* salt = reinterpret_cast<const uint8_t*>(object_id.data() + kObjectIdSize);
  r.inline_key = InlineKey(object_id);
  const KeyView dek = DekOf(i);
  DeriveSubkeyInto(dek, Subkey::kContent, subkey_.mutable_span());
  r.inline_ct.reserve(e.data.size() + kChunkTagSize);
  sealer_.Seal(subkey_, object_id, e.data.size(), 0, e.data, &r.inline_ct);
  DeriveSubkeyInto(dek, Subkey::kMetadata, subkey_.mutable_span());
  std::string meta = EncodeMetadata(e.declared, e.metadata);
  // The slot is set under the lease (SetItemRecordSlot in Allocate).
  const ItemRecordHeader header{
      e.metadata.kind,       false, store_->options_.chunk_size, 0, e.declared.size, absl::GetCurrentTimeNanos(),
      std::string(object_id)};
  r.record = EncodeItemRecord(header, SealWithKey(subkey_, meta, MetadataAd(r.key)));
  sodium_memzero(meta.data(), meta.size());
  for (const auto& s : e.metadata.subject_ids) {
    r.index_keys.push_back(IndexKey(keyspace::kIndexSubject, store_->KeyedHash("subject", s), r.key));
  }
  std::vector<std::string_view> commitments;
  AddDatasets(e.metadata, &r, &commitments);
  for (const auto& [k, v] : e.metadata.labels) r.index_keys.push_back(LabelIndexKey(*store_, k, v, r.key));
  const std::string salt_hex = HexEncode(std::span<const uint8_t>(salt, kSaltSize));
  r.custody_sealed = store_->SealSystem(CustodyRecordText(e.declared, e.metadata.kind, salt_hex), CustodyAd(r.key));
  r.entry = ItemStoredEntry(e.declared, e.metadata.kind, verify::CustodyCommitment(e.declared.HashString(), salt_hex),
                            commitments, now_);
  return r;
}

// Index keys, membership keys and commitments of an entry's datasets, each
// dataset's hashes computed once per batch.
void ItemStore::BatchPut::AddDatasets(const ItemMetadata& metadata, Ready* r,
                                      std::vector<std::string_view>* commitments) {
  for (const auto& d : metadata.datasets) {
    auto it = datasets_.find(d);
    if (it == datasets_.end()) {
      DatasetBits bits{store_->KeyedHash("dataset", d), store_->DatasetKeyOf(d), store_->DatasetCommitment(d)};
      it = datasets_.emplace(d, std::move(bits)).first;
    }
    r->index_keys.push_back(IndexKey(keyspace::kIndexDataset, it->second.index_hash, r->key));
    r->dataset_keys.push_back(it->second.record_key);
    commitments->push_back(it->second.commitment);
  }
}

void ItemStore::BatchPut::StageLocked(const KeyTree::WriteLease& lease) {
  const size_t n = ready_.size();
  std::vector<std::string> skeys;
  skeys.reserve(n);
  for (const Ready& r : ready_) skeys.push_back(SuppressionKey(r.key));
  std::vector<rocksdb::Slice> rkeys;
  rkeys.reserve(2 * n);
  for (const Ready& r : ready_) rkeys.emplace_back(r.record_key);
  for (const std::string& k : skeys) rkeys.emplace_back(k);
  std::vector<rocksdb::PinnableSlice> values(2 * n);
  std::vector<rocksdb::Status> statuses(2 * n);
  rocksdb::DB* db = store_->db_.get();
  db->MultiGet(rocksdb::ReadOptions(), db->DefaultColumnFamily(), rkeys.size(), rkeys.data(), values.data(),
               statuses.data());
  // Room for the whole batch up front (it grew by doubling: copies and page
  // faults of a ~2 MB buffer per request): content, records and log records
  // are about 1 KiB per item plus the content.
  size_t reserve = 0;
  for (const Ready& r : ready_) {
    reserve += r.inline_ct.size() + r.record.size() + r.custody_sealed.size() + 2 * r.entry.size() + 512;
  }
  batch_.emplace(reserve);
  for (size_t j = 0; j < n; ++j) {
    if (Classify(j, statuses[j], values[j].ToStringView(), statuses[n + j], values[n + j].ToStringView()) &&
        Allocate(lease, ready_[j])) {
      committed_.push_back(&ready_[j]);
    }
  }
}

bool ItemStore::BatchPut::Classify(size_t j, const rocksdb::Status& record_status, std::string_view record,
                                   const rocksdb::Status& suppression_status, std::string_view suppressed_by) {
  const Ready& r = ready_[j];
  const BatchEntry& e = entries_[r.index];
  if (suppression_status.ok()) {
    results_[r.index] = absl::FailedPreconditionError(
        StrCat(e.declared.HashString(), " was shredded (", suppressed_by,
               "); it cannot be stored again unless an admin lifts the suppression; nothing was stored"));
    return false;
  }
  if (!suppression_status.IsNotFound()) {
    results_[r.index] = FromRocks(suppression_status, "reading a suppression record");
    return false;
  }
  if (record_status.ok()) {
    auto header = DecodeItemRecord(record);
    if (header.ok() && header->kind == e.metadata.kind && HasNoSelectors(e.metadata)) {
      results_[r.index] = PutResult{e.declared, true};
      seen_existing_ = true;
    } else {
      dup_merge_.push_back(r.index);  // a kind conflict or metadata to merge: after this batch
    }
    return false;
  }
  if (!record_status.IsNotFound()) {
    results_[r.index] = FromRocks(record_status, "reading an item record");
    return false;
  }
  return true;
}

bool ItemStore::BatchPut::Allocate(const KeyTree::WriteLease& lease, Ready& r) {
  auto slot = store_->tree_->AllocateSlot();
  if (!slot.ok()) {
    results_[r.index] = slot.status();
    return false;
  }
  auto pending = store_->tree_->AddDek(lease, *slot, DekOf(r.index), &*batch_);
  if (!pending.ok()) {
    results_[r.index] = pending.status();
    return false;
  }
  pending_.node_ids.insert(pending_.node_ids.end(), pending->node_ids.begin(), pending->node_ids.end());
  SetItemRecordSlot(&r.record, *slot);
  puts_.emplace_back(r.record_key, r.record);
  puts_.emplace_back(r.inline_key, r.inline_ct);
  for (const auto& k : r.index_keys) puts_.emplace_back(k, std::string_view());
  return true;
}

absl::Status ItemStore::BatchPut::Write() {
  // Records go into the batch in key order: RocksDB inserts a batch into the
  // memtable's skip list one record after the other, remembering where the
  // last one went, so ascending keys cost far fewer comparisons (and cache
  // misses) than random ones. Memtable inserts were the largest single cost
  // of a batch commit (see docs/PERFORMANCE.md).
  std::sort(puts_.begin(), puts_.end());
  for (const auto& [k, v] : puts_) batch_->Put(k, v);
  const std::vector<std::string> new_datasets = NewDatasetNames();
  auto appended = store_->Commit(
      &*batch_, [&](uint64_t first) { return LogEntriesFrom(first, new_datasets); }, /*fresh_entries=*/true,
      &durable_at_);
  if (!appended.ok()) return appended.status();
  // Written: later batches build on it (and whatever syncs the WAL makes it
  // durable along with them), so the key tree may count its new nodes as
  // written.
  store_->tree_->Committed(pending_);
  store_->item_count_.fetch_add(static_cast<int64_t>(committed_.size()));
  return absl::OkStatus();
}

// Datasets named by the items written: those first named here are
// registered in the same write.
std::vector<std::string> ItemStore::BatchPut::NewDatasetNames() const {
  std::vector<std::string> names;
  for (const Ready* r : committed_) {
    for (const auto& d : entries_[r->index].metadata.datasets) names.push_back(d);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

absl::StatusOr<std::vector<std::string>> ItemStore::BatchPut::LogEntriesFrom(
    uint64_t first, const std::vector<std::string>& new_datasets) {
  std::vector<std::string> out;
  out.reserve(committed_.size() + new_datasets.size());
  store_->AddNewDatasets(new_datasets, &*batch_, &out);
  const uint64_t first_item = first + out.size();
  std::vector<std::pair<std::string, std::string>> custody;  // key order, as above
  for (size_t j = 0; j < committed_.size(); ++j) {
    Ready& r = *committed_[j];
    const std::string index = BigEndian64(first_item + j);
    custody.emplace_back(CustodyKeyPrefix(r.key) + index, std::move(r.custody_sealed));
    for (const auto& d : r.dataset_keys) custody.emplace_back(MemberKey(d, r.key, index), index);
    out.push_back(std::move(r.entry));
  }
  std::sort(custody.begin(), custody.end());
  for (const auto& [k, v] : custody) batch_->Put(k, v);
  return out;
}

void ItemStore::BatchPut::Acknowledge(absl::Status s) {
  if (s.ok() && !committed_.empty()) s = store_->WaitDurable(durable_at_);
  if (s.ok() && seen_existing_) s = store_->WaitForRecordsRead();
  for (const Ready* r : committed_) {
    results_[r->index] = s.ok() ? absl::StatusOr<PutResult>(PutResult{entries_[r->index].declared, false}) : s;
  }
  if (!s.ok() && seen_existing_) {
    for (auto& r : results_) {
      if (r.ok()) r = s;
    }
  }
}

void ItemStore::BatchPut::MergeExisting() {
  for (size_t i : dup_merge_) {
    results_[i] = store_->MergeIntoExisting(entries_[i].declared, entries_[i].metadata, {}, "");
  }
}

std::vector<absl::StatusOr<PutResult>> ItemStore::PutBatch(std::span<const BatchEntry> entries) {
  return BatchPut(this, entries).Run();
}

}  // namespace shredd
