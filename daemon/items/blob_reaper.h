// BlobReaper: deletes the ciphertext objects of shredded items in the
// background, every version of them where the backend keeps versions.
//
// A shred epoch commits, in its own write, one keyspace::kBlobDrop record per
// blob-backed item it destroys (StageDrop). The reaper deletes each object
// through the BlobBackend and then the record, so a crash or an unreachable
// object store only delays the deletion: the records survive, and the
// reaper retries with backoff and resumes at the next start. An object the
// store refuses to delete (a policy, Object Lock) stays queued in a backoff of
// its own (0.5 s doubling to 30 s) while the reaper deletes the others. Nothing waits
// for it: the keys are gone when the epoch commits, so the objects are
// ciphertext no key opens any more (docs/OBJECT-STORE.md).
//
// With state replication (storage/durability.h) an object goes only once the
// shred that dropped it is in the object store: a restore from the store
// before that point would hold the item, unshredded, and must find its
// object. Start-up garbage collection leaves queued objects to the reaper
// for the same reason (IsQueued).
#ifndef SHREDD_DAEMON_ITEMS_BLOB_REAPER_H_
#define SHREDD_DAEMON_ITEMS_BLOB_REAPER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "daemon/base/backoff_retry.h"
#include "daemon/storage/blob_backend.h"

namespace shredd {

class BlobReaper {
 public:
  struct Stats {
    uint64_t pending = 0;   // objects still to delete
    uint64_t deleted = 0;   // objects deleted since start
    uint64_t failures = 0;  // failed deletion attempts since start
    uint64_t failing = 0;   // queued objects whose last deletion attempt failed
  };

  // Counts the drops left by an earlier run and starts deleting them. `db`
  // and `blobs` must outlive the reaper.
  BlobReaper(rocksdb::DB* db, BlobBackend* blobs);
  ~BlobReaper();  // stops after the deletion in progress; what is left stays queued
  BlobReaper(const BlobReaper&) = delete;
  BlobReaper& operator=(const BlobReaper&) = delete;

  // Adds the drop record of `object_id` to a shred's batch.
  static void StageDrop(std::string_view object_id, rocksdb::WriteBatch* batch);
  // true if the object (raw id) waits for its deletion here.
  static bool IsQueued(rocksdb::DB* db, std::string_view object_id);
  // `n` drops were committed: delete them now.
  void Committed(uint64_t n);
  Stats stats() const;

 private:
  // When an object whose deletion failed is tried again.
  struct Retry {
    std::chrono::steady_clock::time_point next{};
    std::chrono::milliseconds delay{0};
  };
  static constexpr std::chrono::milliseconds kFirstRetry{500}, kMaxRetry{30000};

  // Tries every queued object not in its backoff; OK once none is left.
  absl::Status Drain();
  // true: deleted and dequeued; false: refused by the store or in its
  // backoff (stays queued). An error: the store is unavailable (the object
  // stays queued, in its backoff) or the queue record could not be removed.
  absl::StatusOr<bool> DeleteOne(const std::string& id);

  rocksdb::DB* const db_;
  BlobBackend* const blobs_;
  std::atomic<uint64_t> pending_{0}, deleted_{0}, failures_{0}, failing_{0};
  std::map<std::string, Retry> retry_;       // by raw object id; the retrier's thread only
  std::unique_ptr<BackoffRetrier> retrier_;  // last: its thread uses the members above
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_ITEMS_BLOB_REAPER_H_
