#include "daemon/items/blob_reaper.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "daemon/base/logging.h"
#include "daemon/base/strings.h"
#include "daemon/crypto/digest.h"
#include "daemon/storage/durability.h"
#include "daemon/storage/keyspace.h"
#include "daemon/storage/rocks_util.h"
#include "daemon/storage/space_guard.h"

namespace shredd {
namespace {

constexpr size_t kObjectIdSize = 16;
constexpr size_t kBatch = 256;  // records read per pass

std::string DropKey(std::string_view object_id) { return StrCat(keyspace::kBlobDrop, object_id); }

// An iterator bounded to the queue: without the bound, a seek past the last
// record walks on over the tombstones of whatever a large shred deleted
// after it (the inline content, item and key records of an order: millions).
std::unique_ptr<rocksdb::Iterator> QueueIterator(rocksdb::DB* db) {
  static const std::string kEnd = StrCat(keyspace::kBlobDrop, std::string(kObjectIdSize + 1, '\xff'));
  static const rocksdb::Slice kUpper(kEnd);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &kUpper;
  return std::unique_ptr<rocksdb::Iterator>(db->NewIterator(ro));
}

// Up to kBatch queued object ids (raw bytes) after `after` (empty: from the
// first), in key order.
absl::StatusOr<std::vector<std::string>> ReadDrops(rocksdb::DB* db, std::string_view after) {
  std::vector<std::string> ids;
  std::unique_ptr<rocksdb::Iterator> it = QueueIterator(db);
  for (it->Seek(DropKey(after)); it->Valid() && it->key().starts_with(keyspace::kBlobDrop); it->Next()) {
    std::string_view id = it->key().ToStringView().substr(keyspace::kBlobDrop.size());
    if (id.size() == kObjectIdSize && id != after) ids.emplace_back(id);
    if (ids.size() >= kBatch) break;
  }
  if (auto s = FromRocks(it->status(), "reading the blob deletion queue"); !s.ok()) return s;
  return ids;
}

uint64_t CountDrops(rocksdb::DB* db) {
  uint64_t n = 0;
  std::unique_ptr<rocksdb::Iterator> it = QueueIterator(db);
  for (it->Seek(keyspace::kBlobDrop); it->Valid() && it->key().starts_with(keyspace::kBlobDrop); it->Next()) ++n;
  return n;
}

}  // namespace

BlobReaper::BlobReaper(rocksdb::DB* db, BlobBackend* blobs) : db_(db), blobs_(blobs) {
  pending_.store(CountDrops(db));
  retrier_ = std::make_unique<BackoffRetrier>(
      [this] { return Drain(); },
      BackoffRetrier::Options{std::chrono::milliseconds(500), std::chrono::milliseconds(30000)});
  if (pending_.load() > 0) retrier_->Kick();
}

BlobReaper::~BlobReaper() { retrier_.reset(); }

void BlobReaper::StageDrop(std::string_view object_id, rocksdb::WriteBatch* batch) {
  batch->Put(DropKey(object_id), "");
}

bool BlobReaper::IsQueued(rocksdb::DB* db, std::string_view object_id) {
  std::string v;
  return db->Get(rocksdb::ReadOptions(), DropKey(object_id), &v).ok();
}

void BlobReaper::Committed(uint64_t n) {
  if (n == 0) return;
  pending_.fetch_add(n);
  retrier_->Kick();
}

BlobReaper::Stats BlobReaper::stats() const {
  return Stats{pending_.load(), deleted_.load(), failures_.load(), failing_.load()};
}

// One pass over the whole queue: an object the store refuses to delete
// stays queued, in its own backoff, and the pass goes on to the others; an
// unreachable store ends the pass.
absl::Status BlobReaper::Drain() {
  ErasureWrites erasure;  // removing queue records frees space (space_guard.h)
  std::string after;
  uint64_t left = 0;
  for (;;) {
    auto ids = ReadDrops(db_, after);
    if (!ids.ok()) return ids.status();
    if (ids->empty()) break;
    // The drops (and the shreds that made them) are in the object store
    // first; until then a restore would need these objects.
    if (auto s = WaitStateReplicated(db_, "deleting shredded items' objects"); !s.ok()) return s;
    for (const std::string& id : *ids) {
      after = id;
      auto deleted = DeleteOne(id);
      if (!deleted.ok()) return deleted.status();
      if (!*deleted) ++left;
    }
  }
  if (left == 0) return absl::OkStatus();
  return absl::UnavailableError(StrCat(left, " objects of shredded items are not deleted yet"));
}

absl::StatusOr<bool> BlobReaper::DeleteOne(const std::string& id) {
  const auto now = std::chrono::steady_clock::now();
  auto retry = retry_.find(id);
  if (retry != retry_.end() && now < retry->second.next) return false;
  if (auto s = blobs_->Delete(HexEncode(id)); !s.ok()) {
    Retry& r = retry_[id];
    r.delay = std::clamp(2 * r.delay, kFirstRetry, kMaxRetry);
    r.next = now + r.delay;
    failures_.fetch_add(1);
    failing_.store(retry_.size());
    LogWarning("blob deletion failed; retrying this object with backoff",
               {{"object", HexEncode(id)}, {"reason", std::string(s.message())}});
    // A store that does not answer fails every object alike: the pass ends
    // (one attempt per pass). A refusal of this object: the others go on.
    if (absl::IsUnavailable(s)) return s;
    return false;
  }
  rocksdb::WriteBatch batch;
  batch.Delete(DropKey(id));
  // Not synced: a record lost in a crash only repeats a deletion.
  if (auto s = GuardedWrite(db_, rocksdb::WriteOptions(), &batch, "removing a blob deletion record"); !s.ok()) return s;
  retry_.erase(id);
  failing_.store(retry_.size());
  deleted_.fetch_add(1);
  if (pending_.load() > 0) pending_.fetch_sub(1);
  return true;
}

}  // namespace shredd
