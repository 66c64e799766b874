// The item record (keyspace::kItem + item key, daemon/storage/keyspace.h):
// an on-disk format. Existing data dirs hold records of this exact layout;
// change it only with a new version byte and a reader for the old one.
//
//   offset size
//        0    1  version (1)
//        1    1  kind (1 photo, 2 model)
//        2    1  1 if the ciphertext is a blob object, 0 if inline in RocksDB
//        3    1  reserved (0)
//        4    4  chunk size, big-endian
//        8    8  key-tree slot of the item's DEK, big-endian
//       16    8  content size in bytes, big-endian
//       24    8  stored at, Unix nanoseconds, big-endian
//       32   16  object id (random: names the blob object or inline record)
//       48    -  metadata sealed under the DEK's metadata subkey
//                (metadata_codec.h; associated data ItemMetadataAd(item key))
//
// One home for the layout: every writer and reader of item records goes
// through EncodeItemRecord/DecodeItemRecord.
#ifndef SHREDD_DAEMON_ITEMS_ITEM_RECORD_H_
#define SHREDD_DAEMON_ITEMS_ITEM_RECORD_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

#include "daemon/items/item.h"

namespace shredd {

inline constexpr size_t kObjectIdSize = 16;
inline constexpr size_t kItemRecordHeaderSize = 48;

struct ItemRecordHeader {
  ItemKind kind = ItemKind::kPhoto;
  bool in_blob = false;
  uint32_t chunk_size = 0;
  uint64_t slot = 0;
  uint64_t size = 0;
  int64_t stored_unix_nanos = 0;
  std::string object_id;  // kObjectIdSize bytes
};

// The record: header followed by the sealed metadata.
std::string EncodeItemRecord(const ItemRecordHeader& header, std::string_view sealed_metadata);

// The header of `record`. DATA_LOSS "item record is corrupt (...)" if it is
// too short, of another version, or names an unknown kind or chunk size 0.
absl::StatusOr<ItemRecordHeader> DecodeItemRecord(std::string_view record);

// The sealed metadata after the header (call after DecodeItemRecord succeeded).
inline std::string_view SealedMetadataOf(std::string_view record) { return record.substr(kItemRecordHeaderSize); }

// Sets the slot of an encoded record (a batch seals records before the
// key tree hands out their slots).
void SetItemRecordSlot(std::string* record, uint64_t slot);

// Replaces the sealed metadata of an encoded record, keeping its header.
void ReplaceSealedMetadata(std::string* record, std::string_view sealed_metadata);

}  // namespace shredd

#endif  // SHREDD_DAEMON_ITEMS_ITEM_RECORD_H_
