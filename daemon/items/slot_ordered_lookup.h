// SlotOrderedLookup: reads many items (an order's index scan, millions) with
// their wrapped DEKs read in key-tree slot order.
//
// Index entries list items by item key, and item records ("i") are keyed
// the same way, so the records of an index come out in key order and are read
// sequentially. Their DEKs ("k" slot) follow ingest order instead: read in
// item-key order, every DEK is its own block read once the "k" records
// outgrow the block cache (the plan of a 3,000,000-item order cost 16x the
// CPU of a 300,000-item one; docs/PERFORMANCE.md). So the records are first
// sorted by slot -- in memory up to kInMemoryItems, beyond that staged in a
// scratch range of the database (keyspace::kSlotScratch, written without the
// WAL: nothing in it is new, it holds copies of item records, and the next
// start drops whatever a crash leaves) -- and then opened in slot order, one
// sequential pass over the "k" range.
#ifndef SHREDD_DAEMON_ITEMS_SLOT_ORDERED_LOOKUP_H_
#define SHREDD_DAEMON_ITEMS_SLOT_ORDERED_LOOKUP_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"

#include "daemon/items/item_store.h"

namespace shredd {

class SlotOrderedLookup {
 public:
  // Items sorted in memory before the rest are staged in the scratch range
  // (about 300 bytes each).
  static constexpr size_t kInMemoryItems = 32768;

  // `in_memory_items`: see kInMemoryItems (smaller in tests).
  explicit SlotOrderedLookup(ItemStore* store, size_t in_memory_items = kInMemoryItems);
  ~SlotOrderedLookup();  // drops the scratch range, if used
  SlotOrderedLookup(const SlotOrderedLookup&) = delete;
  SlotOrderedLookup& operator=(const SlotOrderedLookup&) = delete;

  // Queues the item `key` (best in ascending key order, as an index lists
  // them). Keys that are not stored are skipped.
  absl::Status Add(const ItemKey& key);
  // Calls `visit` for every queued item that is stored, in slot order.
  // Items that are gone (not stored, as for a stale index entry, or
  // shredded between reading their record and their key) are skipped. An
  // item that is there but cannot be read (a corrupt record or metadata, a
  // missing DEK, a failed read) is an error naming it
  // (ItemStore::UnreadableItem): skipping it would leave it out of an order,
  // neither destroyed nor listed. Stops at the first error of `visit` or of
  // a read.
  absl::Status Finish(const std::function<absl::Status(const StoredItem&)>& visit);

 private:
  // Reads the records of the queued keys into sorted_ (spilling if full).
  absl::Status ReadQueued();
  absl::Status Spill();
  // Opens `raws` (ascending slots) on several threads and visits them.
  absl::Status OpenAndVisit(std::vector<ItemStore::RawItem>& raws,
                            const std::function<absl::Status(const StoredItem&)>& visit);
  absl::Status VisitScratch(const std::function<absl::Status(const StoredItem&)>& visit);

  ItemStore* const store_;
  const size_t in_memory_items_;
  std::string scope_;  // "w" + 8 random bytes
  std::vector<ItemKey> queued_;
  std::vector<ItemStore::RawItem> sorted_;
  bool spilled_ = false;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_ITEMS_SLOT_ORDERED_LOOKUP_H_
