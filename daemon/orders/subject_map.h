// An order's subject map (OrderSpec::keep_subject_map): which data subjects
// the items an order shreds belonged to, kept after the items and their
// metadata are gone, so that the vendor can give each person a receipt
// bundle (shredctl order receipts --by-subject), then destroyed for good.
//
// The map has a key of its own, a DEK in a key-tree slot like an item's.
// Releasing the map deletes its records and shreds that slot in a key-tree
// epoch: no copy of the records (old disk images, state backups in the
// object store) can be opened afterwards, exactly as for a shredded item.
//
// Records (prefix keyspace::kSubjectMap, then the order id, then "\0"):
//   ... "h"                    -> slot(8): the map key's key-tree slot
//   ... "e" group(16) seq(8)   -> one (subject, item) pair, sealed under the
//                                 map key's metadata subkey: JSON
//                                 {"s":subject,"d":"sha256:<hex>","z":size,"k":"photo"|"model"}
// group is a keyed BLAKE2b of the subject id (the map key's index subkey):
// a subject's entries are adjacent, and nothing on disk names a subject.
#ifndef SHREDD_DAEMON_ORDERS_SUBJECT_MAP_H_
#define SHREDD_DAEMON_ORDERS_SUBJECT_MAP_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include <rocksdb/write_batch.h>

#include "daemon/base/secret.h"
#include "daemon/items/item_store.h"

namespace shredd {

class SubjectMapWriter {
 public:
  // Opens the map of `order_id` for writing. An order planned again after a
  // restart reuses its map key and drops what the earlier run wrote. The
  // key is made on the first Add (an order with no subjects has no map).
  static absl::StatusOr<std::unique_ptr<SubjectMapWriter>> Open(ItemStore* store, std::string order_id);
  // Records `item` under each of its subject ids. Written in batches with
  // the WAL but not synced: the order's first epoch is a synced write, so
  // the map is durable before any item (and its metadata) is destroyed.
  absl::Status Add(const StoredItem& item);
  absl::Status Flush();

 private:
  SubjectMapWriter(ItemStore* store, std::string order_id) : store_(store), order_id_(std::move(order_id)) {}
  absl::Status MakeKey();

  ItemStore* const store_;
  const std::string order_id_;
  std::optional<SecretBytes> key_;
  uint64_t seq_ = 0;
  rocksdb::WriteBatch batch_;
  size_t pending_ = 0;
};

struct SubjectMapItem {
  ContentDigest digest;
  ItemKind kind = ItemKind::kPhoto;
};

// Visits the map of `order_id` one subject at a time (in keyed-hash order,
// which says nothing about the subjects). `visit` returns false to stop.
// NOT_FOUND if the order has no map (none kept, or released).
absl::Status ForEachSubject(
    ItemStore* store, std::string_view order_id,
    const std::function<bool(const std::string& subject, const std::vector<SubjectMapItem>& items)>& visit);

// How many subjects the order's map held if it was released; nullopt if it
// was not (kept, or never begun).
absl::StatusOr<std::optional<int64_t>> SubjectMapReleased(ItemStore* store, std::string_view order_id);

// The map's key-tree slot and a batch deleting all its records, for the
// release (the caller shreds the slot with the batch); with `subjects`, the
// batch also marks the map released, holding that many (a failed order's
// map is dropped without a mark: it was never handed out). NOT_FOUND if
// there is none, or it was released.
absl::StatusOr<uint64_t> StageSubjectMapRelease(ItemStore* store, std::string_view order_id,
                                                std::optional<int64_t> subjects, rocksdb::WriteBatch* batch);

}  // namespace shredd

#endif  // SHREDD_DAEMON_ORDERS_SUBJECT_MAP_H_
