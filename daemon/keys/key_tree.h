// KeyTree: the hierarchy of keys that makes shredding survive old copies.
//
// Every item's data key (DEK) sits in a numbered slot. Slots are grouped 64 to
// a bucket; bucket keys are wrapped by level-1 node keys, those by level-2,
// level-2 by level-3, and level-3 node keys by the root key of the current
// epoch, which exists only in the Vault. Capacity: 64^5 (about 10^9) slots.
//
//   root(epoch e, vault) -> L3[64] -> L2[64^2] -> L1[64^3] -> bucket[64^4] -> DEK[64^5]
//
// Shredding a set of slots is one epoch (Reardon et al., CCS 2013): drop their
// wrapped DEKs, give every node on their paths a fresh random key, re-wrap the
// surviving children of those nodes, commit everything in one synced RocksDB
// write, then destroy the old root in the vault. Every copy of a shredded DEK
// that ever reached disk is wrapped under a key chain ending in a destroyed
// root. Cost: O(p * 64) wraps for the p nodes on the touched paths (p <= 5k
// for k slots), plus 64 re-wraps under the new root; it does not depend on
// how many slots the tree holds.
//
// Records (RocksDB default column family; prefixes: daemon/storage/keyspace.h):
//   "te"                     committed root epoch (8 bytes, big-endian)
//   "n" level(1) index(8)    node key wrapped under its parent (level 3: under the root)
//   "k" slot(8)              DEK wrapped under its bucket key
//
// Concurrency: writers (puts) hold a WriteLease from wrapping a DEK until their
// batch commits; Shred waits for all leases, so no DEK is ever wrapped under a
// bucket key that an epoch is about to replace.
#ifndef SHREDD_DAEMON_KEYS_KEY_TREE_H_
#define SHREDD_DAEMON_KEYS_KEY_TREE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "daemon/base/secret.h"
#include "daemon/crypto/aead.h"
#include "daemon/keys/vault.h"

namespace shredd {

class KeyTree {
 public:
  static constexpr uint64_t kFanout = 64;
  static constexpr int kLevels = 4;  // node levels 0 (buckets) .. 3 (top)
  static constexpr uint64_t kCapacity = 64ull * 64 * 64 * 64 * 64;
  // Slot 0 holds the system key: never shredded; keys the lookup indexes.
  static constexpr uint64_t kSystemSlot = 0;
  // Runs of at least this many buckets emptied by one epoch are deleted
  // with one range deletion (RekeyBucketsLocked).
  static constexpr uint64_t kRangeDeleteBuckets = 16;

  // Opens the tree stored in `db` (not owned; must outlive the tree). On a
  // fresh database creates epoch 1 and the system key. Recovers from a crash
  // mid-epoch by destroying every vault root other than the committed one
  // (an older root the vault fails to destroy is logged and left to the
  // shredder, whose pending certification keeps retrying it).
  // FAILED_PRECONDITION if the vault lacks the committed root (e.g. the data
  // dir was restored from a copy older than the last shred): nothing is
  // touched in that case.
  static absl::StatusOr<std::unique_ptr<KeyTree>> Open(rocksdb::DB* db, Vault* vault);

  KeyTree(const KeyTree&) = delete;
  KeyTree& operator=(const KeyTree&) = delete;

  uint64_t epoch() const { return epoch_.load(); }
  Vault& vault() { return *vault_; }

  // Held by a writer between AddDek and the commit of its batch (a shared
  // hold on the epoch lock). absl::Mutex blocks new readers while a writer
  // waits, so a steady stream of puts cannot starve a shred.
  class WriteLease {
   public:
    explicit WriteLease(absl::Mutex* mu) : mu_(mu) { mu_->ReaderLock(); }
    WriteLease(WriteLease&& o) noexcept : mu_(std::exchange(o.mu_, nullptr)) {}
    WriteLease(const WriteLease&) = delete;
    WriteLease& operator=(const WriteLease&) = delete;
    WriteLease& operator=(WriteLease&&) = delete;
    ~WriteLease() {
      if (mu_ != nullptr) mu_->ReaderUnlock();
    }

   private:
    absl::Mutex* mu_;
  };
  WriteLease BeginWrite() { return WriteLease(&epoch_mu_); }

  // Reserves a fresh slot. RESOURCE_EXHAUSTED when the tree is full.
  absl::StatusOr<uint64_t> AllocateSlot();

  // Adds the wrapped `dek` for `slot` to `batch`, together with any new
  // ancestor node records that are not durable yet. After the batch commits,
  // pass the returned token to Committed().
  struct PendingNodes {
    std::vector<uint64_t> node_ids;
  };
  absl::StatusOr<PendingNodes> AddDek(const WriteLease& lease, uint64_t slot, KeyView dek, rocksdb::WriteBatch* batch);
  void Committed(const PendingNodes& pending);

  // Unwraps the DEK of `slot`. NOT_FOUND if the slot holds no DEK (shredded);
  // DATA_LOSS if a record on its path was altered.
  absl::StatusOr<SecretBytes> GetDek(uint64_t slot);
  // Same, for a caller that already holds a WriteLease.
  absl::StatusOr<SecretBytes> GetDekLocked(const WriteLease& lease, uint64_t slot);
  // Unwraps the DEKs of many slots (one MultiGet, one bucket-key lookup per
  // bucket) into `out` (32 bytes per slot, slot i at offset 32 * i; e.g. a
  // SecretBytes arena). status[i] as GetDek would return for slots[i].
  // For the order planner, which reads hundreds of thousands of DEKs.
  std::vector<absl::Status> GetDeks(std::span<const uint64_t> slots, std::span<uint8_t> out);

  struct EpochResult {
    uint64_t destroyed_epoch = 0;
    uint64_t installed_epoch = 0;
    uint64_t nodes_rekeyed = 0;
    uint64_t keys_rewrapped = 0;
  };
  // Shreds the DEKs in `slots` in one epoch. The caller's operations already
  // in `batch` (e.g. item record deletions, the order's state) commit
  // atomically with the new tree; the tree adds its own to it.
  // On return the old root is destroyed in the vault. NOT_FOUND if a slot
  // holds no DEK (nothing changes). If the old root cannot be destroyed the
  // new tree is committed and the error is returned: the caller must not
  // certify; the shredder retries the destruction (shredder_pending.cc).
  absl::StatusOr<EpochResult> Shred(std::span<const uint64_t> slots, rocksdb::WriteBatch* batch);

  // Number of node keys currently held in memory (for metrics and tests).
  size_t cached_node_keys();

 private:
  KeyTree(rocksdb::DB* db, Vault* vault) : db_(db), vault_(vault) {}

  struct Node {
    uint32_t key_slot;    // in pool_
    bool durable;         // its record is in the database
    std::string wrapped;  // the record, while not durable
  };

  absl::Status Recover();
  // Key of node (level, index), loading and unwrapping its path as needed;
  // with `create`, makes missing nodes (not durable). Requires cache_mu_.
  absl::StatusOr<KeyView> NodeKeyLocked(int level, uint64_t index, bool create);
  void DropNonDurableLocked();
  // Shred's phases. The plan: the doomed slots, the nodes on their paths
  // (per level) and a fresh key for each of those nodes.
  struct EpochPlan {
    std::set<uint64_t> doomed;
    std::array<std::set<uint64_t>, kLevels> touched;
    std::map<uint64_t, SecretBytes> fresh;  // NodeId -> new key
  };
  EpochPlan PlanEpoch(std::span<const uint64_t> slots);
  // Drops the doomed DEKs, re-wraps the survivors of their buckets.
  absl::Status RekeyBucketsLocked(const EpochPlan& plan, rocksdb::Iterator* it, rocksdb::WriteBatch& batch,
                                  EpochResult* result);
  // Wraps every child of a touched inner node under the node's new key.
  absl::Status RekeyInnerNodesLocked(const EpochPlan& plan, rocksdb::Iterator* it, rocksdb::WriteBatch& batch,
                                     EpochResult* result);
  // Every top node's key (all of them go under the new root).
  absl::Status CollectTopsLocked(const EpochPlan& plan, rocksdb::Iterator* it,
                                 std::vector<std::pair<uint64_t, SecretBytes>>* tops, EpochResult* result);
  // A new root in the vault, the tops wrapped under it, one synced write;
  // then the cache swapped and the old root destroyed.
  absl::Status CommitEpochLocked(EpochPlan& plan, std::vector<std::pair<uint64_t, SecretBytes>>& tops,
                                 rocksdb::WriteBatch& batch);

  rocksdb::DB* const db_;
  Vault* const vault_;
  std::atomic<uint64_t> epoch_{0};
  std::atomic<uint64_t> next_slot_{1};
  absl::Mutex epoch_mu_;  // shared: writers and readers; exclusive: Shred
  std::mutex cache_mu_;
  absl::flat_hash_map<uint64_t, Node> nodes_ ABSL_GUARDED_BY(cache_mu_);
  SecretKeyPool pool_ ABSL_GUARDED_BY(cache_mu_);
};

// Key encodings, exposed for tests and forensic tools.
std::string NodeRecordKey(int level, uint64_t index);
std::string DekRecordKey(uint64_t slot);
std::string NodeAssociatedData(int level, uint64_t index);
std::string DekAssociatedData(uint64_t slot);

}  // namespace shredd

#endif  // SHREDD_DAEMON_KEYS_KEY_TREE_H_
