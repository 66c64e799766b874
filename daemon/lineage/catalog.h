// Catalog: datasets, model lineage and legal holds.
//
// Records (RocksDB; names and reasons sealed under the system key, lookups
// by keyed hash):
//   "D" dataset_key(32)                        sealed {name, created}
//   "E" child_item(32) ptype(1) parent(32)     lineage edge, forward
//   "e" ptype(1) parent(32) child_item(32)     lineage edge, reverse
//   "H" hold_id                                sealed hold
//   "h" ptype(1) target(32) hold_id            hold lookup
//   "U" hold_id                                sealed record of a lifted hold
// (prefixes: daemon/storage/keyspace.h; "D" is ItemStore's record, read here)
// ptype is 'i' (an item, keyed by its item key) or 'd' (a dataset).
//
// A model "trained on dataset D" is treated as trained on every item D ever
// holds: deleting any item of D pulls the model in (docs/ORDERS.md says why).
#ifndef SHREDD_DAEMON_LINEAGE_CATALOG_H_
#define SHREDD_DAEMON_LINEAGE_CATALOG_H_

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

#include "daemon/items/item_store.h"

namespace shredd {

enum class EdgeType : uint8_t { kTrainedOn = 1, kDerivedFrom = 2 };
std::string_view EdgeTypeName(EdgeType t);  // "trained-on" | "derived-from"

// One end of a lineage edge.
struct ParentRef {
  char type = 'i';  // 'i' item, 'd' dataset
  ItemKey key{};
  bool operator==(const ParentRef&) const = default;
  bool operator<(const ParentRef& o) const { return std::tie(type, key) < std::tie(o.type, o.key); }
};

// Lineage as given by a client: to a dataset (by name) or an item (by digest).
struct LineageSpec {
  EdgeType type = EdgeType::kTrainedOn;
  std::string dataset;           // set for dataset targets
  std::optional<Sha256> digest;  // set for item targets
  std::string relation;
};

struct Edge {
  EdgeType type;
  std::string relation;
  ParentRef parent;
  ItemKey child{};
};

struct DatasetInfo {
  std::string name;
  int64_t created_unix_nanos = 0;
  int64_t item_count = 0;
};

struct Hold {
  std::string id;
  std::optional<ContentDigest> digest;  // item hold
  std::string dataset;                  // dataset hold
  std::string reason;
  int64_t created_unix_nanos = 0;
};

// One end of an edge as GetLineage shows it: a dataset (by name), a stored
// item (digest and kind), or an item shredded since (neither).
struct LineageLink {
  EdgeType type = EdgeType::kTrainedOn;
  std::string relation;
  std::string dataset;                  // a dataset end ("?" if its record is gone)
  std::optional<ContentDigest> digest;  // an item end that is still stored
  ItemKind kind = ItemKind::kPhoto;     // with digest
  bool shredded = false;                // an item end shredded since
  std::string via_dataset;              // feeds: the item's dataset the child was trained on
};

// An item's lineage: where it comes from (its parents) and what it feeds
// (children of the item itself and of each of its datasets).
struct LineageView {
  ContentDigest digest;
  ItemKind kind = ItemKind::kPhoto;
  std::vector<LineageLink> comes_from;
  std::vector<LineageLink> feeds;
};

class Catalog {
 public:
  explicit Catalog(ItemStore* store) : store_(store) {}
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  ItemKey DatasetKey(std::string_view name) const;
  bool DatasetExists(std::string_view name);
  // Registers datasets, if new (one synced write). Uploads and tags do not
  // call this: they register their datasets in the write that stores the
  // item (ItemStore::AddNewDatasets), so a refused call registers nothing.
  absl::Status EnsureDatasets(const std::vector<std::string>& names);
  // Adds stored items to a dataset (created if new). NOT_FOUND naming the
  // first unknown digest, FAILED_PRECONDITION for a shredded one; nothing
  // changes then.
  absl::StatusOr<DatasetInfo> RegisterDataset(std::string_view name, const std::vector<Sha256>& digests);
  absl::StatusOr<std::vector<DatasetInfo>> ListDatasets();
  // JSON manifest of every item that ever was in the dataset (see
  // docs/LOG.md, "Audit"). NOT_FOUND for an unknown dataset;
  // FAILED_PRECONDITION for one of more than kWholeManifestMembers members
  // (~300 bytes each: that many is ~30 MB in one reply).
  // `reserve` (may be null) is asked for the memory of `members` before
  // anything is read (see DatasetManifestReplyBytes).
  static constexpr uint64_t kWholeManifestMembers = 100000;
  absl::StatusOr<std::string> DatasetManifest(std::string_view name,
                                              const std::function<absl::Status(uint64_t members)>& reserve = nullptr);
  // What serving a dataset manifest in one reply holds: ~270 bytes of JSON
  // per member, in the document, the reply and its serialization.
  static uint64_t DatasetManifestReplyBytes(uint64_t members) { return members * 3 * 300; }
  // The same document for a dataset of any size, handed to `sink` in pieces
  // of about `piece` bytes (whole members each); CANCELLED when `sink`
  // returns false. Memory: one piece, whatever the dataset's size.
  absl::Status WriteDatasetManifest(std::string_view name, size_t piece,
                                    const std::function<bool(std::string_view)>& sink);

  // Edges one upload or AddLineage call may name: their log entry (each
  // edge at most ~400 bytes with a 256-byte relation) then always fits the
  // log's 1 MiB entry limit, so an upload is refused before its bytes
  // rather than after them.
  static constexpr size_t kMaxLineageEdges = 1000;
  // Validates lineage for `model` (kind must be model) and returns the
  // records to commit with it. INVALID_ARGUMENT: more than
  // kMaxLineageEdges edges. NOT_FOUND: unknown digest or dataset.
  // FAILED_PRECONDITION: a shredded parent (naming what shredded it), a
  // derived-from parent that is not a model, a cycle, or a non-model child.
  struct PreparedLineage {
    std::vector<std::pair<std::string, std::string>> records;
    std::string edges_json;             // JSON array for the "lineage" log entry; empty if no edges
    std::vector<ItemKey> parent_items;  // item parents, re-checked for suppression at commit
  };
  absl::StatusOr<PreparedLineage> PrepareLineage(const Sha256& model, ItemKind kind,
                                                 const std::vector<LineageSpec>& edges);
  absl::Status AddLineage(const Sha256& model, const std::vector<LineageSpec>& edges);
  // Commits `upload` with `edges` (none: a plain Upload::Commit), validated
  // again (PrepareLineage) under the lock AddLineage validates and commits
  // under: no edge commits between this cycle check and the upload's
  // commit (a check made before the upload's bytes, outside the lock, is
  // only an early refusal; an AddLineage committed after it could close a
  // cycle).
  absl::StatusOr<PutResult> CommitUpload(Upload* upload, ItemKind kind, const std::vector<LineageSpec>& edges);
  // NOT_FOUND if `hash` is not stored (or was shredded).
  absl::StatusOr<LineageView> Lineage(const Sha256& hash);
  std::vector<Edge> ParentsOf(const ItemKey& child);
  std::vector<Edge> ChildrenOf(const ParentRef& parent);
  // Every lineage parent that has at least one child (one scan of the
  // reverse edges), so a planner touching millions of items seeks only
  // where an edge exists.
  std::set<ParentRef> ParentsWithChildren();
  // Whether `parent` has a child: one seek in the reverse edges, which are
  // keyed by parent (for a planner touching a few items in a store of many
  // edges). An error if the edges cannot be read.
  absl::StatusOr<bool> HasChildren(const ParentRef& parent);
  // Holds by target, the one HoldFor would pick (lowest id) for each; an
  // error if one cannot be read (fail closed).
  absl::StatusOr<std::map<ParentRef, Hold>> HoldsByTarget();
  // The hold HoldsByTarget gives `target` (the lowest id), by one seek;
  // none if it is not held.
  absl::StatusOr<std::optional<Hold>> HoldOn(const ParentRef& target);
  // Name of a dataset from its key (sealed record), if registered.
  std::optional<std::string> DatasetName(const ItemKey& key);
  // Deletes the lineage records in which `child` is the child.
  void AddEdgeDeletions(const ItemKey& child, rocksdb::WriteBatch* batch);

  // While the returned lock is held no hold can be added or removed: a
  // destruction holds it from planning to its last epoch, so a hold that
  // exists when it plans binds it (and is still there when its certificate
  // cites it), and one added or removed later waits for it to finish.
  std::shared_lock<std::shared_mutex> HoldsStable() { return std::shared_lock(holds_mu_); }
  // Both acknowledge only once the change is in the object store in "sync"
  // state replication, as every acknowledged write (docs/RECOVERY.md); a
  // hold lost with the machine would let a later order destroy what it held.
  // Both wait for a destruction in progress and are UNAVAILABLE while one is
  // pending after a failure (nothing changed; retry once it is certified).
  // The same id with the same target and reason again: the hold as it is;
  // with another: ALREADY_EXISTS.
  absl::StatusOr<Hold> AddHold(Hold hold);
  // A hold removed already: OK again (a retry), nothing logged; NOT_FOUND
  // only for an id never placed.
  absl::Status RemoveHold(std::string_view id);
  absl::StatusOr<std::vector<Hold>> ListHolds();
  // The first hold on the item itself or on one of its datasets. An error
  // if a hold on it cannot be read (the caller must then not destroy it).
  absl::StatusOr<std::optional<Hold>> HoldFor(const StoredItem& item);

  // Admin: lets shredded content be stored again. Records the lift.
  absl::StatusOr<std::string> LiftSuppression(const Sha256& hash, std::string_view reason);

 private:
  absl::StatusOr<Hold> LoadHold(std::string_view id);
  // AddHold and RemoveHold up to their local synced write.
  absl::StatusOr<Hold> StoreHold(Hold hold);
  absl::Status DeleteHold(std::string_view id);

  ItemStore* const store_;
  std::mutex mu_;  // serialises lineage validation + commit (AddLineage, CommitUpload), holds
  // Exclusive: AddHold, RemoveHold; shared: a destruction (HoldsStable).
  // Order: Shredder's mu_, then holds_mu_, then mu_ (never mu_ first).
  std::shared_mutex holds_mu_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_LINEAGE_CATALOG_H_
