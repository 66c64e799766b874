// TransparencyLog: shredd's append-only RFC 6962 / RFC 9162 Merkle log of
// custody events and deletion certificates, with signed C2SP checkpoints.
//
//   leaf hash = SHA-256(0x00 || entry), node hash = SHA-256(0x01 || l || r)
//   checkpoint = C2SP tlog-checkpoint "<origin>\n<size>\n<base64 root>\n",
//                signed as a C2SP signed-note by the vault's Ed25519 key,
//                key name = origin (see docs/LOG.md).
//
// Records (RocksDB default column family, in the caller's database; every
// key starts with "L", which nothing else uses; daemon/storage/keyspace.h):
//   "Ls"                        tree size (8 bytes, big-endian)
//   "Le" index(8)               entry bytes, exactly as appended
//   "Lh" level(1) index(8)      hash of the complete subtree of 2^level leaves
//                               [index * 2^level, (index + 1) * 2^level),
//                               level >= 1; leaf hashes (level 0) are
//                               computed from "Le" (logs written before kept
//                               them here too; such records are ignored)
//   "Li" leaf hash(32)          index(8) of the first entry with that leaf hash
//                               (not written for entries appended with
//                               fresh_entries, i.e. item-stored entries)
//   "Lc" size(8)                signed checkpoint note for that tree size
// All integers big-endian. A subtree hash is written in the same batch as the
// leaf that completes it, so an append writes O(1) amortised records, and the
// root, an inclusion proof or a consistency proof for any committed size is
// O(log n) point lookups. Records are never rewritten (except "Ls").
//
// Durability: Append commits its entries together with the caller's batch in
// one synced write; the log is exactly what was committed, so it survives
// kill -9 without losing or reordering acknowledged entries.
//
// Thread safety: all methods are safe for concurrent use. Appends are
// serialised by an internal mutex; readers never block on appends and see a
// committed prefix of the log (never a partially applied batch).
#ifndef SHREDD_DAEMON_LOG_TRANSPARENCY_LOG_H_
#define SHREDD_DAEMON_LOG_TRANSPARENCY_LOG_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "daemon/keys/vault.h"
#include "formats/compact_range.h"
#include "formats/keys.h"
#include "formats/merkle.h"

namespace shredd {

class TransparencyLog {
 public:
  // Largest entry accepted (so any entry fits one gRPC message).
  static constexpr size_t kMaxEntryBytes = 1 << 20;

  // Opens the log stored in `db` (not owned; must outlive the log), signing
  // checkpoints with `vault`'s key (not owned; must outlive the log) under
  // `origin` (non-empty printable ASCII without spaces or '+': it is also the
  // note key name). A database without log records is an empty log.
  // INVALID_ARGUMENT for a bad origin; DATA_LOSS if the stored records are
  // inconsistent (a subtree hash is missing, or the latest stored checkpoint
  // does not match the stored tree).
  static absl::StatusOr<std::unique_ptr<TransparencyLog>> Open(rocksdb::DB* db, Vault* vault, std::string origin);
  // Before Open (which makes the vault's signing key if it has none): the
  // log's identity must not change by accident. FAILED_PRECONDITION if the
  // database holds a log but the vault no signing key (lost, or the wrong
  // vault), or if the latest stored checkpoint does not verify with the
  // vault's key (replaced). With `new_key` (--new-signing-key, a deliberate
  // rotation, docs/VAULT.md) the vault must hold no key: one is made and the
  // log continues under it, with a new default origin.
  static absl::Status CheckSigningKey(rocksdb::DB* db, Vault* vault, bool new_key);

  TransparencyLog(const TransparencyLog&) = delete;
  TransparencyLog& operator=(const TransparencyLog&) = delete;

  using MakeEntries = std::function<absl::StatusOr<std::vector<std::string>>(uint64_t first_index)>;

  // Appends the entries returned by make_entries(first_index) atomically with
  // the caller's `batch`, in one synced RocksDB write, under the log's append
  // mutex (so indices are dense and in commit order; make_entries may sign
  // things that name their own index; it must not call back into the log).
  // The entries get indices first_index, first_index + 1, ... Returns
  // first_index; zero entries commit just the caller's batch. Nothing is
  // written if make_entries fails (its status is returned). INVALID_ARGUMENT
  // if an entry is larger than kMaxEntryBytes. On any failure the caller
  // must discard `batch` (the log may have added records to it). If the
  // synced write itself fails, the log refuses further appends (INTERNAL)
  // until the daemon restarts, since what reached the disk is unknown.
  //
  // `fresh_entries`: the caller vouches that every entry holds fresh random
  // bytes (an item-stored entry's salted commitment), so no other entry has
  // the same bytes and nobody can look it up by hash without having read it
  // by index first. Such entries get no "Li" leaf-index record (saving a
  // point lookup and a random-key insert per entry on bulk ingest), so
  // IndexOfLeafHash does not find them. Certificates, which are looked up by
  // hash, are never appended this way.
  //
  // `durable_at` (group commit): if given, the write is not synced; Append
  // returns once the batch is written (visible to readers of the database,
  // not yet to readers of the log) and sets *durable_at. The caller must then
  // release its own locks and call WaitDurable(*durable_at) before it
  // acknowledges anything: one WAL sync then covers every batch written
  // before it, so concurrent batches share an fsync, and the next batch's
  // locked work overlaps this one's sync.
  absl::StatusOr<uint64_t> Append(rocksdb::WriteBatch* batch, const MakeEntries& make_entries,
                                  bool fresh_entries = false, uint64_t* durable_at = nullptr);

  // Waits until everything written by Append with `durable_at` up to log size
  // `target` is synced (one thread syncs for all waiters), then publishes it
  // in size(). An error if the sync failed; the log then refuses appends
  // until the daemon restarts, like a failed synced write.
  absl::Status WaitDurable(uint64_t target);
  // The log size including written but not yet synced batches. A caller that
  // read a record another batch may have written unsynced (a duplicate
  // upload's existing item record) calls WaitDurable(WrittenSize()) before
  // it acknowledges.
  uint64_t WrittenSize();

  // Number of committed entries.
  uint64_t size() const { return size_.load(std::memory_order_acquire); }

  // The exact bytes of entry `index`. OUT_OF_RANGE if index >= size().
  absl::StatusOr<std::string> Entry(uint64_t index);

  // Index of the first entry whose leaf hash is `leaf_hash`. NOT_FOUND if
  // none, and for entries appended with fresh_entries (see Append).
  absl::StatusOr<uint64_t> IndexOfLeafHash(const verify::Hash& leaf_hash);

  // The hash of the complete subtree of 2^level leaves starting at leaf
  // index << level (level 0: the leaf hash). OUT_OF_RANGE unless the subtree
  // lies within size(). One point lookup (the tile writer reads tiles of
  // level >= 1 with it).
  absl::StatusOr<verify::Hash> CompleteSubtreeHash(int level, uint64_t index);

  // Called after each increase of size() (entries durable), on the thread
  // that made them durable; must be quick and must not call back into the
  // log (a tile writer only wakes its thread). Added before appends start
  // (one per tile writer).
  void AddGrowthListener(std::function<void()> listener) { growth_listeners_.push_back(std::move(listener)); }

  // MTH of the first `size` entries (size 0: SHA-256("")). OUT_OF_RANGE if
  // size > size().
  absl::StatusOr<verify::Hash> Root(uint64_t size);

  // RFC 9162 PATH(index, D[size]), leaf to root. OUT_OF_RANGE unless
  // index < size <= size(). Like a checkpoint, a proof commits to the tree
  // of `size`: with state replication it waits until that tree is in the
  // object store (UNAVAILABLE if it cannot be), in every mode.
  absl::StatusOr<std::vector<verify::Hash>> InclusionProof(uint64_t index, uint64_t size);

  // RFC 9162 PROOF(m, D[n]); empty when m == 0 or m == n. OUT_OF_RANGE if
  // n > size(); INVALID_ARGUMENT if m > n. Waits as InclusionProof does.
  absl::StatusOr<std::vector<verify::Hash>> ConsistencyProof(uint64_t m, uint64_t n);

  // Waits until the tree of size n is in the object store (durability.h),
  // in every mode: before anything that commits to it, or entries of it,
  // leaves the daemon. OK at once without state replication; UNAVAILABLE
  // if the store cannot take it now.
  absl::Status WaitTreeReplicated(uint64_t n);
  // Trees up to this size are known to be in the object store (only raised
  // by WaitTreeReplicated: may lag behind what is there).
  uint64_t replicated_size() const { return replicated_size_.load(std::memory_order_acquire); }

  // Signs (vault->Sign) a checkpoint for the current size if none exists for
  // it yet, stores it durably, and returns the signed note text. Every call
  // for one size returns the same text.
  absl::StatusOr<std::string> SignedCheckpoint();

  const std::string& origin() const { return origin_; }
  const verify::PublicKey& public_key() const { return public_key_; }
  // "<origin>+<hash>+<base64 key>": the C2SP verifier key of the checkpoints.
  std::string NoteVerifierKey() const;

 private:
  TransparencyLog(rocksdb::DB* db, Vault* vault, std::string origin)
      : db_(db), vault_(vault), origin_(std::move(origin)) {}

  absl::Status Load();
  // Reads the stored tree: its size and right edge.
  absl::StatusOr<verify::CompactRange> LoadTree();
  // After a failed write or WAL sync (broken_), before the next append:
  // takes the tree from the database again (what RocksDB holds, whatever the
  // failed call left in it) and clears the sync error. Requires append_mu_.
  absl::Status ReloadAfterFailedWriteLocked();
  // Hash of the complete subtree (level, index), read from the database.
  absl::StatusOr<verify::Hash> StoredHash(int level, uint64_t index);
  // MTH(D[lo:hi]) for hi <= a committed size, where lo is a multiple of the
  // smallest power of two >= hi - lo (true of every subtree RFC 9162's
  // recursions visit).
  absl::StatusOr<verify::Hash> SubtreeHash(uint64_t lo, uint64_t hi);
  absl::Status Path(uint64_t m, uint64_t lo, uint64_t hi, std::vector<verify::Hash>* out);
  absl::Status SubProof(uint64_t m, uint64_t lo, uint64_t hi, bool b, std::vector<verify::Hash>* out);

  rocksdb::DB* const db_;
  Vault* const vault_;
  const std::string origin_;
  verify::PublicKey public_key_{};
  uint32_t key_id_ = 0;
  std::atomic<uint64_t> size_{0};

  std::mutex append_mu_;
  verify::CompactRange tree_ ABSL_GUARDED_BY(append_mu_);  // the right edge of what was written
  absl::Status broken_ ABSL_GUARDED_BY(append_mu_);        // the last write failed
  uint64_t written_ ABSL_GUARDED_BY(append_mu_) = 0;       // >= size_

  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  uint64_t synced_ ABSL_GUARDED_BY(sync_mu_) = 0;
  bool syncing_ ABSL_GUARDED_BY(sync_mu_) = false;
  absl::Status sync_error_ ABSL_GUARDED_BY(sync_mu_);
  // Publishes `n` (durable) in size_ if larger.
  void PublishDurable(uint64_t n);
  std::vector<std::function<void()>> growth_listeners_;

  std::atomic<uint64_t> replicated_size_{0};  // trees up to this size are in the store

  std::mutex checkpoint_mu_;
  uint64_t checkpoint_size_ ABSL_GUARDED_BY(checkpoint_mu_) = 0;
  std::string checkpoint_ ABSL_GUARDED_BY(checkpoint_mu_);  // empty: none yet
};

// Key encodings, exposed for tests and forensic tools.
std::string LogEntryKey(uint64_t index);
std::string LogHashKey(int level, uint64_t index);
std::string LogCheckpointKey(uint64_t size);

// The default origin for a daemon whose signing key is `key`:
// "shredd.local/" + the first 16 hex characters of KeyId(key) after "shredd:".
std::string DefaultLogOrigin(const verify::PublicKey& key);

}  // namespace shredd

#endif  // SHREDD_DAEMON_LOG_TRANSPARENCY_LOG_H_
