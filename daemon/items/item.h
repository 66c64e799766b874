// Domain types for stored items. No gRPC or protobuf here.
#ifndef SHREDD_DAEMON_ITEMS_ITEM_H_
#define SHREDD_DAEMON_ITEMS_ITEM_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

#include "daemon/crypto/digest.h"

namespace shredd {

enum class ItemKind : uint8_t { kPhoto = 1, kModel = 2 };

std::string_view KindName(ItemKind kind);  // "photo" | "model"
absl::StatusOr<ItemKind> ParseKind(std::string_view name);

// Personal metadata: encrypted at rest under the item's key chain.
struct ItemMetadata {
  ItemKind kind = ItemKind::kPhoto;
  std::vector<std::string> subject_ids;
  std::vector<std::string> datasets;
  std::map<std::string, std::string> labels;
  std::string name;

  // INVALID_ARGUMENT naming the offending field if any value is unusable
  // (too long, control characters, too many entries).
  absl::Status Validate() const;
};

struct ItemInfo {
  ContentDigest digest;
  ItemMetadata metadata;
  int64_t stored_unix_nanos = 0;
  uint32_t chunk_size = 0;
};

struct PutResult {
  ContentDigest digest;
  bool already_present = false;
};

struct ListFilter {
  std::optional<ItemKind> kind;
  std::string subject_id;  // empty = any
  std::string dataset;     // empty = any
  std::map<std::string, std::string> labels;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_ITEMS_ITEM_H_
