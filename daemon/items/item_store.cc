#include "daemon/items/item_store.h"

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include <nlohmann/json.hpp>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>

#include "daemon/base/coding.h"
#include "daemon/base/fs_util.h"
#include "daemon/base/parallel.h"
#include "daemon/base/strings.h"
#include "daemon/crypto/aead.h"
#include "daemon/items/metadata_codec.h"
#include "daemon/log/transparency_log.h"
#include "daemon/storage/keyspace.h"
#include "daemon/storage/rocks_util.h"
#include "daemon/storage/space_guard.h"
#include "daemon/storage/storage_health.h"

namespace shredd {
namespace {

constexpr uint8_t kRecordVersion = 1;
constexpr size_t kRecordHeader = 1 + 1 + 1 + 1 + 4 + 8 + 8 + 8 + 16;
constexpr size_t kObjectIdSize = 16;

std::string KeyString(const ItemKey& k) { return std::string(reinterpret_cast<const char*>(k.data()), k.size()); }
std::string ItemRecordKey(const ItemKey& k) { return StrCat(keyspace::kItem, KeyString(k)); }
std::string SuppressionKey(const ItemKey& k) { return StrCat(keyspace::kSuppression, KeyString(k)); }
std::string InlineKey(std::string_view oid) { return StrCat(keyspace::kInline, oid); }
std::string ObjectKey(std::string_view oid) { return StrCat(keyspace::kObject, oid); }
std::string IndexKey(char type, const ItemKey& value_hash, const ItemKey& item) {
  std::string k(keyspace::kIndex);
  k.push_back(type);
  k += KeyString(value_hash);
  k += KeyString(item);
  return k;
}
std::string MetadataAd(const ItemKey& k) { return "shredd/meta/v1" + KeyString(k); }

std::string RandomObjectId() {
  std::string id(kObjectIdSize, '\0');
  randombytes_buf(id.data(), id.size());
  return id;
}

std::string MemberKey(const ItemKey& dataset, const ItemKey& item) {
  return StrCat(keyspace::kMember, KeyString(dataset), KeyString(item));
}
std::string CustodyKeyPrefix(const ItemKey& item) { return StrCat(keyspace::kCustody, KeyString(item)); }
std::string CustodyAd(const ItemKey& item) { return "shredd/custody/v1" + KeyString(item); }

// The sealed custody record of an item ("Y" records), as compact JSON with
// members in nlohmann's (sorted) order, byte-identical to what
// nlohmann::json{{"digest",..},{"size",..},{"kind",..},{"salt",..}}.dump()
// wrote before: every value is hex, decimal or a fixed word, so nothing needs
// escaping. Built by hand because it is on the bulk-ingest hot path.
std::string CustodyRecordText(const ContentDigest& digest, ItemKind kind, std::string_view salt_hex) {
  return StrCat("{\"digest\":\"", digest.HashString(), "\",\"kind\":\"", KindName(kind), "\",\"salt\":\"", salt_hex,
                "\",\"size\":", digest.size, "}");
}

// The "item-stored" log entry (docs/FORMATS.md), byte-identical to the
// nlohmann::json object (sorted members) written before.
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

uint64_t ChunkCount(uint64_t size, uint32_t chunk) { return size == 0 ? 1 : (size + chunk - 1) / chunk; }

// A re-upload that names no subject, dataset or label adds nothing to a
// stored item (the original file name is not merged: it selects nothing).
bool HasNoSelectors(const ItemMetadata& m) { return m.subject_ids.empty() && m.datasets.empty() && m.labels.empty(); }

}  // namespace

// ------------------------------------------------------------------ UploadPipeline

// The second half of a large upload: takes runs of plaintext (already hashed
// by the receiving thread) off a bounded queue, seals them chunk by chunk in
// place and appends ciphertext and tags to the blob. At most kQueueBytes of
// plaintext wait in memory, so an upload of any size runs in constant memory,
// and the receiving thread blocks (gRPC flow control then holds the client
// back) when the cipher or the disk is the slower side. Plaintext lives only
// in this memory: it is overwritten by its ciphertext, and what is still
// queued when an upload is abandoned is zeroed.
class UploadPipeline {
 public:
  static constexpr size_t kQueueBytes = 16 << 20;

  UploadPipeline(ChunkCipher* cipher, BlobWriter* blob, uint32_t chunk_size, uint64_t total)
      : cipher_(cipher), blob_(blob), chunk_size_(chunk_size), total_(total), thread_([this] { Run(); }) {}

  ~UploadPipeline() {
    {
      std::lock_guard l(mu_);
      abort_ = true;
    }
    ready_.notify_all();
    if (thread_.joinable()) thread_.join();
    for (auto& p : queue_) sodium_memzero(p.data(), p.size());
  }

  absl::Status Push(std::string data) {
    std::unique_lock l(mu_);
    space_.wait(l, [&] { return !error_.ok() || queued_ == 0 || queued_ + data.size() <= kQueueBytes; });
    if (!error_.ok()) {
      sodium_memzero(data.data(), data.size());
      return error_;
    }
    queued_ += data.size();
    queue_.push_back(std::move(data));
    l.unlock();
    ready_.notify_one();
    return absl::OkStatus();
  }

  // Waits until everything pushed is sealed and written.
  absl::Status Finish() {
    {
      std::lock_guard l(mu_);
      closed_ = true;
    }
    ready_.notify_one();
    if (thread_.joinable()) thread_.join();
    std::lock_guard l(mu_);
    return error_;
  }

 private:
  void Run() {
    for (;;) {
      std::string piece;
      {
        std::unique_lock l(mu_);
        auto ready = [&] { return abort_ || closed_ || !queue_.empty(); };
        if (!ready_.wait_for(l, std::chrono::milliseconds(50), ready)) {
          // The sender paused: write out what the blob holds buffered, so a
          // slow upload still reaches the disk as it goes.
          l.unlock();
          absl::Status s = blob_->Flush();
          l.lock();
          if (!s.ok()) {
            if (error_.ok()) error_ = s;
            space_.notify_one();
            return;
          }
          ready_.wait(l, ready);
        }
        if (abort_ || queue_.empty()) return;
        piece = std::move(queue_.front());
        queue_.pop_front();
      }
      absl::Status s = Process(piece);
      if (!s.ok()) sodium_memzero(piece.data(), piece.size());
      {
        std::lock_guard l(mu_);
        queued_ -= piece.size();
        if (!s.ok() && error_.ok()) error_ = s;
      }
      space_.notify_one();
      if (!s.ok()) return;
    }
  }

  absl::Status Process(std::string& piece) {
    parts_.clear();
    tags_.clear();
    tags_.reserve(piece.size() / chunk_size_ + 2);  // no reallocation: parts_ point into it
    char* p = piece.data();
    size_t left = piece.size();
    while (left > 0) {
      if (in_chunk_ == 0) cipher_->BeginSeal(index_);
      size_t take = std::min<uint64_t>({left, chunk_size_ - in_chunk_, total_ - done_});
      if (take == 0) return absl::InternalError("upload pipeline received more than the declared size");
      cipher_->SealInPlace(p, take);
      parts_.emplace_back(p, take);
      p += take;
      left -= take;
      in_chunk_ += take;
      done_ += take;
      if (in_chunk_ == chunk_size_ || done_ == total_) {
        tags_.emplace_back();
        cipher_->FinishSeal(tags_.back().data());
        parts_.emplace_back(reinterpret_cast<const char*>(tags_.back().data()), kChunkTagSize);
        ++index_;
        in_chunk_ = 0;
      }
    }
    return blob_->AppendParts(parts_);
  }

  ChunkCipher* const cipher_;
  BlobWriter* const blob_;
  const uint64_t chunk_size_, total_;
  uint64_t index_ = 0, in_chunk_ = 0, done_ = 0;  // worker only
  std::vector<std::string_view> parts_;
  std::vector<std::array<uint8_t, kChunkTagSize>> tags_;
  std::mutex mu_;
  std::condition_variable ready_, space_;
  std::deque<std::string> queue_;
  size_t queued_ = 0;
  bool closed_ = false, abort_ = false;
  absl::Status error_;
  std::thread thread_;  // last: starts once everything above is initialised
};

// ------------------------------------------------------------------ Upload

Upload::~Upload() { pipeline_.reset(); }

absl::Status Upload::Accept(std::string_view data) {
  if (done_) return absl::FailedPreconditionError("upload already finished");
  if (received_ + data.size() > declared_.size) {
    return absl::InvalidArgumentError(StrCat("received more than the declared size of ", declared_.size, " bytes"));
  }
  received_ += data.size();
  hasher_.Update(data);
  return absl::OkStatus();
}

absl::Status Upload::Append(std::string&& data) {
  if (!pipeline_) {
    absl::Status s = Append(std::string_view(data));
    sodium_memzero(data.data(), data.size());
    return s;
  }
  if (auto s = Accept(data); !s.ok()) return s;
  return pipeline_->Push(std::move(data));
}

absl::Status Upload::DeclareDigest(const ContentDigest& digest) {
  if (done_) return absl::FailedPreconditionError("upload already finished");
  if (digest.size != declared_.size) {
    return absl::InvalidArgumentError(StrCat("the digest declares ", digest.size, " bytes, the upload's header ",
                                             declared_.size, "; nothing was stored"));
  }
  if (digest_declared_) {
    if (digest.hash != declared_.hash) {
      return absl::InvalidArgumentError(StrCat("the trailing digest ", digest.HashString(),
                                               " differs from the header's ", declared_.HashString(),
                                               "; nothing was stored"));
    }
    return absl::OkStatus();
  }
  if (auto s = store_->CheckNotSuppressed(digest); !s.ok()) return s;
  declared_.hash = digest.hash;
  digest_declared_ = true;
  return absl::OkStatus();
}

absl::Status Upload::Append(std::string_view data) {
  if (pipeline_) return Append(std::string(data));
  if (auto s = Accept(data); !s.ok()) return s;
  const uint32_t cs = store_->options_.chunk_size;
  while (!data.empty()) {
    size_t take = std::min<size_t>(cs - pending_.size(), data.size());
    pending_.append(data.data(), take);
    data.remove_prefix(take);
    // A full chunk is sealed now unless it is the item's last one (Commit
    // seals that after checking the digest). It is not the last if bytes of
    // this message remain: without that test, a message that crosses a chunk
    // boundary and ends the upload looped forever.
    if (pending_.size() == cs && (!data.empty() || received_ < declared_.size)) {
      if (auto s = SealChunk(); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status Upload::SealChunk() {
  sealed_.clear();
  cipher_->Seal(chunk_index_++, pending_, &sealed_);
  sodium_memzero(pending_.data(), pending_.size());
  pending_.clear();
  if (blob_) return blob_->Append(sealed_);
  inline_ciphertext_ += sealed_;
  return absl::OkStatus();
}

absl::StatusOr<PutResult> Upload::Commit() {
  if (done_) return absl::FailedPreconditionError("upload already finished");
  done_ = true;
  const bool pipelined = pipeline_ != nullptr;
  if (pipelined) {
    absl::Status s = pipeline_->Finish();
    pipeline_.reset();
    if (!s.ok()) return s;
  }
  if (!digest_declared_) {
    return absl::InvalidArgumentError("the upload ended without declaring its digest; nothing was stored");
  }
  ContentDigest actual{hasher_.Finish(), received_};
  if (actual != declared_) {
    return absl::InvalidArgumentError(StrCat("content does not match the declared digest: declared ",
                                             declared_.HashString(), " (", declared_.size, " bytes), received ",
                                             actual.HashString(), " (", actual.size, " bytes); nothing was stored"));
  }
  // The last (possibly empty) chunk; a pipelined upload sealed it already.
  if (!pipelined) {
    if (auto s = SealChunk(); !s.ok()) return s;
  }
  return store_->CommitItem(declared_, metadata_, dek_, object_id_, std::move(inline_ciphertext_), blob_.get(), extra_,
                            lineage_edges_, lineage_parents_);
}

// ------------------------------------------------------------------ ItemReader

ItemReader::~ItemReader() = default;

absl::Status ItemReader::Read(uint64_t offset, uint64_t limit, const std::function<bool(std::string_view)>& sink) {
  return ReadOwned(offset, limit, [&](std::string&& plain) {
    bool more = sink(plain);
    sodium_memzero(plain.data(), plain.size());
    return more;
  });
}

absl::Status ItemReader::ReadOwned(uint64_t offset, uint64_t limit, const std::function<bool(std::string&&)>& sink) {
  if (offset > size_) {
    return absl::OutOfRangeError(StrCat("offset ", offset, " is beyond the item's size of ", size_));
  }
  uint64_t end = (limit == 0 || limit > size_ - offset) ? size_ : offset + limit;
  if (offset == end && size_ != 0) return absl::OkStatus();
  const uint64_t chunks = ChunkCount(size_, chunk_size_);
  const uint64_t stride = uint64_t{chunk_size_} + kChunkTagSize;
  uint64_t first = offset / chunk_size_;
  for (uint64_t c = first; c < chunks; ++c) {
    uint64_t c_begin = c * chunk_size_;
    if (c_begin >= end && !(size_ == 0 && c == 0)) break;
    uint64_t c_len = std::min<uint64_t>(chunk_size_, size_ - c_begin);
    std::string buf;
    if (blob_) {
      if (auto s = blob_->ReadAt(c * stride, c_len + kChunkTagSize, &buf); !s.ok()) return s;
    } else {
      if (inline_ciphertext_.size() < c * stride + c_len + kChunkTagSize) {
        return absl::DataLossError("stored ciphertext is truncated");
      }
      buf.assign(inline_ciphertext_, c * stride, c_len + kChunkTagSize);
    }
    // Authenticated before a byte is handed out: on failure the buffer is
    // zeroed and nothing reaches the sink.
    if (auto s = cipher_->OpenInPlace(c, buf.data(), buf.size()); !s.ok()) return s;
    buf.resize(c_len);
    uint64_t from = std::max(offset, c_begin) - c_begin;
    uint64_t to = std::min(end, c_begin + c_len) - c_begin;
    if (from != 0 || to != c_len) {
      std::string part(buf, from, to - from);
      sodium_memzero(buf.data(), buf.size());
      buf = std::move(part);
    }
    if (!sink(std::move(buf))) break;
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------------ ItemStore

ItemStore::~ItemStore() {
  tree_.reset();
  if (db_) (void)db_->Close();
}

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
  auto tree = KeyTree::Open(raw, vault);
  if (!tree.ok()) return tree.status();
  store->tree_ = std::move(*tree);
  auto system_key = store->tree_->GetDek(KeyTree::kSystemSlot);
  if (!system_key.ok()) {
    return absl::DataLossError(StrCat("cannot unwrap the system key: ", system_key.status().message()));
  }
  store->index_key_ = DeriveSubkey(*system_key, Subkey::kIndex);
  store->system_metadata_key_ = DeriveSubkey(*system_key, Subkey::kMetadata);
  auto blobs = OpenFileBlobBackend(options.data_dir);
  if (!blobs.ok()) return blobs.status();
  store->blobs_ = std::move(*blobs);
  rocksdb::DB* db = raw;
  auto gc = store->blobs_->CollectGarbage([db](std::string_view name) {
    auto oid = HexDecode(name);
    if (name.size() != 2 * kObjectIdSize || !oid) return false;
    std::string v;
    return db->Get(rocksdb::ReadOptions(), ObjectKey(*oid), &v).ok();
  });
  if (!gc.ok()) return gc;
  return store;
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

namespace {
ItemKey ItemKeyOf(const ItemStore& s, const Sha256& hash) {
  return s.KeyedHash("item", std::string_view(reinterpret_cast<const char*>(hash.data()), hash.size()));
}
}  // namespace

std::string ItemStore::SealSystem(std::string_view plaintext, std::string_view ad) const {
  return SealWithKey(system_metadata_key_, plaintext, ad);
}

absl::StatusOr<std::string> ItemStore::OpenSystem(std::string_view sealed, std::string_view ad) const {
  return OpenData(system_metadata_key_, sealed, ad);
}

std::optional<std::string> ItemStore::SuppressedBy(const Sha256& hash) {
  std::string v;
  if (db_->Get(rocksdb::ReadOptions(), SuppressionKey(ItemKeyOf(*this, hash)), &v).ok()) return v;
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

absl::StatusOr<std::unique_ptr<Upload>> ItemStore::BeginUpload(const ContentDigest& declared, ItemMetadata metadata) {
  if (auto s = CheckUploadable(declared, metadata); !s.ok()) return s;
  return StartUpload(declared, std::move(metadata));
}

absl::StatusOr<std::unique_ptr<Upload>> ItemStore::BeginUploadOfSize(uint64_t size, ItemMetadata metadata) {
  if (auto s = metadata.Validate(); !s.ok()) return s;
  if (size > options_.max_item_size) {
    return absl::InvalidArgumentError(
        StrCat("declared size ", size, " exceeds the maximum item size of ", options_.max_item_size));
  }
  auto up = StartUpload(ContentDigest{Sha256{}, size}, std::move(metadata));
  if (up.ok()) (*up)->digest_declared_ = false;
  return up;
}

absl::StatusOr<std::unique_ptr<Upload>> ItemStore::StartUpload(const ContentDigest& declared, ItemMetadata metadata) {
  // Refused before any ciphertext is written (the commit checks again).
  if (auto s = CheckFreeSpace(); !s.ok()) return s;
  std::unique_ptr<Upload> up(new Upload());
  up->store_ = this;
  up->declared_ = declared;
  up->metadata_ = std::move(metadata);
  up->dek_ = SecretBytes::Random(kKeySize);
  up->object_id_ = RandomObjectId();
  SecretBytes content_key = DeriveSubkey(up->dek_, Subkey::kContent);
  up->cipher_ = std::make_unique<ChunkCipher>(content_key, up->object_id_, declared.size);
  if (declared.size > options_.inline_threshold) {
    auto w = blobs_->Create(HexEncode(up->object_id_));
    if (!w.ok()) return w.status();
    up->blob_ = std::move(*w);
    up->pipeline_ =
        std::make_unique<UploadPipeline>(up->cipher_.get(), up->blob_.get(), options_.chunk_size, declared.size);
  } else {
    up->pending_.reserve(std::min<uint64_t>(declared.size, options_.chunk_size));
  }
  return up;
}

absl::StatusOr<PutResult> ItemStore::CommitItem(const ContentDigest& digest, const ItemMetadata& metadata,
                                                const SecretBytes& dek, const std::string& object_id,
                                                std::string inline_ciphertext, BlobWriter* blob,
                                                const std::vector<std::pair<std::string, std::string>>& extra,
                                                const std::string& lineage_edges,
                                                std::span<const ItemKey> lineage_parents) {
  ItemKey key = ItemKeyOf(*this, digest.hash);
  CommitLocks locks;
  if (auto s = LockForCommit(key, digest, lineage_parents, &locks); !s.ok()) return s;
  if (locks.record) {  // the writer's destructor removes the temp file
    return MergeAndAcknowledge(locks, key, digest, metadata, extra, lineage_edges);
  }
  const KeyTree::WriteLease& lease = *locks.lease;
  if (blob != nullptr) {
    if (auto s = blob->Publish(); !s.ok()) return s;
  }
  auto slot = tree_->AllocateSlot();
  if (!slot.ok()) return slot.status();
  rocksdb::WriteBatch batch;
  auto pending = tree_->AddDek(lease, *slot, dek, &batch);
  if (!pending.ok()) return pending.status();

  std::string rec(kRecordHeader, '\0');
  rec[0] = static_cast<char>(kRecordVersion);
  rec[1] = static_cast<char>(metadata.kind);
  rec[2] = blob ? 1 : 0;
  StoreBigEndian32(rec.data() + 4, options_.chunk_size);
  StoreBigEndian64(rec.data() + 8, *slot);
  StoreBigEndian64(rec.data() + 16, digest.size);
  StoreBigEndian64(rec.data() + 24, static_cast<uint64_t>(absl::GetCurrentTimeNanos()));
  std::memcpy(rec.data() + 32, object_id.data(), kObjectIdSize);
  SecretBytes meta_key = DeriveSubkey(dek, Subkey::kMetadata);
  std::string meta = EncodeMetadata(digest, metadata);
  rec += SealWithKey(meta_key, meta, MetadataAd(key));
  sodium_memzero(meta.data(), meta.size());
  batch.Put(ItemRecordKey(key), rec);
  if (blob) {
    batch.Put(ObjectKey(object_id), KeyString(key));
  } else {
    batch.Put(InlineKey(object_id), inline_ciphertext);
  }
  for (const auto& s : metadata.subject_ids)
    batch.Put(IndexKey(keyspace::kIndexSubject, KeyedHash("subject", s), key), "");
  for (const auto& d : metadata.datasets)
    batch.Put(IndexKey(keyspace::kIndexDataset, KeyedHash("dataset", d), key), "");
  for (const auto& [k, v] : metadata.labels) {
    batch.Put(IndexKey(keyspace::kIndexLabel, KeyedHash("label", StrCat(k, "=", v)), key), "");
  }
  for (const auto& [k, v] : extra) batch.Put(k, v);
  auto committed = Commit(&batch, [&](uint64_t first) -> absl::StatusOr<std::vector<std::string>> {
    std::vector<std::string> entries;
    AddNewDatasets(metadata.datasets, &batch, &entries);
    std::string salt;
    const uint64_t index = first + entries.size();
    entries.push_back(CustodyEntry(digest, metadata, key, index, &batch, &salt));
    if (!lineage_edges.empty()) {
      entries.push_back(LineageEntry(digest, ItemCommitment(digest.HashString(), salt), lineage_edges));
    }
    return entries;
  });
  if (!committed.ok()) {
    if (blob) (void)blobs_->Delete(HexEncode(object_id));
    return committed.status();
  }
  tree_->Committed(*pending);
  item_count_.fetch_add(1);
  return PutResult{digest, false};
}

std::vector<absl::StatusOr<PutResult>> ItemStore::PutBatch(std::span<const BatchEntry> entries) {
  // Small items commit together in one synced write. Everything that does not
  // depend on the item's slot or log index (hashing, content and metadata
  // sealing, index keys, the custody record and log entry) is done first,
  // without any lock, so two concurrent batches overlap; the locked part is
  // the existence check (one MultiGet), slot allocation, DEK wrapping and the
  // log append. Entries larger than the inline threshold go through the
  // stream path.
  std::vector<absl::StatusOr<PutResult>> results;
  results.reserve(entries.size());
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
  std::vector<Ready> ready;
  ready.reserve(entries.size());
  // Every DEK of the batch, and one scratch subkey, in secure memory: one
  // sodium_malloc per batch instead of three per item.
  SecretBytes deks(std::max<size_t>(1, entries.size()) * kKeySize);
  randombytes_buf(deks.data(), deks.size());
  SecretBytes subkey(kKeySize);
  // Object ids and custody salts (neither is a key) of the whole batch in one
  // randombytes_buf call: one getrandom(2) per batch instead of two per item.
  constexpr size_t kSaltSize = 32;
  std::string random_bits(entries.size() * (kObjectIdSize + kSaltSize), '\0');
  randombytes_buf(random_bits.data(), random_bits.size());
  ChunkSealer sealer;
  std::map<std::string, DatasetBits, std::less<>> datasets;
  const std::string now = FormatRfc3339(absl::Now());
  std::set<size_t> stripe_ids;
  std::set<ItemKey> seen;
  auto dek_of = [&](size_t i) { return KeyView(deks.data() + i * kKeySize, kKeySize); };

  // 1. Validation, digest check, duplicates within the batch.
  std::vector<size_t> candidates;
  std::vector<ItemKey> keys(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const BatchEntry& e = entries[i];
    results.emplace_back(absl::UnknownError("not processed"));
    if (auto s = e.metadata.Validate(); !s.ok()) {
      results[i] = s;
      continue;
    }
    if (e.declared.size > options_.max_item_size) {
      results[i] = absl::InvalidArgumentError(
          StrCat("declared size ", e.declared.size, " exceeds the maximum item size of ", options_.max_item_size));
      continue;
    }
    ContentDigest actual{Sha256Hasher::Of(e.data), e.data.size()};
    if (actual != e.declared) {
      results[i] = absl::InvalidArgumentError(StrCat(
          "content does not match the declared digest: declared ", e.declared.HashString(), " (", e.declared.size,
          " bytes), received ", actual.HashString(), " (", actual.size, " bytes); nothing was stored"));
      continue;
    }
    if (e.data.size() > options_.inline_threshold) {
      auto up = BeginUpload(e.declared, e.metadata);  // checks suppression itself
      if (!up.ok()) {
        results[i] = up.status();
        continue;
      }
      auto s = (*up)->Append(e.data);
      results[i] = s.ok() ? (*up)->Commit() : absl::StatusOr<PutResult>(s);
      continue;
    }
    keys[i] = ItemKeyOf(*this, e.declared.hash);
    candidates.push_back(i);
  }
  // 2. Duplicates within the batch: the first occurrence is stored, the
  // others are merged into it afterwards (their kind and metadata count).
  std::vector<size_t> dup_merge;
  {
    for (size_t i : candidates) {
      const BatchEntry& e = entries[i];
      if (!seen.insert(keys[i]).second) {
        dup_merge.push_back(i);  // merged into the first occurrence once it is stored
        continue;
      }
      // 3. Everything that needs no slot and no log index.
      Ready r;
      r.index = i;
      r.key = keys[i];
      r.record_key = ItemRecordKey(r.key);
      const std::string_view object_id(random_bits.data() + i * (kObjectIdSize + kSaltSize), kObjectIdSize);
      const auto* salt = reinterpret_cast<const uint8_t*>(object_id.data() + kObjectIdSize);
      r.inline_key = InlineKey(object_id);
      KeyView dek = dek_of(i);
      DeriveSubkeyInto(dek, Subkey::kContent, subkey.mutable_span());
      r.inline_ct.reserve(e.data.size() + kChunkTagSize);
      sealer.Seal(subkey, object_id, e.data.size(), 0, e.data, &r.inline_ct);
      r.record.assign(kRecordHeader, '\0');
      r.record[0] = static_cast<char>(kRecordVersion);
      r.record[1] = static_cast<char>(e.metadata.kind);
      r.record[2] = 0;
      StoreBigEndian32(r.record.data() + 4, options_.chunk_size);
      StoreBigEndian64(r.record.data() + 16, e.declared.size);
      StoreBigEndian64(r.record.data() + 24, static_cast<uint64_t>(absl::GetCurrentTimeNanos()));
      std::memcpy(r.record.data() + 32, object_id.data(), kObjectIdSize);
      DeriveSubkeyInto(dek, Subkey::kMetadata, subkey.mutable_span());
      std::string meta = EncodeMetadata(e.declared, e.metadata);
      r.record += SealWithKey(subkey, meta, MetadataAd(r.key));
      sodium_memzero(meta.data(), meta.size());
      for (const auto& s : e.metadata.subject_ids)
        r.index_keys.push_back(IndexKey(keyspace::kIndexSubject, KeyedHash("subject", s), r.key));
      std::vector<std::string_view> commitments;
      for (const auto& d : e.metadata.datasets) {
        auto it = datasets.find(d);
        if (it == datasets.end()) {
          it = datasets.emplace(d, DatasetBits{KeyedHash("dataset", d), DatasetKeyOf(d), DatasetCommitment(d)}).first;
        }
        r.index_keys.push_back(IndexKey(keyspace::kIndexDataset, it->second.index_hash, r.key));
        r.dataset_keys.push_back(it->second.record_key);
        commitments.push_back(it->second.commitment);
      }
      for (const auto& [k, v] : e.metadata.labels) {
        r.index_keys.push_back(IndexKey(keyspace::kIndexLabel, KeyedHash("label", StrCat(k, "=", v)), r.key));
      }
      const std::string salt_hex = HexEncode(std::span<const uint8_t>(salt, kSaltSize));
      r.custody_sealed = SealSystem(CustodyRecordText(e.declared, e.metadata.kind, salt_hex), CustodyAd(r.key));
      r.entry = ItemStoredEntry(e.declared, e.metadata.kind, ItemCommitment(e.declared.HashString(), salt_hex),
                                commitments, now);
      stripe_ids.insert(r.key[0] % stripes_.size());
      ready.push_back(std::move(r));
    }
  }
  if (ready.empty()) {
    for (size_t i : dup_merge) results[i] = MergeIntoExisting(entries[i].declared, entries[i].metadata, {}, "");
    return results;
  }

  // 4. Under the stripe locks and the key tree's write lease: existence
  // check, slots, wrapped DEKs, records, the write. The locks are released
  // once the batch is written, before its WAL sync (group commit, see
  // TransparencyLog::Append), so the next batch's locked work overlaps this
  // one's fsync; nothing is acknowledged before the sync.
  std::vector<std::unique_lock<std::mutex>> locks;
  for (size_t s : stripe_ids) locks.emplace_back(stripes_[s]);
  std::optional<KeyTree::WriteLease> lease(tree_->BeginWrite());
  bool seen_existing = false;  // acknowledged as present: found in the database
  // Suppression and existence are read here, under the locks, with one
  // MultiGet: a shred epoch cannot commit between this read and the write.
  const size_t n_ready = ready.size();
  std::vector<std::string> skeys;
  skeys.reserve(n_ready);
  for (const Ready& r : ready) skeys.push_back(SuppressionKey(r.key));
  std::vector<rocksdb::Slice> rkeys;
  rkeys.reserve(2 * n_ready);
  for (const Ready& r : ready) rkeys.emplace_back(r.record_key);
  for (const std::string& k : skeys) rkeys.emplace_back(k);
  std::vector<rocksdb::PinnableSlice> rvalues(2 * n_ready);
  std::vector<rocksdb::Status> rstatuses(2 * n_ready);
  db_->MultiGet(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), rkeys.size(), rkeys.data(), rvalues.data(),
                rstatuses.data());
  std::vector<size_t> to_merge;  // ready[] entries already stored whose metadata may add something
  // Room for the whole batch up front (it grew by doubling: copies and page
  // faults of a ~2 MB buffer per request): content, records and log records
  // are about 1 KiB per item plus the content.
  size_t reserve = 0;
  for (const Ready& r : ready)
    reserve += r.inline_ct.size() + r.record.size() + r.custody_sealed.size() + 2 * r.entry.size() + 512;
  rocksdb::WriteBatch batch(reserve);
  KeyTree::PendingNodes all_pending;
  std::vector<Ready*> committed;
  // Records go into the batch in key order: RocksDB inserts a batch into the
  // memtable's skip list one record after the other, remembering where the
  // last one went, so ascending keys cost far fewer comparisons (and cache
  // misses) than random ones. Memtable inserts were the largest single cost
  // of a batch commit (see docs/PERFORMANCE.md).
  std::vector<std::pair<std::string_view, std::string_view>> puts;
  for (size_t j = 0; j < ready.size(); ++j) {
    Ready& r = ready[j];
    const BatchEntry& e = entries[r.index];
    if (rstatuses[n_ready + j].ok()) {
      results[r.index] = absl::FailedPreconditionError(
          StrCat(e.declared.HashString(), " was shredded (", rvalues[n_ready + j].ToStringView(),
                 "); it cannot be stored again unless an admin lifts the suppression; nothing was stored"));
      continue;
    }
    if (!rstatuses[n_ready + j].IsNotFound()) {
      results[r.index] = FromRocks(rstatuses[n_ready + j], "reading a suppression record");
      continue;
    }
    if (rstatuses[j].ok()) {
      std::string_view rec = rvalues[j].ToStringView();
      if (rec.size() > 1 && static_cast<ItemKind>(rec[1]) == e.metadata.kind && HasNoSelectors(e.metadata)) {
        results[r.index] = PutResult{e.declared, true};
        seen_existing = true;
      } else {
        to_merge.push_back(j);  // a kind conflict or metadata to merge: after this batch
      }
      continue;
    }
    if (!rstatuses[j].IsNotFound()) {
      results[r.index] = FromRocks(rstatuses[j], "reading an item record");
      continue;
    }
    auto slot = tree_->AllocateSlot();
    if (!slot.ok()) {
      results[r.index] = slot.status();
      continue;
    }
    auto pending = tree_->AddDek(*lease, *slot, dek_of(r.index), &batch);
    if (!pending.ok()) {
      results[r.index] = pending.status();
      continue;
    }
    all_pending.node_ids.insert(all_pending.node_ids.end(), pending->node_ids.begin(), pending->node_ids.end());
    StoreBigEndian64(r.record.data() + 8, *slot);
    puts.emplace_back(r.record_key, r.record);
    puts.emplace_back(r.inline_key, r.inline_ct);
    for (const auto& k : r.index_keys) puts.emplace_back(k, std::string_view());
    committed.push_back(&r);
  }
  rvalues.clear();
  auto merge_existing = [&] {
    for (size_t j : to_merge) dup_merge.push_back(ready[j].index);
    for (size_t i : dup_merge) results[i] = MergeIntoExisting(entries[i].declared, entries[i].metadata, {}, "");
  };
  if (committed.empty()) {
    locks.clear();
    lease.reset();
    if (seen_existing) {
      if (auto s = WaitForRecordsRead(); !s.ok()) {
        for (auto& r : results) {
          if (r.ok()) r = s;
        }
      }
    }
    merge_existing();
    return results;
  }
  std::sort(puts.begin(), puts.end());
  for (const auto& [k, v] : puts) batch.Put(k, v);
  // Datasets first named by this batch are registered in the same write.
  std::vector<std::string> new_dataset_names;
  for (const Ready* r : committed) {
    for (const auto& d : entries[r->index].metadata.datasets) new_dataset_names.push_back(d);
  }
  std::sort(new_dataset_names.begin(), new_dataset_names.end());
  new_dataset_names.erase(std::unique(new_dataset_names.begin(), new_dataset_names.end()), new_dataset_names.end());
  // 5. The custody entries, in one write with the records.
  uint64_t durable_at = 0;
  auto appended = Commit(
      &batch,
      [&](uint64_t first) -> absl::StatusOr<std::vector<std::string>> {
        std::vector<std::string> out;
        out.reserve(committed.size() + new_dataset_names.size());
        AddNewDatasets(new_dataset_names, &batch, &out);
        const uint64_t first_item = first + out.size();
        std::vector<std::pair<std::string, std::string>> custody;  // key order, as above
        for (size_t j = 0; j < committed.size(); ++j) {
          Ready& r = *committed[j];
          const std::string index = BigEndian64(first_item + j);
          custody.emplace_back(CustodyKeyPrefix(r.key) + index, std::move(r.custody_sealed));
          for (const auto& d : r.dataset_keys) custody.emplace_back(MemberKey(d, r.key), index);
          out.push_back(std::move(r.entry));
        }
        std::sort(custody.begin(), custody.end());
        for (const auto& [k, v] : custody) batch.Put(k, v);
        return out;
      },
      /*fresh_entries=*/true, &durable_at);
  absl::Status s = appended.status();
  if (s.ok()) {
    // Written: later batches build on it (and whatever syncs the WAL makes
    // it durable along with them), so the key tree may count its new nodes
    // as written.
    tree_->Committed(all_pending);
    item_count_.fetch_add(static_cast<int64_t>(committed.size()));
  }
  locks.clear();
  lease.reset();
  if (s.ok()) s = WaitDurable(durable_at);
  if (s.ok() && seen_existing) s = WaitForRecordsRead();
  for (const Ready* r : committed) {
    results[r->index] = s.ok() ? absl::StatusOr<PutResult>(PutResult{entries[r->index].declared, false}) : s;
  }
  if (!s.ok() && seen_existing) {
    for (auto& r : results) {
      if (r.ok()) r = s;
    }
  }
  merge_existing();
  return results;
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
  if (rec.size() < kRecordHeader || static_cast<uint8_t>(rec[0]) != kRecordVersion) {
    return absl::DataLossError("item record is corrupt");
  }
  auto dek = tree_->GetDek(LoadBigEndian64(rec.data() + 8));
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
  if (rec.size() < kRecordHeader || static_cast<uint8_t>(rec[0]) != kRecordVersion) {
    return absl::DataLossError("item record is corrupt");
  }
  ItemInfo info;
  uint8_t kind = static_cast<uint8_t>(rec[1]);
  if (kind != 1 && kind != 2) return absl::DataLossError("item record has an unknown kind");
  info.metadata.kind = static_cast<ItemKind>(kind);
  *inline_content = rec[2] == 0;
  info.chunk_size = LoadBigEndian32(rec.data() + 4);
  *slot = LoadBigEndian64(rec.data() + 8);
  info.digest.size = LoadBigEndian64(rec.data() + 16);
  info.stored_unix_nanos = static_cast<int64_t>(LoadBigEndian64(rec.data() + 24));
  object_id->assign(rec.data() + 32, kObjectIdSize);
  if (info.chunk_size == 0) return absl::DataLossError("item record is corrupt (chunk size 0)");
  DeriveSubkeyInto(dek, Subkey::kMetadata, meta_key->mutable_span());
  auto meta = OpenData(*meta_key, rec.substr(kRecordHeader), MetadataAd(key));
  if (!meta.ok()) return absl::DataLossError("the item's metadata does not authenticate (altered on disk)");
  auto s = DecodeMetadata(*meta, &info.digest, &info.metadata);
  sodium_memzero(meta->data(), meta->size());
  if (!s.ok()) return s;
  return info;
}

bool ItemStore::Contains(const Sha256& hash) {
  std::string v;
  return db_->Get(rocksdb::ReadOptions(), ItemRecordKey(ItemKeyOf(*this, hash)), &v).ok();
}

absl::StatusOr<StoredItem> ItemStore::Lookup(const Sha256& hash) {
  StoredItem item;
  item.item_key = ItemKeyOf(*this, hash);
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
  auto item = Lookup(hash);
  if (!item.ok()) return item.status();
  auto dek = tree_->GetDek(item->slot);
  if (!dek.ok()) return dek.status();
  std::unique_ptr<ItemReader> r(new ItemReader());
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
  const auto& m = item.info.metadata;
  for (const auto& s : m.subject_ids)
    keys.push_back(IndexKey(keyspace::kIndexSubject, KeyedHash("subject", s), item.item_key));
  for (const auto& d : m.datasets)
    keys.push_back(IndexKey(keyspace::kIndexDataset, KeyedHash("dataset", d), item.item_key));
  for (const auto& [k, v] : m.labels) {
    keys.push_back(IndexKey(keyspace::kIndexLabel, KeyedHash("label", StrCat(k, "=", v)), item.item_key));
  }
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
  ItemKey key = ItemKeyOf(*this, hash);
  std::lock_guard stripe(StripeFor(key));
  std::string by;
  if (!db_->Get(rocksdb::ReadOptions(), SuppressionKey(key), &by).ok()) {
    return absl::NotFoundError(StrCat(ContentDigest{hash, 0}.HashString(), " is not suppressed"));
  }
  rocksdb::WriteBatch batch;
  batch.Delete(SuppressionKey(key));
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

std::string ItemStore::ItemCommitment(std::string_view digest, std::string_view salt_hex) {
  return HexEncode(Sha256Hasher::Of(StrCat("shredd-custody-v1 ", digest, " ", salt_hex)));
}

std::string ItemStore::DatasetSaltHex(std::string_view dataset) const {
  return HexEncode(KeyedHash("dataset-salt", dataset));
}

std::string ItemStore::DatasetCommitment(std::string_view dataset) const {
  return HexEncode(Sha256Hasher::Of(StrCat("shredd-dataset-v1 ", dataset, " ", DatasetSaltHex(dataset))));
}

ItemKey ItemStore::DatasetKeyOf(std::string_view dataset) const { return KeyedHash("dataset-record", dataset); }

// The "item-stored" entry of a new item; adds its custody record and its
// dataset memberships (both kept after a shred, for audits) to `batch`.
std::string ItemStore::CustodyEntry(const ContentDigest& digest, const ItemMetadata& metadata, const ItemKey& key,
                                    uint64_t index, rocksdb::WriteBatch* batch, std::string* salt_hex) {
  uint8_t salt[32];
  randombytes_buf(salt, sizeof salt);
  const std::string last_salt = HexEncode(salt);
  if (salt_hex != nullptr) *salt_hex = last_salt;
  batch->Put(CustodyKeyPrefix(key) + BigEndian64(index),
             SealSystem(CustodyRecordText(digest, metadata.kind, last_salt), CustodyAd(key)));
  std::vector<std::string> datasets;
  for (const auto& d : metadata.datasets) {
    datasets.push_back(DatasetCommitment(d));
    batch->Put(MemberKey(DatasetKeyOf(d), key), BigEndian64(index));
  }
  return ItemStoredEntry(digest, metadata.kind, ItemCommitment(digest.HashString(), last_salt),
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
  std::string prefix = CustodyKeyPrefix(key);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  it->SeekForPrev(prefix + std::string(8, '\xff'));
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

std::vector<std::pair<ItemKey, uint64_t>> ItemStore::DatasetMembersEver(std::string_view dataset) {
  std::vector<std::pair<ItemKey, uint64_t>> out;
  std::string prefix = StrCat(keyspace::kMember, KeyString(DatasetKeyOf(dataset)));
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (it->key().size() != prefix.size() + 32 || it->value().size() != 8) continue;
    ItemKey k;
    std::memcpy(k.data(), it->key().data() + prefix.size(), 32);
    out.emplace_back(k, LoadBigEndian64(it->value().data()));
  }
  return out;
}

ItemKey ItemStore::ItemKeyFor(const Sha256& hash) const { return ItemKeyOf(*this, hash); }

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

std::vector<absl::StatusOr<StoredItem>> ItemStore::LookupByKeys(std::span<const ItemKey> keys) {
  std::vector<absl::StatusOr<StoredItem>> out(keys.size(), absl::UnknownError("not read"));
  if (keys.empty()) return out;
  // Item records: one MultiGet, in key order.
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
  // Clear headers first; then the DEKs of the items found, in one batch.
  std::vector<size_t> found;  // indexes into order/recs
  std::vector<uint64_t> slots;
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
    std::string_view rec = recs[j].ToStringView();
    if (rec.size() < kRecordHeader || static_cast<uint8_t>(rec[0]) != kRecordVersion) {
      out[i] = absl::DataLossError("item record is corrupt");
      continue;
    }
    found.push_back(j);
    slots.push_back(LoadBigEndian64(rec.data() + 8));
  }
  SecretBytes deks(std::max<size_t>(1, slots.size()) * kKeySize);
  std::vector<absl::Status> dek_status = tree_->GetDeks(slots, {deks.data(), slots.size() * kKeySize});
  SecretBytes meta_key(kKeySize);
  for (size_t f = 0; f < found.size(); ++f) {
    const size_t j = found[f];
    const size_t i = order[j];
    if (!dek_status[f].ok()) {
      out[i] = absl::IsNotFound(dek_status[f]) ? absl::DataLossError("the item's data key is missing") : dek_status[f];
      continue;
    }
    StoredItem item;
    item.item_key = keys[i];
    auto info = DecodeInfoWithDek(keys[i], recs[j].ToStringView(), {deks.data() + kKeySize * f, kKeySize}, &meta_key,
                                  &item.slot, &item.object_id, &item.inline_content);
    if (!info.ok()) {
      out[i] = info.status();
      continue;
    }
    item.info = std::move(*info);
    out[i] = std::move(item);
  }
  return out;
}

std::vector<ItemKey> ItemStore::ItemsIndexedBy(char type, std::string_view value) {
  std::vector<ItemKey> out;
  (void)ForEachIndexed(type, value, [&](const ItemKey& k) -> absl::StatusOr<bool> {
    out.push_back(k);
    return true;
  });
  return out;
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

absl::StatusOr<ItemInfo> ItemStore::AddMetadata(const Sha256& hash, const ItemMetadata& add,
                                                const std::vector<std::pair<std::string, std::string>>& extra) {
  if (auto s = add.Validate(); !s.ok()) return s;
  ItemKey key = ItemKeyOf(*this, hash);
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

bool ItemStore::IsSuppressed(const ItemKey& key) {
  std::string by;
  return db_->Get(rocksdb::ReadOptions(), SuppressionKey(key), &by).ok();
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
}  // namespace

absl::StatusOr<ItemInfo> ItemStore::MergeLocked(const KeyTree::WriteLease& lease, const ItemKey& key,
                                                const Sha256& hash, std::string rec, const ItemMetadata& add,
                                                std::optional<ItemKind> kind,
                                                const std::vector<std::pair<std::string, std::string>>& extra,
                                                const std::string& lineage_edges) {
  if (rec.size() < kRecordHeader || static_cast<uint8_t>(rec[0]) != kRecordVersion) {
    return absl::DataLossError("item record is corrupt");
  }
  const auto stored_kind = static_cast<ItemKind>(rec[1]);
  if (kind && *kind != stored_kind) {
    return absl::FailedPreconditionError(
        StrCat(ContentDigest{hash, 0}.HashString(), " is already stored as a ", KindName(stored_kind),
               "; the kind of stored content is fixed when it is first stored, so it cannot be stored as a ",
               KindName(*kind), "; nothing was stored"));
  }
  uint64_t slot = LoadBigEndian64(rec.data() + 8);
  // The lease is held; GetDekLocked does not take the epoch lock again.
  auto dek = tree_->GetDekLocked(lease, slot);
  if (!dek.ok()) return dek.status();
  SecretBytes meta_key = DeriveSubkey(*dek, Subkey::kMetadata);
  auto meta = OpenData(meta_key, std::string_view(rec).substr(kRecordHeader), MetadataAd(key));
  if (!meta.ok()) return absl::DataLossError("the item's metadata does not authenticate (altered on disk)");
  ItemInfo info;
  absl::Status decoded = DecodeMetadata(*meta, &info.digest, &info.metadata);
  sodium_memzero(meta->data(), meta->size());
  if (!decoded.ok()) return decoded;
  info.digest.size = LoadBigEndian64(rec.data() + 16);
  info.metadata.kind = stored_kind;
  info.chunk_size = LoadBigEndian32(rec.data() + 4);
  info.stored_unix_nanos = static_cast<int64_t>(LoadBigEndian64(rec.data() + 24));
  if (Covers(info.metadata, add) && extra.empty()) return info;  // nothing to write
  rocksdb::WriteBatch batch;
  auto merge = [](std::vector<std::string>& into, const std::vector<std::string>& more) {
    std::vector<std::string> added;
    for (const auto& v : more) {
      if (std::find(into.begin(), into.end(), v) == into.end()) {
        into.push_back(v);
        added.push_back(v);
      }
    }
    return added;
  };
  for (const auto& s : merge(info.metadata.subject_ids, add.subject_ids)) {
    batch.Put(IndexKey(keyspace::kIndexSubject, KeyedHash("subject", s), key), "");
  }
  std::vector<std::string> new_datasets = merge(info.metadata.datasets, add.datasets);
  for (const auto& d : new_datasets) batch.Put(IndexKey(keyspace::kIndexDataset, KeyedHash("dataset", d), key), "");
  for (const auto& [k, v] : add.labels) {
    auto old = info.metadata.labels.find(k);
    if (old != info.metadata.labels.end()) {
      batch.Delete(IndexKey(keyspace::kIndexLabel, KeyedHash("label", StrCat(k, "=", old->second)), key));
    }
    info.metadata.labels[k] = v;
    batch.Put(IndexKey(keyspace::kIndexLabel, KeyedHash("label", StrCat(k, "=", v)), key), "");
  }
  if (auto s = info.metadata.Validate(); !s.ok()) return s;
  std::string plain = EncodeMetadata(info.digest, info.metadata);
  rec.resize(kRecordHeader);
  rec += SealWithKey(meta_key, plain, MetadataAd(key));
  sodium_memzero(plain.data(), plain.size());
  batch.Put(ItemRecordKey(key), rec);
  for (const auto& [k, v] : extra) batch.Put(k, v);
  auto custody = LatestCustody(key);
  const std::string item_commitment = custody ? ItemCommitment(info.digest.HashString(), custody->salt_hex) : "";
  auto committed = Commit(&batch, [&](uint64_t first) -> absl::StatusOr<std::vector<std::string>> {
    std::vector<std::string> out;
    AddNewDatasets(new_datasets, &batch, &out);
    for (const auto& d : new_datasets) {
      batch.Put(MemberKey(DatasetKeyOf(d), key), BigEndian64(first + out.size()));
      out.push_back(nlohmann::json{{"type", "dataset-member"},
                                   {"dataset", DatasetCommitment(d)},
                                   {"item", item_commitment},
                                   {"time", FormatRfc3339(absl::Now())}}
                        .dump());
    }
    if (!lineage_edges.empty()) out.push_back(LineageEntry(info.digest, item_commitment, lineage_edges));
    return out;
  });
  if (!committed.ok()) return committed.status();
  return info;
}

absl::StatusOr<PutResult> ItemStore::MergeIntoExisting(const ContentDigest& digest, const ItemMetadata& metadata,
                                                       const std::vector<std::pair<std::string, std::string>>& extra,
                                                       const std::string& lineage_edges,
                                                       std::span<const ItemKey> lineage_parents) {
  ItemKey key = ItemKeyOf(*this, digest.hash);
  CommitLocks locks;
  if (auto s = LockForCommit(key, digest, lineage_parents, &locks); !s.ok()) return s;
  if (!locks.record) {  // not reachable: only a shred deletes an item record, and it suppresses
    return absl::NotFoundError(StrCat(digest.HashString(), " is not stored"));
  }
  return MergeAndAcknowledge(locks, key, digest, metadata, extra, lineage_edges);
}

absl::Status ItemStore::LockForCommit(const ItemKey& key, const ContentDigest& digest, std::span<const ItemKey> parents,
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

void ItemStore::DropBlob(const StoredItem& item) {
  if (!item.inline_content) DropBlobObject(item.object_id);
}

void ItemStore::DropBlobObject(std::string_view object_id) { (void)blobs_->Delete(HexEncode(object_id)); }

}  // namespace shredd
