// Translation between API messages (shredd.v1) and domain types.
#ifndef SHREDD_DAEMON_API_PROTO_CONVERT_H_
#define SHREDD_DAEMON_API_PROTO_CONVERT_H_

#include "absl/status/statusor.h"
#include "shredd/v1/shredd.pb.h"

#include "daemon/items/item.h"
#include "daemon/lineage/catalog.h"

namespace shredd {

// INVALID_ARGUMENT for a malformed hash or a negative size.
absl::StatusOr<ContentDigest> FromProto(const v1::Digest& d);
absl::StatusOr<ItemMetadata> FromProto(const v1::ItemMetadata& m);
void ToProto(const ContentDigest& d, v1::Digest* out);
absl::StatusOr<std::vector<LineageSpec>> LineageFromProto(
    const google::protobuf::RepeatedPtrField<v1::LineageEdge>& edges);
void ToProto(const ItemInfo& info, v1::ItemInfo* out);
// The one mapping of ItemKind to the API (the reverse differs by caller: an
// upload takes KIND_UNSPECIFIED as a photo, a List filter as no filter).
v1::Kind KindToProto(ItemKind k);
v1::LineageEdge::Type EdgeToProto(EdgeType t);
// The hashes of `digests` (sizes ignored). INVALID_ARGUMENT for a malformed one.
absl::StatusOr<std::vector<Sha256>> DigestHashesFromProto(
    const google::protobuf::RepeatedPtrField<v1::Digest>& digests);

}  // namespace shredd

#endif  // SHREDD_DAEMON_API_PROTO_CONVERT_H_
