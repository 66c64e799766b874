#include "daemon/items/item_record.h"

#include <algorithm>
#include <cstring>

#include "daemon/base/coding.h"

namespace shredd {
namespace {

constexpr uint8_t kItemRecordVersion = 1;

}  // namespace

std::string EncodeItemRecord(const ItemRecordHeader& h, std::string_view sealed_metadata) {
  std::string rec(kItemRecordHeaderSize, '\0');
  rec.reserve(kItemRecordHeaderSize + sealed_metadata.size());
  rec[0] = static_cast<char>(kItemRecordVersion);
  rec[1] = static_cast<char>(h.kind);
  rec[2] = h.in_blob ? 1 : 0;
  StoreBigEndian32(rec.data() + 4, h.chunk_size);
  StoreBigEndian64(rec.data() + 8, h.slot);
  StoreBigEndian64(rec.data() + 16, h.size);
  StoreBigEndian64(rec.data() + 24, static_cast<uint64_t>(h.stored_unix_nanos));
  std::memcpy(rec.data() + 32, h.object_id.data(), std::min(h.object_id.size(), kObjectIdSize));
  rec += sealed_metadata;
  return rec;
}

absl::StatusOr<ItemRecordHeader> DecodeItemRecord(std::string_view rec) {
  if (rec.size() < kItemRecordHeaderSize) return absl::DataLossError("item record is corrupt (truncated)");
  if (static_cast<uint8_t>(rec[0]) != kItemRecordVersion) {
    return absl::DataLossError("item record is corrupt (unknown version)");
  }
  const auto kind = static_cast<uint8_t>(rec[1]);
  if (kind != static_cast<uint8_t>(ItemKind::kPhoto) && kind != static_cast<uint8_t>(ItemKind::kModel)) {
    return absl::DataLossError("item record is corrupt (unknown kind)");
  }
  ItemRecordHeader h;
  h.kind = static_cast<ItemKind>(kind);
  h.in_blob = rec[2] != 0;
  h.chunk_size = LoadBigEndian32(rec.data() + 4);
  h.slot = LoadBigEndian64(rec.data() + 8);
  h.size = LoadBigEndian64(rec.data() + 16);
  h.stored_unix_nanos = static_cast<int64_t>(LoadBigEndian64(rec.data() + 24));
  h.object_id.assign(rec.data() + 32, kObjectIdSize);
  if (h.chunk_size == 0) return absl::DataLossError("item record is corrupt (chunk size 0)");
  return h;
}

void SetItemRecordSlot(std::string* record, uint64_t slot) { StoreBigEndian64(record->data() + 8, slot); }

void ReplaceSealedMetadata(std::string* record, std::string_view sealed_metadata) {
  record->resize(kItemRecordHeaderSize);
  *record += sealed_metadata;
}

}  // namespace shredd
