// WalCapture: a database's write batches, kept as they are committed, so
// that the state replicator ships them without reading the WAL back.
//
// Reading the WAL back (rocksdb::TransactionLogIterator) re-reads every byte
// from the log file, checks each record's CRC32C (in software: Debian's
// RocksDB is built without SSE4.2) and copies each batch into a new
// WriteBatch: ~11 % of the daemon's CPU in a `sync` bulk ingest (issue 14,
// part 3). Every foreground write goes through GuardedWrite
// (storage/rocks_util.h), which hands the batch over once RocksDB has written
// it; RocksDB has then stored the batch's sequence number in its header
// (WriteBatch::Data(): fixed64 sequence, fixed32 count, the records).
//
// The replicator takes the unbroken run of captured batches after what it
// shipped. Whatever the capture cannot vouch for falls back to the WAL
// reader, which stays the authority on gaps: a write that skipped the WAL or
// did not go through GuardedWrite is never captured, so the run stops before
// it, and the reader then finds the jump (or the batch) as before. To tell a
// batch that is still on its way (its writer between db->Write and End) from
// one that will never come, each write holds a ticket from Begin to End:
// every batch with a sequence number <= GetLatestSequenceNumber() read
// before TakeRun began its write before TakeRun started, so once every
// ticket older than TakeRun's call has ended, the run is as long as the
// capture can make it.
#ifndef SHREDD_DAEMON_STORAGE_WAL_CAPTURE_H_
#define SHREDD_DAEMON_STORAGE_WAL_CAPTURE_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include <rocksdb/write_batch.h>

namespace shredd {

class WalCapture {
 public:
  // At most `max_bytes` of batches are kept; beyond, batches are not
  // captured (the WAL reader ships them).
  explicit WalCapture(size_t max_bytes) : max_bytes_(max_bytes) {}

  // Before db->Write: a ticket for End.
  uint64_t Begin();
  // After db->Write. `batch`: the batch written, or nullptr if it is not to
  // be captured (the write failed, or skipped the WAL).
  void End(uint64_t ticket, const rocksdb::WriteBatch* batch);

  // Calls `take(seq, count, rep)` for each batch of the unbroken run after
  // sequence `after`, in order, removing it, until `take` returns false or
  // the run ends. First waits, at most `wait`, for the run to reach `upto`
  // or for every write begun before this call to have ended. Returns the
  // last sequence number taken (`after` if none).
  using Take = std::function<bool(uint64_t seq, uint32_t count, std::string_view rep)>;
  uint64_t TakeRun(uint64_t after, uint64_t upto, std::chrono::milliseconds wait, const Take& take);

  size_t bytes() const;

 private:
  struct Batch {
    uint32_t count = 0;
    std::string rep;
  };
  uint64_t RunEndLocked(uint64_t after) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropLocked(uint64_t upto) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_bytes_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  std::set<uint64_t> open_ ABSL_GUARDED_BY(mu_);            // tickets between Begin and End
  std::map<uint64_t, Batch> batches_ ABSL_GUARDED_BY(mu_);  // by first sequence number
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t floor_ ABSL_GUARDED_BY(mu_) = 0;  // taken (or shipped otherwise) up to here
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_STORAGE_WAL_CAPTURE_H_
