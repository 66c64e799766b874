// Internal to daemon/items: the record keys, associated data and log-entry
// texts the item store's files (item_store.cc, item_upload.cc,
// item_batch.cc, item_merge.cc) share. Not for use outside the layer.
#ifndef SHREDD_DAEMON_ITEMS_ITEM_STORE_INTERNAL_H_
#define SHREDD_DAEMON_ITEMS_ITEM_STORE_INTERNAL_H_

#include <sodium.h>

#include <string>
#include <string_view>
#include <vector>

#include "daemon/base/coding.h"
#include "daemon/base/strings.h"
#include "daemon/items/item.h"
#include "daemon/items/item_record.h"
#include "daemon/items/item_store.h"
#include "daemon/storage/keyspace.h"

namespace shredd::items_internal {

inline std::string KeyString(const ItemKey& k) {
  return std::string(reinterpret_cast<const char*>(k.data()), k.size());
}
inline std::string ItemRecordKey(const ItemKey& k) { return StrCat(keyspace::kItem, KeyString(k)); }
inline std::string SuppressionKey(const ItemKey& k) { return StrCat(keyspace::kSuppression, KeyString(k)); }
inline std::string InlineKey(std::string_view oid) { return StrCat(keyspace::kInline, oid); }
inline std::string ObjectKey(std::string_view oid) { return StrCat(keyspace::kObject, oid); }
// An upload of a blob-backed item begun by this daemon: what start-up
// garbage collection may delete in a shared object store (ItemStore::
// CollectBlobGarbage); removed by the item's commit.
inline std::string IntentKey(std::string_view oid) { return StrCat(keyspace::kBlobIntent, oid); }
inline std::string IndexKey(char type, const ItemKey& value_hash, const ItemKey& item) {
  return StrCat(keyspace::kIndex, std::string_view(&type, 1), KeyString(value_hash), KeyString(item));
}
// One per custody entry that put the item in the dataset: a shredded item
// stored again in the same dataset is a member twice (docs/FORMATS.md,
// "Dataset manifest").
inline std::string MemberKey(const ItemKey& dataset, const ItemKey& item, std::string_view index_be64) {
  return StrCat(keyspace::kMember, KeyString(dataset), KeyString(item), index_be64);
}
inline std::string LiftedSuppressionKey(const ItemKey& item, uint64_t custody_index) {
  return StrCat(keyspace::kLiftedSuppression, KeyString(item), BigEndian64(custody_index));
}
inline std::string CustodyKeyPrefix(const ItemKey& item) { return StrCat(keyspace::kCustody, KeyString(item)); }

// Associated data of the sealed metadata and custody records.
inline std::string MetadataAd(const ItemKey& k) { return "shredd/meta/v1" + KeyString(k); }
inline std::string CustodyAd(const ItemKey& item) { return "shredd/custody/v1" + KeyString(item); }

inline std::string RandomObjectId() {
  std::string id(kObjectIdSize, '\0');
  randombytes_buf(id.data(), id.size());
  return id;
}

// The lookup-index keys of an item's subjects, datasets and labels.
std::vector<std::string> IndexKeysOf(const ItemStore& store, const ItemMetadata& m, const ItemKey& key);
std::string LabelIndexKey(const ItemStore& store, std::string_view k, std::string_view v, const ItemKey& key);

// The sealed custody record of an item ("Y" records), as compact JSON with
// members in nlohmann's (sorted) order, byte-identical to what
// nlohmann::json{{"digest",..},{"size",..},{"kind",..},{"salt",..}}.dump()
// wrote before: every value is hex, decimal or a fixed word, so nothing needs
// escaping. Built by hand because it is on the bulk-ingest hot path.
std::string CustodyRecordText(const ContentDigest& digest, ItemKind kind, std::string_view salt_hex);

// The "item-stored" log entry (docs/FORMATS.md), byte-identical to the
// nlohmann::json object (sorted members) written before.
std::string ItemStoredEntry(const ContentDigest& digest, ItemKind kind, std::string_view item_commitment,
                            const std::vector<std::string_view>& dataset_commitments, std::string_view time);

// A re-upload that names no subject, dataset or label adds nothing to a
// stored item (the original file name is not merged: it selects nothing).
inline bool HasNoSelectors(const ItemMetadata& m) {
  return m.subject_ids.empty() && m.datasets.empty() && m.labels.empty();
}

}  // namespace shredd::items_internal

#endif  // SHREDD_DAEMON_ITEMS_ITEM_STORE_INTERNAL_H_
