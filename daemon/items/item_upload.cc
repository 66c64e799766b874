// The streaming upload path of the item store: Upload (hash, seal, write
// chunk by chunk; large items through the UploadPipeline) and its commit,
// and ItemReader (authenticated ranged reads).
#include <sodium.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/time/clock.h"

#include "daemon/base/coding.h"
#include "daemon/base/strings.h"
#include "daemon/crypto/aead.h"
#include "daemon/items/item_record.h"
#include "daemon/items/item_store.h"
#include "daemon/items/item_store_internal.h"
#include "daemon/items/metadata_codec.h"
#include "daemon/storage/space_guard.h"
#include "formats/commitment.h"

namespace shredd {

using namespace items_internal;  // NOLINT(google-build-using-namespace): the layer's own helpers

namespace {

uint64_t ChunkCount(uint64_t size, uint32_t chunk) { return size == 0 ? 1 : (size + chunk - 1) / chunk; }
// The stored ciphertext of `size` bytes of content: every chunk with its tag.
uint64_t CiphertextSize(uint64_t size, uint32_t chunk) { return size + ChunkCount(size, chunk) * kChunkTagSize; }

}  // namespace

// ------------------------------------------------------------------ UploadPipeline

// The second half of a large upload: takes runs of plaintext (already hashed
// by the receiving thread) off a bounded queue, seals them chunk by chunk
// straight into the blob's write buffer (BlobWriter::Reserve) and appends the
// tags. At most kQueueBytes of plaintext wait in memory, so an upload of any
// size runs in constant memory, and the receiving thread blocks (gRPC flow
// control then holds the client back) when the cipher or the disk is the
// slower side. A run's bytes belong to its owner (gRPC's receive buffers),
// released once sealed or when the upload is abandoned.
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
  }

  absl::Status Push(UploadRun run) {
    size_t size = 0;
    for (std::string_view p : run.parts) size += p.size();
    std::unique_lock l(mu_);
    space_.wait(l, [&] { return !error_.ok() || queued_ == 0 || queued_ + size <= kQueueBytes; });
    if (!error_.ok()) return error_;
    queued_ += size;
    queue_.push_back({std::move(run), size});
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
  struct Queued {
    UploadRun run;
    size_t size = 0;
  };

  void Run() {
    for (;;) {
      Queued piece;
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
      absl::Status s = Process(piece.run.parts);
      piece.run.owner.reset();
      {
        std::lock_guard l(mu_);
        queued_ -= piece.size;
        if (!s.ok() && error_.ok()) error_ = s;
      }
      space_.notify_one();
      if (!s.ok()) return;
    }
  }

  absl::Status Process(std::span<const std::string_view> parts) {
    for (std::string_view part : parts) {
      while (!part.empty()) {
        if (in_chunk_ == 0) cipher_->BeginSeal(index_);
        size_t take = std::min<uint64_t>({part.size(), chunk_size_ - in_chunk_, total_ - done_});
        if (take == 0) return absl::InternalError("upload pipeline received more than the declared size");
        if (auto s = SealInto(part.substr(0, take)); !s.ok()) return s;
        part.remove_prefix(take);
        in_chunk_ += take;
        done_ += take;
        if (in_chunk_ == chunk_size_ || done_ == total_) {
          std::array<uint8_t, kChunkTagSize> tag{};
          cipher_->FinishSeal(tag.data());
          if (auto s = blob_->Append(std::string_view(reinterpret_cast<const char*>(tag.data()), tag.size()));
              !s.ok()) {
            return s;
          }
          ++index_;
          in_chunk_ = 0;
        }
      }
    }
    return absl::OkStatus();
  }

  // Seals `plain` (part of the current chunk) into the blob's buffer.
  absl::Status SealInto(std::string_view plain) {
    while (!plain.empty()) {
      std::span<char> room = blob_->Reserve(plain.size());
      cipher_->SealTo(plain.data(), room.data(), room.size());
      if (auto s = blob_->CommitReserved(room.size()); !s.ok()) return s;
      plain.remove_prefix(room.size());
    }
    return absl::OkStatus();
  }

  ChunkCipher* const cipher_;
  BlobWriter* const blob_;
  const uint64_t chunk_size_, total_;
  uint64_t index_ = 0, in_chunk_ = 0, done_ = 0;  // worker only
  std::mutex mu_;
  std::condition_variable ready_, space_;
  std::deque<Queued> queue_;
  size_t queued_ = 0;
  bool closed_ = false, abort_ = false;
  absl::Status error_;
  std::thread thread_;  // last: starts once everything above is initialised
};

// ------------------------------------------------------------------ Upload

Upload::~Upload() { pipeline_.reset(); }

absl::Status Upload::Accept(std::string_view data) {
  if (done_ || received_hash_) return absl::FailedPreconditionError("upload already finished");
  if (received_ + data.size() > declared_.size) {
    return absl::InvalidArgumentError(StrCat("received more than the declared size of ", declared_.size, " bytes"));
  }
  received_ += data.size();
  hasher_.Update(data);
  return absl::OkStatus();
}

absl::Status Upload::AppendRun(UploadRun run) {
  if (!pipeline_) {
    for (std::string_view p : run.parts) {
      if (auto s = Append(p); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  for (std::string_view p : run.parts) {
    if (auto s = Accept(p); !s.ok()) return s;
  }
  return pipeline_->Push(std::move(run));
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

absl::Status Upload::DeclareReceivedDigest() {
  if (done_ || received_hash_) return absl::FailedPreconditionError("upload already finished");
  if (digest_declared_) return absl::InvalidArgumentError("the upload already declared its digest");
  if (received_ != declared_.size) {
    return absl::InvalidArgumentError(StrCat("received ", received_, " bytes, the upload's header declared ",
                                             declared_.size, "; nothing was stored"));
  }
  received_hash_ = hasher_.Finish();
  return DeclareDigest(ContentDigest{*received_hash_, received_});
}

absl::Status Upload::Append(std::string_view data) {
  if (pipeline_) {  // a copy the pipeline owns, wiped when it is done with it
    std::shared_ptr<std::string> copy(new std::string(data), [](std::string* p) {
      sodium_memzero(p->data(), p->size());
      delete p;
    });
    std::string_view view(*copy);
    return AppendRun(UploadRun{{view}, std::move(copy)});
  }
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
  ContentDigest actual{received_hash_ ? *received_hash_ : hasher_.Finish(), received_};
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

absl::Status ItemReader::StillStored() {
  if (tree_ == nullptr) return absl::OkStatus();
  const uint64_t now = tree_->epoch();
  if (now == epoch_) return absl::OkStatus();
  epoch_ = now;
  if (stored_()) return absl::OkStatus();
  return absl::NotFoundError("the item was shredded during the download; nothing more of it is sent");
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
  std::string scratch;  // ciphertext only
  for (uint64_t c = first; c < chunks; ++c) {
    uint64_t c_begin = c * chunk_size_;
    if (c_begin >= end && !(size_ == 0 && c == 0)) break;
    uint64_t c_len = std::min<uint64_t>(chunk_size_, size_ - c_begin);
    std::string_view sealed;
    if (blob_) {
      // Ciphertext in the blob's read buffer where it can (no copy), opened
      // straight into the buffer that is handed out.
      auto view = blob_->ReadView(c * stride, c_len + kChunkTagSize, &scratch);
      if (!view.ok()) return view.status();
      sealed = *view;
    } else {
      if (inline_ciphertext_.size() < c * stride + c_len + kChunkTagSize) {
        return absl::DataLossError("stored ciphertext is truncated");
      }
      sealed = std::string_view(inline_ciphertext_).substr(c * stride, c_len + kChunkTagSize);
    }
    // Authenticated before a byte is handed out: on failure the buffer is
    // zeroed and nothing reaches the sink.
    std::string buf(c_len, '\0');
    if (auto s = cipher_->OpenTo(c, sealed, buf.data()); !s.ok()) return s;
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

// ------------------------------------------------------------------ ItemStore: starting and committing uploads

absl::StatusOr<std::unique_ptr<Upload>> ItemStore::BeginUpload(const ContentDigest& declared, ItemMetadata metadata) {
  if (auto s = CheckUploadable(declared, metadata); !s.ok()) return s;
  return StartUpload(declared, std::move(metadata));
}

uint64_t ItemStore::UploadBufferBytes(uint64_t size) const {
  if (size <= options_.inline_threshold) return 2 * size;
  const uint64_t chunk = std::min<uint64_t>(size, options_.chunk_size);
  return std::min<uint64_t>(size, UploadPipeline::kQueueBytes) + chunk +
         blobs_->WriterBufferBytes(CiphertextSize(size, options_.chunk_size));
}

uint64_t ItemStore::DownloadBufferBytes(uint64_t size, size_t queued_chunks) const {
  if (size <= options_.inline_threshold) return 2 * size;
  const uint64_t chunk = std::min<uint64_t>(size, options_.chunk_size);
  return (queued_chunks + 2) * chunk + blobs_->ReaderBufferBytes(CiphertextSize(size, options_.chunk_size));
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
    if (auto s = NoteUploadIntent(up->object_id_); !s.ok()) return s;
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
  ItemKey key = ItemKeyFor(digest.hash);
  CommitLocks locks;
  if (auto s = LockForCommit(key, digest, lineage_parents, !lineage_edges.empty(), &locks); !s.ok()) return s;
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

  SecretBytes meta_key = DeriveSubkey(dek, Subkey::kMetadata);
  std::string meta = EncodeMetadata(digest, metadata);
  const ItemRecordHeader header{
      metadata.kind, blob != nullptr, options_.chunk_size, *slot, digest.size, absl::GetCurrentTimeNanos(), object_id};
  batch.Put(ItemRecordKey(key), EncodeItemRecord(header, SealWithKey(meta_key, meta, MetadataAd(key))));
  sodium_memzero(meta.data(), meta.size());
  if (blob) {
    batch.Put(ObjectKey(object_id), KeyString(key));
    batch.Delete(IntentKey(object_id));
  } else {
    batch.Put(InlineKey(object_id), inline_ciphertext);
  }
  for (const auto& k : IndexKeysOf(*this, metadata, key)) batch.Put(k, "");
  for (const auto& [k, v] : extra) batch.Put(k, v);
  auto committed = Commit(&batch, [&](uint64_t first) -> absl::StatusOr<std::vector<std::string>> {
    std::vector<std::string> entries;
    AddNewDatasets(metadata.datasets, &batch, &entries);
    std::string salt;
    const uint64_t index = first + entries.size();
    entries.push_back(CustodyEntry(digest, metadata, key, index, &batch, &salt));
    if (!lineage_edges.empty()) {
      entries.push_back(LineageEntry(digest, verify::CustodyCommitment(digest.HashString(), salt), lineage_edges));
    }
    return entries;
  });
  if (!committed.ok() && !Landed(blob ? ObjectKey(object_id) : InlineKey(object_id))) {
    if (blob) (void)blobs_->Delete(HexEncode(object_id));
    return committed.status();
  }
  // Committed. An error now means the records are on the local disk but not
  // yet in the object store ("sync" state replication): the item is stored
  // all the same (a retry is answered "already present"), so its object
  // must stay.
  tree_->Committed(*pending);
  item_count_.fetch_add(1);
  if (!committed.ok()) return committed.status();
  return PutResult{digest, false};
}

bool ItemStore::Landed(const std::string& record_key) {
  std::string v;
  return db_->Get(rocksdb::ReadOptions(), record_key, &v).ok();
}

}  // namespace shredd
