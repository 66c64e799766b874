// ItemStore: the encrypted, content-addressed store.
//
// Items are keyed by a keyed hash of their digest (never the bare digest).
// Each item has its own random DEK in the KeyTree; its content is sealed in
// chunks under a subkey of the DEK and its personal metadata under another.
// Small items live inside RocksDB, larger ones in the BlobBackend.
//
// Records (RocksDB, besides the KeyTree's):
//   "i" item_key(32)                    ItemRecord (see item_store.cc)
//   "c" object_id(16)                   inline ciphertext of a small item
//   "o" object_id(16)                   item_key of a file-backed item (GC)
//   "x" type(1) keyed_hash(32) item_key lookup index: s=subject d=dataset l=label
//   "s" item_key(32)                    suppression: shredded, by which certificate
//   "Y" item_key(32) index(8)           sealed custody record (kept after a shred, for audits)
//   "Z" dataset_key(32) item_key(32)    dataset membership -> log index (kept, for audits)
//   "D" dataset_key(32)                 sealed dataset record {name, created}
// (prefixes: daemon/storage/keyspace.h, the one list of them)
//
// Ingest and shred (invariant 7): every commit of an upload, a batch or a
// metadata change re-checks suppression and existence while it holds the
// item's stripe lock and a KeyTree::WriteLease; a shred epoch commits under
// the key tree's exclusive lock. So a shred and an upload of the same content
// are ordered: either the upload lands first (and the shred destroys it), or
// the shred does (and the upload is refused) -- never a resurrection.
// Datasets named by an upload are registered in the same write as the item,
// so a refused upload leaves no trace.
//
// Durability: an upload is acknowledged only after its ciphertext is synced
// and its records are committed with a synced write (BatchPut: a write whose
// WAL sync concurrent batches share, see TransparencyLog::Append).
#ifndef SHREDD_DAEMON_ITEMS_ITEM_STORE_H_
#define SHREDD_DAEMON_ITEMS_ITEM_STORE_H_

#include <algorithm>
#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include <rocksdb/db.h>

#include "daemon/base/secret.h"
#include "daemon/crypto/aead.h"
#include "daemon/crypto/digest.h"
#include "daemon/items/blob_reaper.h"
#include "daemon/items/destruction_gate.h"
#include "daemon/items/item.h"
#include "daemon/keys/key_tree.h"
#include "daemon/storage/blob_backend.h"

namespace shredd {

using ItemKey = std::array<uint8_t, 32>;

class StorageHealth;  // daemon/storage/storage_health.h

// The refusal while a destruction is pending after a failure
// (destruction_gate.h); `what` names the writes that wait ("legal holds").
absl::Status PendingDestructionRefusal(std::string_view certificate_id, std::string_view what);

class ItemStore;
class TransparencyLog;
using LogEntries = std::function<absl::StatusOr<std::vector<std::string>>(uint64_t first_index)>;

// Bytes of an upload and what keeps them alive.
struct UploadRun {
  std::vector<std::string_view> parts;
  std::shared_ptr<const void> owner;
};

// One streaming upload. Destroying it before Commit() leaves nothing behind.
class Upload {
 public:
  ~Upload();
  Upload(const Upload&) = delete;
  Upload& operator=(const Upload&) = delete;
  // INVALID_ARGUMENT if more bytes arrive than were declared.
  absl::Status Append(std::string_view data);
  // The same for bytes someone else owns (e.g. gRPC's receive buffers).
  // Large (file-backed) uploads are pipelined: the caller's thread hashes
  // now, a worker thread seals straight from there and writes, holding
  // `run.owner` until then (no copy of the content), with a bounded queue
  // between them (constant memory).
  absl::Status AppendRun(UploadRun run);
  // Declares the digest after the data (an upload begun with
  // ItemStore::BeginUploadOfSize). If a digest was declared at the start,
  // `digest` must equal it. FAILED_PRECONDITION if the digest was shredded.
  absl::Status DeclareDigest(const ContentDigest& digest);
  // Declares the SHA-256 of the bytes received as the digest (the client
  // did not hash: PutHeader.daemon_digest), once all of them arrived.
  // INVALID_ARGUMENT if fewer than the declared size did;
  // FAILED_PRECONDITION if the content was shredded.
  absl::Status DeclareReceivedDigest();
  bool digest_declared() const { return digest_declared_; }
  const ContentDigest& declared() const { return declared_; }
  // Verifies size and digest, then makes the item durable. INVALID_ARGUMENT
  // naming declared and actual digests if they differ (nothing is stored).
  absl::StatusOr<PutResult> Commit();
  uint64_t received() const { return received_; }

 private:
  friend class ItemStore;
  Upload() = default;
  // Checks `data` against the declared size, counts and hashes it.
  absl::Status Accept(std::string_view data);
  absl::Status SealChunk();

  ItemStore* store_ = nullptr;
  ContentDigest declared_;
  ItemMetadata metadata_;
  SecretBytes dek_;
  std::string object_id_;  // 16 random bytes
  std::unique_ptr<class ChunkCipher> cipher_;
  std::unique_ptr<BlobWriter> blob_;  // null for inline items
  std::string inline_ciphertext_;
  std::string pending_;  // plaintext of the chunk being filled
  std::string sealed_;   // scratch
  uint64_t chunk_index_ = 0;
  uint64_t received_ = 0;
  std::vector<std::pair<std::string, std::string>> extra_;  // committed with the item
  std::string lineage_edges_;                               // JSON array for the lineage log entry, if any
  std::vector<ItemKey> lineage_parents_;                    // items named by the lineage: re-checked at commit
  Sha256Hasher hasher_;
  std::optional<Sha256> received_hash_;  // hasher_ finished by DeclareReceivedDigest
  bool done_ = false;
  bool digest_declared_ = true;
  // Last member: destroyed (stopped and joined) before what its worker uses.
  std::unique_ptr<class UploadPipeline> pipeline_;
};

// Reads one item. Holds the item's content key while alive.
class ItemReader {
 public:
  ~ItemReader();
  uint64_t size() const { return size_; }
  // Calls `sink` with consecutive runs of plaintext covering
  // [offset, offset + limit) (limit 0 = to the end); stops early if sink
  // returns false. Only the chunks that overlap the range are decrypted.
  // DATA_LOSS if any stored byte was altered: nothing unauthenticated is
  // ever passed to `sink`. OUT_OF_RANGE if offset > size.
  absl::Status Read(uint64_t offset, uint64_t limit, const std::function<bool(std::string_view)>& sink);
  // The same, handing each run (at most one chunk) over to `sink`, which
  // owns it (and should wipe it when done): opened from the read buffer.
  absl::Status ReadOwned(uint64_t offset, uint64_t limit, const std::function<bool(std::string&&)>& sink);
  // NOT_FOUND once the item opened has been shredded. A download asks
  // before each message it sends, so nothing goes out after the epoch that
  // destroyed the item (let alone after its certificate): the reader holds
  // the content key, which the destruction cannot reach. Cheap: the stored
  // record is looked at only when the key tree's epoch has moved since the
  // last call.
  absl::Status StillStored();

 private:
  friend class ItemStore;
  ItemReader() = default;
  std::function<bool()> stored_;  // the record opened is still the item's
  const KeyTree* tree_ = nullptr;
  uint64_t epoch_ = 0;  // the key tree's epoch when last checked
  uint64_t size_ = 0;
  uint32_t chunk_size_ = 0;
  std::string object_id_;
  std::unique_ptr<class ChunkCipher> cipher_;
  std::unique_ptr<BlobReader> blob_;
  std::string inline_ciphertext_;
};

// What the shredder needs to know about an item it is about to destroy.
struct StoredItem {
  ItemKey item_key{};
  uint64_t slot = 0;
  std::string object_id;
  bool inline_content = true;
  ItemInfo info;
};

class ItemStore {
 public:
  struct Options {
    std::string data_dir;
    // Items up to this size are stored inside RocksDB (see docs/DESIGN-NOTES.md).
    uint64_t inline_threshold = 64 * 1024;
    uint32_t chunk_size = 1024 * 1024;
    uint64_t max_item_size = uint64_t{1} << 40;
    // RocksDB's memory budget ([storage] memory_budget_mib): block cache,
    // index and filter blocks, memtables (see ApplyRocksDbMemoryBudget).
    uint64_t memory_budget_bytes = uint64_t{128} << 20;
    // If set, becomes RocksDB's info log and listener
    // (daemon/storage/storage_health.h); if not, RocksDB writes its LOG file itself.
    std::shared_ptr<StorageHealth> storage_health;
    // Where blob-backed ciphertext lives. Empty: files under data_dir/blobs
    // (OpenFileBlobBackend); the daemon sets an object store here
    // ([object_store], daemon/storage/blob_backend_s3.h).
    std::function<absl::StatusOr<std::unique_ptr<BlobBackend>>()> open_blobs;
    // Called once the database is open, before anything else is touched
    // (the key tree's leftover roots, the blobs and their garbage): an error
    // stops the start with nothing deleted (the daemon checks that the
    // object store holds no newer state: StateReplicator::CheckNoNewerState).
    std::function<absl::Status(rocksdb::DB*)> before_use;
  };

  // Opens the store: RocksDB in data_dir/db, blobs in data_dir/blobs, the key
  // tree rooted in `vault` (not owned; must outlive the store).
  static absl::StatusOr<std::unique_ptr<ItemStore>> Open(const Options& options, Vault* vault);
  ~ItemStore();

  // Starts an upload. FAILED_PRECONDITION if the digest was shredded (suppressed);
  // INVALID_ARGUMENT for bad metadata or sizes.
  absl::StatusOr<std::unique_ptr<Upload>> BeginUpload(const ContentDigest& declared, ItemMetadata metadata);
  // Starts an upload of `size` bytes whose digest is declared after the data
  // (Upload::DeclareDigest), so that a client can hash while it sends.
  absl::StatusOr<std::unique_ptr<Upload>> BeginUploadOfSize(uint64_t size, ItemMetadata metadata);
  // Stores many small items with one synced write. One status per entry.
  struct BatchEntry {
    ContentDigest declared;
    ItemMetadata metadata;
    std::string_view data;
  };
  std::vector<absl::StatusOr<PutResult>> PutBatch(std::span<const BatchEntry> entries);

  // NOT_FOUND if the digest is not stored.
  absl::StatusOr<std::unique_ptr<ItemReader>> OpenReader(const Sha256& hash);

  // The most an upload of an item of `size` bytes holds in buffers (its
  // plaintext queue, the blob writer's), and a download (the blob reader's,
  // the chunk being opened and `queued_chunks` chunks of plaintext waiting
  // to be sent): what a transfer leases from the daemon's transfer memory
  // budget (daemon/base/memory_gate.h). Inline items: their size, twice.
  uint64_t UploadBufferBytes(uint64_t size) const;
  uint64_t DownloadBufferBytes(uint64_t size, size_t queued_chunks) const;
  absl::StatusOr<ItemInfo> Stat(const Sha256& hash);
  bool Contains(const Sha256& hash);

  struct ListPage {
    std::vector<ItemInfo> items;
    std::string next_page_token;
  };
  absl::StatusOr<ListPage> List(const ListFilter& filter, size_t page_size, std::string_view page_token);

  // --- for the catalog and the shredder ---
  absl::StatusOr<StoredItem> Lookup(const Sha256& hash);
  // By item key (from an index or a lineage edge). NOT_FOUND if absent.
  absl::StatusOr<StoredItem> LookupByKey(const ItemKey& key);
  // The same for many keys, with one MultiGet for the item records and one
  // for the wrapped DEKs (the order planner's path). out[i] is for keys[i].
  std::vector<absl::StatusOr<StoredItem>> LookupByKeys(std::span<const ItemKey> keys);
  // LookupByKeys in two steps, for a reader that sorts the records by slot
  // in between (SlotOrderedLookup): the item records of `keys` (one
  // MultiGet, NOT_FOUND for a key not stored), then the items of `raws`
  // opened with their DEKs (one MultiGet, in slot order if `raws` are;
  // NOT_FOUND for an item shredded since its record was read).
  struct RawItem {
    uint64_t slot = 0;
    ItemKey key{};
    std::string record;
  };
  std::vector<absl::StatusOr<RawItem>> ReadRecords(std::span<const ItemKey> keys);
  std::vector<absl::StatusOr<StoredItem>> OpenRecords(std::span<const RawItem> raws);
  // `error` (reading the item `key` failed) with the same code, naming the
  // item: "<kind> sha256:... cannot be read: ...", from its custody record
  // (sealed under the system key, so readable when the item's own records
  // are not), or by its item key if it has none.
  absl::Status UnreadableItem(const ItemKey& key, const absl::Status& error);
  ItemKey ItemKeyFor(const Sha256& hash) const;
  // Item keys listed under a lookup index: type keyspace::kIndexSubject,
  // kIndexDataset or kIndexLabel (value "k=v"), from daemon/storage/keyspace.h.
  // How many (counted, not collected: a dataset may hold millions).
  uint64_t CountIndexed(char type, std::string_view value);
  // Same, streaming: calls `fn` per item key until it returns false or an
  // error (returned). For indexes of millions of items.
  absl::Status ForEachIndexed(char type, std::string_view value,
                              const std::function<absl::StatusOr<bool>(const ItemKey&)>& fn);
  // For an upload of content that is already stored (or new lineage of a
  // stored model): merges its metadata and commits `extra` and the lineage
  // log entry with it, under the same locks a shred excludes. Refuses a
  // kind change, and (FAILED_PRECONDITION) lineage to a parent in
  // `lineage_parents` that was shredded meanwhile.
  absl::StatusOr<PutResult> MergeIntoExisting(const ContentDigest& digest, const ItemMetadata& metadata,
                                              const std::vector<std::pair<std::string, std::string>>& extra,
                                              const std::string& lineage_edges,
                                              std::span<const ItemKey> lineage_parents = {});
  // Adds subject ids, datasets and labels to a stored item (re-sealing its
  // metadata and adding index entries) together with `extra` records, in one
  // synced write. Returns the new info.
  // Waits for a destruction in progress (destruction_gate.h); `passed`: the
  // caller is inside the gate already (several merges as one change).
  absl::StatusOr<ItemInfo> AddMetadata(const Sha256& hash, const ItemMetadata& add,
                                       const std::vector<std::pair<std::string, std::string>>& extra,
                                       const DestructionGate::Commit* passed = nullptr);
  // Held by a destruction from its plan to its certificate; passed by every
  // merge into a stored item and every commit with lineage.
  DestructionGate& destruction_gate() { return gate_; }
  // Enters the gate as a commit: ABORTED if a destruction kept it closed
  // for DestructionGate::kCommitWait.
  // UNAVAILABLE while a destruction is pending after a failure
  // (destruction_gate.h).
  absl::StatusOr<DestructionGate::Commit> PassDestructionGate();
  // Records to commit with an upload (lineage edges), the edges as a JSON
  // array for the upload's "lineage" log entry (empty: none), and the items
  // the edges name (the commit refuses the upload if one was shredded
  // meanwhile).
  void SetUploadExtras(Upload* upload, std::vector<std::pair<std::string, std::string>> extra,
                       std::string lineage_edges_json, std::vector<ItemKey> lineage_parents = {});
  // Dataset records: key, and (for names not registered yet) the sealed
  // record and its "dataset-registered" log entry. Called inside a Commit's
  // entry callback, so registrations are ordered by the log's append lock.
  static std::string DatasetRecordKey(const ItemKey& dataset_key);
  static std::string DatasetAd(const ItemKey& dataset_key);
  bool DatasetExists(std::string_view name);
  void AddNewDatasets(std::span<const std::string> names, rocksdb::WriteBatch* batch,
                      std::vector<std::string>* entries);

  // --- custody and the transparency log ---
  // Every custody event commits through here: with a log, `batch` and the
  // entries of `entries` go in one synced write (see TransparencyLog::Append;
  // `entries` may add records to `batch`); without one (unit tests), just
  // the batch. Returns the index of the first entry (0 without a log).
  // `fresh_entries`: see TransparencyLog::Append.
  // `durable_at`: group commit, see TransparencyLog::Append; the caller
  // must call WaitDurable(*durable_at) before acknowledging.
  absl::StatusOr<uint64_t> Commit(rocksdb::WriteBatch* batch, const LogEntries& entries, bool fresh_entries = false,
                                  uint64_t* durable_at = nullptr);
  absl::Status WaitDurable(uint64_t durable_at);
  // Before acknowledging an item as already present on the strength of a
  // record read from the database: that record may belong to a batch that
  // is written but not synced yet; waits until it is.
  absl::Status WaitForRecordsRead();
  void set_log(TransparencyLog* log) { log_ = log; }
  TransparencyLog* log() { return log_; }
  // Public commitments used in log entries (docs/FORMATS.md; the formulas
  // live in formats/commitment.h): an item's is
  // verify::CustodyCommitment(digest, custody salt); a dataset's is
  // verify::DatasetCommitment(name, DatasetSaltHex(name)), its salt a keyed
  // hash so that the same name always commits the same way.
  std::string DatasetSaltHex(std::string_view dataset) const;
  std::string DatasetCommitment(std::string_view dataset) const;
  ItemKey DatasetKeyOf(std::string_view dataset) const;
  struct Custody {
    ContentDigest digest;
    ItemKind kind = ItemKind::kPhoto;
    std::string salt_hex;
    uint64_t index = 0;  // of the item-stored entry
  };
  // The latest custody record of an item (kept after it is shredded).
  std::optional<Custody> LatestCustody(const ItemKey& key);
  // The custody record in force at log index `index`: the latest one at or
  // before it (an item stored, shredded and stored again has several).
  std::optional<Custody> CustodyAt(const ItemKey& key, uint64_t index);
  // What shredded the item's incarnation that `custody` records
  // ("certificate <id>" or "order <o>, certificate <id>", as SuppressedBy):
  // its suppression while it is the latest custody, the suppression a lift
  // kept after that. nullopt: not shredded, or lifted by a daemon older
  // than the lift records.
  std::optional<std::string> ShreddedBy(const ItemKey& key, const Custody& custody);
  // The "lineage" log entry of a model; `edges_json` is a JSON array.
  static std::string LineageEntry(const ContentDigest& model, const std::string& model_commitment,
                                  const std::string& edges_json);
  // Log index of each entry that made an item a member of `dataset`, for
  // every item that ever was one (an item stored again after a shred can be
  // a member twice, once per custody).
  // Calls `fn` with each member's item key and log index, in key order;
  // stops when it returns false. Counts them without `fn`.
  uint64_t ForEachDatasetMemberEver(std::string_view dataset,
                                    const std::function<bool(const ItemKey&, uint64_t)>& fn = nullptr);
  // Adds the deletion of everything `item` stored (except its DEK, which the
  // key tree drops) and its suppression record to `batch`.
  void AddShredOps(const StoredItem& item, std::string_view certificate_id, rocksdb::WriteBatch* batch);
  // The records AddShredOps deletes for `item` (item record, content or
  // object record, lookup index entries), so a large shred can stage them
  // and delete them later without decrypting the item's metadata again.
  std::vector<std::string> ShredDeleteKeys(const StoredItem& item) const;
  // Key of the suppression record of `item_key`.
  static std::string SuppressionRecordKey(const ItemKey& item_key);
  // Deletes `delete_keys` and records `item_key` as suppressed by `by`.
  static void AddShredOps(const ItemKey& item_key, const std::vector<std::string>& delete_keys, std::string_view by,
                          rocksdb::WriteBatch* batch);
  // Certificate id that shredded `hash`, if it is suppressed.
  std::optional<std::string> SuppressedBy(const Sha256& hash);
  // Deletes the suppression of `hash` with `extra` records (the lift's
  // audit record) in one synced write; returns what had suppressed it.
  // NOT_FOUND if it is not suppressed.
  absl::StatusOr<std::string> RemoveSuppression(const Sha256& hash,
                                                const std::vector<std::pair<std::string, std::string>>& extra,
                                                const std::string& log_entry);
  // The ciphertext objects of shredded items are deleted in the background
  // (BlobReaper): a shred stages the deletion of `object_id` in its epoch's
  // batch, and reports the committed ones.
  static void StageBlobDrop(std::string_view object_id, rocksdb::WriteBatch* batch);
  void BlobDropsCommitted(uint64_t n);
  BlobReaper::Stats blob_deletions() const { return reaper_->stats(); }
  // Orphans start-up garbage collection could not delete (1 if it could not
  // list them).
  uint64_t blob_gc_failures() const { return blob_gc_failures_; }
  // Objects under a shared object-store prefix that this daemon neither
  // holds nor began, found at start and left alone.
  uint64_t blob_unknown_objects() const { return blob_unknown_objects_; }

  // --- items held, for the shredd_items_stored gauge ---
  // Counts the item records with a key-only scan (O(items); the daemon does
  // it once at start-up, only when metrics are on) and sets item_count().
  absl::StatusOr<uint64_t> CountItems();
  // Kept up to date by commits of new items and by NoteItemsShredded(); only
  // meaningful after CountItems().
  uint64_t item_count() const { return static_cast<uint64_t>(std::max<int64_t>(0, item_count_.load())); }
  // Called by the shredder after an epoch that deleted `n` item records.
  void NoteItemsShredded(uint64_t n) { item_count_.fetch_sub(static_cast<int64_t>(n)); }

  KeyTree& key_tree() { return *tree_; }
  rocksdb::DB* db() { return db_.get(); }
  // Keyed hash for lookup records (never the bare value on disk).
  ItemKey KeyedHash(std::string_view domain, std::string_view value) const;
  // Seals/opens daemon-level records (manifests) under the system key.
  std::string SealSystem(std::string_view plaintext, std::string_view ad) const;
  absl::StatusOr<std::string> OpenSystem(std::string_view sealed, std::string_view ad) const;

 private:
  friend class Upload;
  class BatchPut;  // PutBatch's phases (item_batch.cc)
  ItemStore() = default;
  // Start-up garbage collection of the blob backend (item_store.cc).
  void CollectBlobGarbage();
  void DropUploadIntents();
  // Notes an upload of a blob-backed item before its object is begun
  // (IntentKey): start-up garbage collection in a shared store deletes only
  // objects it has such a note of.
  absl::Status NoteUploadIntent(const std::string& object_id);
  // true if the record under `record_key` is in the database (a write that
  // reported an error may have landed all the same).
  bool Landed(const std::string& record_key);
  absl::StatusOr<PutResult> CommitItem(const ContentDigest& digest, const ItemMetadata& metadata,
                                       const SecretBytes& dek, const std::string& object_id,
                                       std::string inline_ciphertext, BlobWriter* blob,
                                       const std::vector<std::pair<std::string, std::string>>& extra,
                                       const std::string& lineage_edges, std::span<const ItemKey> lineage_parents);
  std::string CustodyEntry(const ContentDigest& digest, const ItemMetadata& metadata, const ItemKey& key,
                           uint64_t index, rocksdb::WriteBatch* batch, std::string* salt_hex = nullptr);
  absl::Status CheckUploadable(const ContentDigest& declared, const ItemMetadata& metadata);
  absl::Status CheckNotSuppressed(const ContentDigest& declared);
  absl::StatusOr<std::unique_ptr<Upload>> StartUpload(const ContentDigest& declared, ItemMetadata metadata);
  absl::StatusOr<ItemInfo> DecodeInfo(const ItemKey& key, std::string_view record, uint64_t* slot,
                                      std::string* object_id, bool* inline_content);
  absl::StatusOr<ItemInfo> DecodeInfoWithDek(const ItemKey& key, std::string_view record, KeyView dek,
                                             SecretBytes* meta_key, uint64_t* slot, std::string* object_id,
                                             bool* inline_content);
  std::mutex& StripeFor(const ItemKey& key) { return stripes_[key[0] % stripes_.size()]; }
  bool IsSuppressed(const ItemKey& key);
  // What a commit of an item holds while it decides and writes.
  struct CommitLocks {
    DestructionGate::Commit gate;  // first: released last
    std::unique_lock<std::mutex> stripe;
    std::optional<KeyTree::WriteLease> lease;
    std::optional<std::string> record;  // the item record, if the item is stored
  };
  // Takes the item's stripe lock and a write lease (a shred epoch cannot
  // commit until both are released), refuses content or lineage parents
  // that are suppressed, and reads the item record. A commit with lineage
  // (`lineage`: edges to items or datasets) or into a stored item passes
  // the destruction gate first.
  absl::Status LockForCommit(const ItemKey& key, const ContentDigest& digest, std::span<const ItemKey> parents,
                             bool lineage, CommitLocks* locks);
  absl::Status LockAndRead(const ItemKey& key, const ContentDigest& digest, std::span<const ItemKey> parents,
                           CommitLocks* locks);
  // MergeLocked of locks.record with the kind of `metadata`, then releases
  // the locks and acknowledges the content as present once what was read is
  // durable.
  absl::StatusOr<PutResult> MergeAndAcknowledge(CommitLocks& locks, const ItemKey& key, const ContentDigest& digest,
                                                const ItemMetadata& metadata,
                                                const std::vector<std::pair<std::string, std::string>>& extra,
                                                const std::string& lineage_edges);
  // Under the item's stripe lock and a write lease: FAILED_PRECONDITION if
  // `key` or one of `parents` is suppressed (shredded).
  absl::Status CheckNotSuppressedLocked(const ItemKey& key, const ContentDigest& digest,
                                        std::span<const ItemKey> parents);
  // Under the item's stripe lock and `lease`: merges `add` into the stored
  // item whose record is `rec` (re-sealing its metadata, new index and
  // membership entries, datasets registered), commits `extra` and the
  // lineage log entry with it. FAILED_PRECONDITION if `kind` is given and
  // differs from the stored kind.
  absl::StatusOr<ItemInfo> MergeLocked(const KeyTree::WriteLease& lease, const ItemKey& key, const Sha256& hash,
                                       std::string rec, const ItemMetadata& add, std::optional<ItemKind> kind,
                                       const std::vector<std::pair<std::string, std::string>>& extra,
                                       const std::string& lineage_edges);
  // MergeLocked's first phase: decodes the stored record `rec` and opens its
  // metadata (leaving the metadata key in *meta_key), refusing a `kind`
  // that differs from the stored one.
  absl::StatusOr<ItemInfo> OpenRecordLocked(const KeyTree::WriteLease& lease, const ItemKey& key, const Sha256& hash,
                                            std::string_view rec, std::optional<ItemKind> kind, SecretBytes* meta_key);
  // Adds to *stored what `add` brings and to `batch` the index entries for
  // it (a label's old value is unindexed); returns the datasets new to it.
  std::vector<std::string> StageMergedIndexes(const ItemKey& key, const ItemMetadata& add, ItemMetadata* stored,
                                              rocksdb::WriteBatch* batch);

  Options options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::unique_ptr<KeyTree> tree_;
  std::unique_ptr<BlobBackend> blobs_;
  std::unique_ptr<BlobReaper> reaper_;  // after blobs_: destroyed (stopped) first
  uint64_t blob_gc_failures_ = 0;
  uint64_t blob_unknown_objects_ = 0;
  SecretBytes index_key_;
  SecretBytes system_metadata_key_;
  std::array<std::mutex, 64> stripes_;  // serialise commits of the same digest
  DestructionGate gate_;
  TransparencyLog* log_ = nullptr;
  std::atomic<int64_t> item_count_{0};
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_ITEMS_ITEM_STORE_H_
